/* test_engine.c -- libthaw end to end under AddressSanitizer and UBSan.
 *
 * Driven by test/native.test.ts, which compiles real functions with the
 * real pipeline and passes their artifacts as NAME=SO:SNAPSHOT arguments.
 * Checks restore/call/reset isolation, every trap path, the watchdog, and
 * the executor with concurrent calls, all with the sanitizers watching.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "thaw.h"

#include "check.h"

static const thaw_limits LIMITS = {
    .max_memory_pages = 256, .timeout_ms = 2000, .max_call_depth = 20000,
    .stdout_cap = 1 << 20, .stderr_cap = 1 << 16};

static char** g_args;
static int g_nargs;

static thaw_module* load(const char* name, const thaw_limits* limits) {
  size_t n = strlen(name);
  for (int i = 0; i < g_nargs; i++) {
    if (strncmp(g_args[i], name, n) != 0 || g_args[i][n] != '=') continue;
    char* spec = strdup(g_args[i] + n + 1);
    char* colon = strchr(spec, ':');
    *colon = 0;
    char err[512];
    thaw_module* m = thaw_module_load(spec, colon + 1, limits, err, sizeof err);
    if (!m) fprintf(stderr, "load %s: %s\n", name, err);
    free(spec);
    return m;
  }
  fprintf(stderr, "no artifact for %s\n", name);
  exit(2);
}

static thaw_request request(const char* stdin_text) {
  static const char args[] = "main.wasm";
  thaw_request r = {0};
  r.stdin_ptr = (uint64_t)(uintptr_t)stdin_text;
  r.stdin_len = stdin_text ? strlen(stdin_text) : 0;
  r.args_ptr = (uint64_t)(uintptr_t)args;
  r.args_len = sizeof args;
  r.argc = 1;
  return r;
}

static int output_is(const thaw_result* res, const char* expected) {
  return res->stdout_len == strlen(expected) &&
         memcmp((void*)(uintptr_t)res->stdout_ptr, expected, res->stdout_len) == 0;
}

static void test_isolation(void) {
  thaw_module* m = load("state_leak", &LIMITS);
  thaw_instance* a = thaw_instance_restore(m);
  thaw_instance* b = thaw_instance_restore(m);
  thaw_request req = request(NULL);
  thaw_result res;
  for (int i = 0; i < 50; i++) {
    thaw_call(a, &req, &res);
    CHECKF(res.status == THAW_OK && output_is(&res, "count=0 buf=\n"),
          "call %d saw state: %.*s", i, (int)res.stdout_len,
          (char*)(uintptr_t)res.stdout_ptr);
    CHECKF(thaw_instance_reset(a) == 0, "reset");
  }
  thaw_call(b, &req, &res);
  CHECKF(output_is(&res, "count=0 buf=\n"), "second instance saw the first's writes");
  thaw_call(b, &req, &res);
  CHECKF(!output_is(&res, "count=0 buf=\n"), "without reset the state must persist");
  thaw_instance_free(a);
  thaw_instance_free(b);
  thaw_module_release(m);
}

/* A cold instance's first call writes the module's hot pages first
 * (instance.c): only at the call, so an idle restored instance still
 * shares every page; the call sees the snapshot's state, touches the pages
 * a warm call does, and a reset still puts the hot pages back. */
