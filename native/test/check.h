/* check.h -- the native tests' harness: CHECK counts a condition as passed
 * or failed (printing where it failed), CHECKF adds a printf-style message,
 * and check_summary prints the closing "N passed, N failed" line the test
 * runners read and returns the exit status. */
#ifndef THAW_TEST_CHECK_H
#define THAW_TEST_CHECK_H

#include <stdio.h>

static int g_passed, g_failed;

#define CHECKF(cond, ...)                                        \
  do {                                                           \
    if (cond) {                                                  \
      g_passed++;                                                \
    } else {                                                     \
      g_failed++;                                                \
      fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                              \
      fputc('\n', stderr);                                       \
    }                                                            \
  } while (0)

#define CHECK(cond) CHECKF(cond, "%s", "")

static inline int check_summary(void) {
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

#endif /* THAW_TEST_CHECK_H */
