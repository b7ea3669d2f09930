/*
 * state_leak — detects state leaking between calls.
 *
 * Each call prints "count=<counter> buf=<first 16 bytes of buffer, up to
 * the first NUL>\n", then increments the static counter and writes "dirty"
 * into the static buffer.
 * Expected: every call that starts from a clean snapshot prints exactly
 * "count=0 buf=\n". "count=1 buf=dirty\n" (or more) means memory from a
 * previous call was reused. Exit code 0.
 * The statics are volatile so the compiler keeps them in linear memory
 * instead of proving their initial values.
 */
#include <stdio.h>

static volatile int counter;
static volatile char buffer[32];

int main(void)
{
    char shown[17];
    size_t i;
    for (i = 0; i < 16 && buffer[i] != '\0'; i++) shown[i] = buffer[i];
    shown[i] = '\0';
    printf("count=%d buf=%s\n", counter, shown);

    counter = counter + 1;
    const char *dirty = "dirty";
    for (i = 0; dirty[i]; i++) buffer[i] = dirty[i];
    buffer[i] = '\0';
    return 0;
}
