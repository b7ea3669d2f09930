/* sleep.c -- sleeps for the number of milliseconds on stdin (default 300),
 * then prints "slept N". A call that is slow without burning CPU, for the
 * concurrency, redeploy and shutdown tests. */
#include <stdio.h>
#include <time.h>

int main(void) {
  long ms = 300;
  if (scanf("%ld", &ms) != 1) ms = 300;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  printf("slept %ld\n", ms);
  return 0;
}