static void test_hot_pages(void) {
  thaw_module* m = load("state_leak", &LIMITS);
  thaw_request req = request(NULL);
  req.flags = THAW_REQUEST_COUNT_PAGES;
  thaw_result res;
  thaw_instance* a = thaw_instance_restore(m);
  uint64_t idle_before = thaw_instance_private_bytes(a);
  thaw_call(a, &req, &res);
  uint64_t cold_pages = res.pages_touched;
  CHECKF(output_is(&res, "count=0 buf=\n") && cold_pages > 0, "first call, %llu pages",
         (unsigned long long)cold_pages);
  CHECK(thaw_instance_reset(a) == 0); /* learns the hot pages */
  thaw_instance* b = thaw_instance_restore(m);
  CHECKF(thaw_instance_private_bytes(b) == idle_before, "a restore writes nothing (%llu bytes private)",
         (unsigned long long)thaw_instance_private_bytes(b));
  thaw_call(b, &req, &res);
  CHECKF(output_is(&res, "count=0 buf=\n"), "a prefaulted first call sees the snapshot: %.*s",
         (int)res.stdout_len, (char*)(uintptr_t)res.stdout_ptr);
  CHECKF(res.pages_touched == cold_pages, "prefaulted call touched %llu pages, a plain one %llu",
         (unsigned long long)res.pages_touched, (unsigned long long)cold_pages);
  CHECK(thaw_instance_reset(b) == 0);
  thaw_call(b, &req, &res);
  CHECKF(output_is(&res, "count=0 buf=\n"), "after reset: %.*s", (int)res.stdout_len,
         (char*)(uintptr_t)res.stdout_ptr);
  /* Released memory makes the instance cold again. */
  CHECK(thaw_instance_reset(b) == 0);
  thaw_instance_release_memory(b);
  thaw_call(b, &req, &res);
  CHECKF(output_is(&res, "count=0 buf=\n") && res.pages_touched == cold_pages,
         "after release: %llu pages", (unsigned long long)res.pages_touched);
  thaw_instance_free(a);
  thaw_instance_free(b);
  thaw_module_release(m);
}

static void expect_trap(const char* name, int64_t status, const thaw_limits* limits) {
  thaw_module* m = load(name, limits);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_request req = request("7\n");
  thaw_result res;
  thaw_call(inst, &req, &res);
  CHECKF(res.status == status, "%s: status %s, expected %s", name,
        thaw_status_name(res.status), thaw_status_name(status));
  if (res.flags & THAW_RESULT_INSTANCE_LOST) {
    CHECKF(thaw_instance_reset(inst) != 0, "%s: a lost instance must not reset", name);
  } else {
    CHECKF(thaw_instance_reset(inst) == 0, "%s: reset after trap", name);
  }
  thaw_instance_free(inst);
  thaw_module_release(m);
}

static void test_traps(void) {
  expect_trap("trap_unreachable", THAW_TRAP_UNREACHABLE, &LIMITS);
  expect_trap("trap_oob", THAW_TRAP_OOB, &LIMITS);
  expect_trap("trap_div0", THAW_TRAP_DIV_BY_ZERO, &LIMITS);
  expect_trap("trap_recursion", THAW_TRAP_STACK_EXHAUSTION, &LIMITS);
  thaw_limits quick = LIMITS;
  quick.timeout_ms = 100;
  expect_trap("loop_forever", THAW_TRAP_TIMEOUT, &quick);
}

static void test_exit_and_output(void) {
  thaw_module* m = load("exit_code", &LIMITS);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_request req = request("42\n");
  thaw_result res;
  thaw_call(inst, &req, &res);
  CHECKF(res.status == THAW_OK && res.exit_code == 42, "exit code %lld", (long long)res.exit_code);
  CHECKF(output_is(&res, "bye\n"), "stdout of exit_code");
  CHECKF(res.stderr_len == 4, "stderr captured");
  thaw_instance_free(inst);
  thaw_module_release(m);
}

/* One inline call of `name` on a fresh instance, with `budget_ns`. Its
 * status and flags, whether stdout was `out`, and, for a call that was
 * moved, whether the same call then runs on that instance and prints `out`
 * (with `out` NULL: not checked, not run again). */
typedef struct {
  int64_t status;
  uint64_t flags;
  int output_ok;
  int rerun_ok;
} inline_outcome;

static inline_outcome call_inline(const char* name, const thaw_limits* limits, const char* in,
                                  uint64_t budget_ns, const char* out) {
  thaw_module* m = load(name, limits);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_request req = request(in);
  thaw_result res;
  thaw_call_inline(inst, &req, &res, budget_ns);
  inline_outcome o = {res.status, res.flags, !out || output_is(&res, out), 0};
  if (res.status == THAW_MOVED && out) {
    thaw_call(inst, &req, &res);
    o.rerun_ok = res.status == THAW_OK && output_is(&res, out);
  }
  thaw_instance_free(inst);
  thaw_module_release(m);
  return o;
}

/* thaw_call_inline: runs like thaw_call, except that a call past its
 * budget, asleep or out of this thread's stack comes back THAW_MOVED with
 * its instance reset and usable. */
