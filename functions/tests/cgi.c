/* cgi.c -- a WAGI handler for the gateway tests.
 *
 * Answers with CGI headers (Status, Content-Type, X-Method) and a blank
 * line, then a body listing the request as the function saw it:
 * PATH_INFO, QUERY_STRING, HTTP_X_CUSTOM, whether HTTP_AUTHORIZATION is
 * present, and the request body.
 */
#include <stdio.h>
#include <stdlib.h>

static const char* env_or_empty(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

int main(void) {
  printf("Status: 201 Created\nContent-Type: text/x-test\nX-Method: %s\n\n", env_or_empty("REQUEST_METHOD"));
  printf("path=%s\nquery=%s\ncustom=%s\nauth=%s\nbody=", env_or_empty("PATH_INFO"),
         env_or_empty("QUERY_STRING"), env_or_empty("HTTP_X_CUSTOM"),
         getenv("HTTP_AUTHORIZATION") ? "leaked" : "none");
  int c;
  while ((c = getchar()) != EOF) putchar(c);
  return 0;
}
