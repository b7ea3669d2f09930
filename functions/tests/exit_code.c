/*
 * exit_code — exits with a caller-chosen status.
 *
 * Input:  a decimal integer on stdin (optional leading '-'; surrounding
 *         whitespace allowed). Missing or unparsable input means 0.
 * Output: "bye\n" on stdout, "err\n" on stderr, then exit(<n>), i.e.
 *         proc_exit(n) — even for n = 0, so this also covers the explicit
 *         proc_exit(0) path (not just returning from _start).
 * Example: stdin "7" -> stdout "bye\n", stderr "err\n", exit code 7.
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char buf[64];
    size_t len = fread(buf, 1, sizeof buf - 1, stdin);
    buf[len] = '\0';
    int code = (int)strtol(buf, NULL, 10); /* 0 if no digits */
    fputs("bye\n", stdout);
    fputs("err\n", stderr);
    exit(code); /* flushes stdio, then proc_exit(code) */
}