static void test_inline(void) {
  thaw_module* hello = load("hello", &LIMITS);
  thaw_instance* inst = thaw_instance_restore(hello);
  thaw_request req = request(NULL);
  thaw_result res;
  CHECK(thaw_call_inline(inst, &req, &res, 0) == THAW_EINVAL);
  thaw_instance_free(inst);
  thaw_module_release(hello);
  inline_outcome o = call_inline("hello", &LIMITS, NULL, 1000000, "Hello, world!\n");
  CHECKF(o.status == THAW_OK && o.output_ok, "inline hello: status %lld", (long long)o.status);

  uint64_t t0 = (uint64_t)clock();
  o = call_inline("loop_forever", &LIMITS, NULL, 2000000, NULL);
  double held_ms = (double)((uint64_t)clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
  CHECKF(o.status == THAW_MOVED, "a loop past the budget is moved: status %lld", (long long)o.status);
  CHECK((o.flags & THAW_RESULT_RESET) && !(o.flags & THAW_RESULT_INSTANCE_LOST));
  CHECKF(held_ms < 500, "the loop held the thread %.1f ms, not its 2 s timeout", held_ms);

  thaw_limits quick = LIMITS;
  quick.timeout_ms = 1;
  o = call_inline("loop_forever", &quick, NULL, 50000000, NULL);
  CHECKF(o.status == THAW_TRAP_TIMEOUT, "a timeout before the budget is the call's own: %lld", (long long)o.status);
  CHECK(o.flags & THAW_RESULT_INSTANCE_LOST);

  o = call_inline("trap_div0", &LIMITS, "7\n", 1000000, NULL);
  CHECKF(o.status == THAW_TRAP_DIV_BY_ZERO, "a trap inline is the trap: %lld", (long long)o.status);

  o = call_inline("sleep", &LIMITS, "10", 50000000, "slept 10\n");
  CHECKF(o.status == THAW_MOVED, "a sleep is moved, not slept: %lld", (long long)o.status);
  CHECK(o.flags & THAW_RESULT_RESET);
  CHECKF(o.rerun_ok, "the moved call then runs from the start");
}

static void test_memory_cap(void) {
  thaw_limits small = LIMITS;
  small.max_memory_pages = 64;
  thaw_module* m = load("memory_bomb", &small);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_request req = request(NULL);
  thaw_result res;
  thaw_call(inst, &req, &res);
  CHECKF(res.status == THAW_OK && (res.flags & THAW_RESULT_GROW_REFUSED),
        "memory_bomb must see memory.grow fail");
  CHECKF(res.memory_pages <= 64, "memory stayed under the cap: %llu",
        (unsigned long long)res.memory_pages);
  thaw_instance_free(inst);
  thaw_module_release(m);
}

/* malloc_bomb writes megabytes: its reset takes the drop-pages path rather
 * than copying, and the second call must still start from the snapshot. */
static void test_large_reset(void) {
  thaw_limits small = LIMITS;
  small.max_memory_pages = 128;
  thaw_module* m = load("malloc_bomb", &small);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_request req = request(NULL);
  thaw_result res;
  char first[64] = {0};
  thaw_call(inst, &req, &res);
  CHECKF(res.exit_code == 3 && res.stdout_len < sizeof first, "malloc_bomb exit %lld", (long long)res.exit_code);
  memcpy(first, (void*)(uintptr_t)res.stdout_ptr, res.stdout_len);
  CHECKF(thaw_instance_reset(inst) == 0, "large reset");
  req.flags = THAW_REQUEST_COUNT_PAGES;
  thaw_call(inst, &req, &res);
  CHECKF(output_is(&res, first), "second call after a large reset: %.*s", (int)res.stdout_len,
        (char*)(uintptr_t)res.stdout_ptr);
  CHECKF(res.pages_touched > 256, "malloc_bomb touched %llu pages", (unsigned long long)res.pages_touched);
  thaw_instance_free(inst);
  thaw_module_release(m);
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done = PTHREAD_COND_INITIALIZER;
static int g_completed;

static void on_complete(uint64_t ticket) {
  (void)ticket;
  pthread_mutex_lock(&g_lock);
  g_completed++;
  pthread_cond_signal(&g_done);
  pthread_mutex_unlock(&g_lock);
}

/* Waits until `n` calls submitted since g_completed was last zeroed are done. */
static void wait_completed(int n) {
  pthread_mutex_lock(&g_lock);
  while (g_completed < n) pthread_cond_wait(&g_done, &g_lock);
  pthread_mutex_unlock(&g_lock);
}

/* A reset copies back the pages earlier calls wrote without asking the
 * kernel which ones they were, unless the thread that ran the call took a
 * page fault (memory.c). A call writing a page for the first time faults,
 * so the reset after it scans and the next call sees the page clean again:
 * whether the call ran through thaw_call, inline on this thread or on an
 * executor thread, and whether the reset came with the call or after it
 * on another thread. Pages are revisited, so that most calls write only
 * pages already written and their resets take the list. */
static void test_new_page_reset(void) {
  static const char* const pages[] = {"0", "0", "0", "5", "0", "5", "5", "9", "0", "9",
                                      "63", "0", "1", "1", "2", "0", "2", "40", "40", "0"};
  enum { N = sizeof pages / sizeof pages[0] };
  thaw_module* m = load("page_leak", &LIMITS);
  thaw_instance* inst = thaw_instance_restore(m);
  thaw_result res;
  CHECKF(thaw_executor_start(2, 64, on_complete) == 0, "executor start");
  for (int i = 0; i < 3 * N; i++) {
    thaw_request req = request(pages[i % N]);
    req.flags = THAW_REQUEST_RESET_AFTER;
    const char* how = "thaw_call";
    if (i % 3 == 1) {
      how = "inline";
      thaw_call_inline(inst, &req, &res, 1000000000);
    } else if (i % 3 == 2) {
      how = "executor";
      req.flags = 0;
      g_completed = 0;
      CHECKF(thaw_submit(inst, &req, &res, (uint64_t)i) == 0, "submit");
      wait_completed(1);
    } else {
      thaw_call(inst, &req, &res);
    }
    CHECKF(res.status == THAW_OK && output_is(&res, "clean\n"), "call %d (%s, page %s): %.*s", i, how,
           pages[i % N], (int)res.stdout_len, (char*)(uintptr_t)res.stdout_ptr);
    if (!req.flags) CHECK(thaw_instance_reset(inst) == 0);
  }
  thaw_executor_stop();
  thaw_instance_free(inst);
  thaw_module_release(m);
}

static void test_executor(void) {
  enum { INSTANCES = 4, ROUNDS = 50 };
  thaw_module* m = load("hello", &LIMITS);
  thaw_instance* insts[INSTANCES];
  thaw_result results[INSTANCES];
  thaw_request req = request(NULL);
  for (int i = 0; i < INSTANCES; i++) insts[i] = thaw_instance_restore(m);
  CHECKF(thaw_executor_start(2, 64, on_complete) == 0, "executor start");
  for (int round = 0; round < ROUNDS; round++) {
    g_completed = 0;
    for (int i = 0; i < INSTANCES; i++)
      CHECKF(thaw_submit(insts[i], &req, &results[i], (uint64_t)i) == 0, "submit");
    pthread_mutex_lock(&g_lock);
    while (g_completed < INSTANCES) pthread_cond_wait(&g_done, &g_lock);
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < INSTANCES; i++) {
      CHECKF(output_is(&results[i], "Hello, world!\n"), "executor call output");
      thaw_instance_reset(insts[i]);
    }
  }
  thaw_executor_stop();
  for (int i = 0; i < INSTANCES; i++) thaw_instance_free(insts[i]);
  thaw_module_release(m);
}

/* Batched completions: on_ready fires only when the queue was emptied
 * since it last fired, every ticket is taken exactly once, a full queue of
 * completed-but-untaken calls is back-pressure (job nodes are held until
 * taken), and thaw_completions_wait sees a completion or times out. */
static int g_ready;

static void on_ready(uint64_t n) {
  (void)n;
  pthread_mutex_lock(&g_lock);
  g_ready++;
  pthread_cond_signal(&g_done);
  pthread_mutex_unlock(&g_lock);
}

static uint32_t seq_now(void) {
  return __atomic_load_n(&thaw_completions_seq()[0], __ATOMIC_ACQUIRE);
}

static void test_executor_batched(void) {
  enum { INSTANCES = 8, ROUNDS = 40, QUEUE = 4 };
  thaw_module* m = load("hello", &LIMITS);
  thaw_instance* insts[INSTANCES];
  thaw_result results[INSTANCES];
  thaw_request req = request(NULL);
  for (int i = 0; i < INSTANCES; i++) insts[i] = thaw_instance_restore(m);
  /* 2 slots, 3 threads, 4 queued: 7 job nodes. */
  thaw_executor_config cfg = {.cpu_slots = 2, .max_threads = 3, .queue_cap = QUEUE, .preempt = 1};
  CHECKF(thaw_executor_start_batched(&cfg, on_ready) == 0, "batched executor start");
  int ok = 1;
  for (int round = 0; round < ROUNDS && ok; round++) {
    int seen[INSTANCES] = {0}, submitted = 0, taken = 0;
    for (int i = 0; i < INSTANCES; i++)
      if (thaw_submit(insts[i], &req, &results[i], 100u * (uint64_t)round + (uint64_t)i) == 0) submitted++;
    /* Nothing is taken yet, so every node stays held: 7 of the 8. */
    ok &= submitted == 7;
    while (taken < submitted) {
      uint64_t tickets[3];
      uint32_t n = thaw_completions_take(tickets, 3);
      for (uint32_t k = 0; k < n; k++) {
        uint64_t i = tickets[k] - 100u * (uint64_t)round;
        ok &= i < INSTANCES && !seen[i];
        if (i < INSTANCES) seen[i]++;
        ok &= output_is(&results[i], "Hello, world!\n");
      }
      taken += (int)n;
      if (n == 0) {
        pthread_mutex_lock(&g_lock);
        int before = g_ready;
        if (taken < submitted) {
          struct timespec ts;
          clock_gettime(CLOCK_REALTIME, &ts);
          ts.tv_nsec += 5000000;
          if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
          while (g_ready == before) if (pthread_cond_timedwait(&g_done, &g_lock, &ts) != 0) break;
        }
        pthread_mutex_unlock(&g_lock);
      }
    }
    uint64_t extra;
    ok &= thaw_completions_take(&extra, 1) == 0;
    for (int i = 0; i < INSTANCES; i++) thaw_instance_reset(insts[i]);
  }
  CHECKF(ok, "batched: every ticket taken once with its output, nodes held until taken");
  CHECKF(g_ready >= 1 && g_ready <= ROUNDS * 7, "on_ready fired %d times for %d rounds", g_ready, ROUNDS);
  /* Polling: a call completes while thaw_completions_wait spins, and
   * on_ready stays quiet meanwhile. */
  int hits = 0;
  usleep(20000); /* an on_ready decided before the last take may still land */
  int before = g_ready;
  for (int i = 0; i < 50; i++) {
    uint32_t s = seq_now();
    __atomic_store_n(&thaw_completions_seq()[1], 1, __ATOMIC_RELEASE); /* before submitting */
    CHECK(thaw_submit(insts[0], &req, &results[0], 5000u + (uint64_t)i) == 0);
    int hit = thaw_completions_wait(s, 500000000u);
    hits += hit;
    uint64_t t;
    uint32_t n = thaw_completions_take(&t, 1);
    if (hit && (n != 1 || t != 5000u + (uint64_t)i)) fprintf(stderr, "poll %d: took %u, ticket %llu\n", i, n, (unsigned long long)t);
    if (hit && (n != 1 || t != 5000u + (uint64_t)i)) hits = -1000;
    thaw_instance_reset(insts[0]);
  }
  CHECKF(hits == 50, "wait saw each completion (%d)", hits);
  CHECKF(g_ready == before, "on_ready stayed quiet while the caller polled (%d times)", g_ready - before);
  /* With nothing submitted it times out. */
  uint32_t s = seq_now();
  CHECKF(thaw_completions_wait(s, 2000000u) == 0, "wait times out when nothing completes");
  uint64_t extra;
  CHECK(thaw_completions_take(&extra, 1) == 0);
  thaw_executor_stop();
  for (int i = 0; i < INSTANCES; i++) thaw_instance_free(insts[i]);
  thaw_module_release(m);
}

int main(int argc, char** argv) {
  g_args = argv + 1;
  g_nargs = argc - 1;
  test_isolation();
  test_hot_pages();
  test_traps();
  test_exit_and_output();
  test_inline();
  test_memory_cap();
  test_large_reset();
  test_new_page_reset();
  test_executor();
  test_executor_batched();
  return check_summary();
}
