/* test_cpu.c -- unit test of the CPU slots and the fair queue (cpu.c) alone.
 *
 * Links cpu.c with stand-ins for call.c / rt.c and runs its own workers,
 * the way executor.c does: each job here is a few milliseconds of spinning,
 * of virtual time (the clock cpu.c reads is advanced instead: ordering tests
 * then do not depend on how a loaded machine schedules threads), or a sleep
 * between thaw_cpu_block_begin/end, tagged with its tenant and function,
 * and the test looks at the order jobs ran in and at the stats.
 * With one slot the order is the fair queue's alone; preemption is checked
 * with a job that marks itself as running guest code (thaw_current active),
 * which is what the preemption signal's handler acts on.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "internal.h"

/* ---- stand-ins for call.c / rt.c ------------------------------------------- */

__thread thaw_call_state* thaw_current __attribute__((tls_model("initial-exec")));

void thaw_unwind(int status) {
  fprintf(stderr, "unexpected unwind %d\n", status);
  abort();
}

/* CLOCK_MONOTONIC plus the time VIRTUAL jobs have "run": the scheduler
 * charges slot time by this clock, so ordering tests do not depend on how
 * a loaded machine schedules the test's threads. */
static _Atomic uint64_t g_virtual_ns;

uint64_t thaw_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + g_virtual_ns;
}

#include "check.h"

/* ---- jobs and workers ------------------------------------------------------------ */

enum { SPIN, SLEEP, GUEST, VIRTUAL };

typedef struct job {
  thaw_cpu_job q;
  int kind;
  uint64_t ms;
  int id;
  uint64_t started_ns, ended_ns;
} job;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cond = PTHREAD_COND_INITIALIZER;
static int g_order[256];
static int g_done;
static pthread_t g_threads[64];
static int g_nthreads;

static void spin_ms(uint64_t ms) {
  uint64_t until = thaw_now_ns() + ms * 1000000u;
  while (thaw_now_ns() < until) {}
}

static void* worker(void* arg);

static void spawn(void) {
  pthread_mutex_lock(&g_lock);
  int ok = g_nthreads < 64 && pthread_create(&g_threads[g_nthreads], NULL, worker, NULL) == 0;
  if (ok) g_nthreads++;
  pthread_mutex_unlock(&g_lock);
  if (!ok) thaw_cpu_spawn_failed();
}

static void run(job* j) {
  __atomic_store_n(&j->started_ns, thaw_now_ns(), __ATOMIC_RELEASE);
  if (j->kind == SPIN) {
    spin_ms(j->ms);
  } else if (j->kind == VIRTUAL) {
    g_virtual_ns += j->ms * 1000000u; /* one slot: nobody else runs meanwhile */
  } else if (j->kind == SLEEP) {
    thaw_cpu_block_begin();
    struct timespec ts = {0, (long)(j->ms * 1000000u)};
    nanosleep(&ts, NULL);
    CHECK(thaw_cpu_block_end(0) == 0);
  } else {
    /* Guest code as the preemption handler sees it: an active call outside
     * any host function. */
    thaw_call_state st;
    memset(&st, 0, sizeof st);
    st.active = 1;
    thaw_current = &st;
    spin_ms(j->ms);
    thaw_current = NULL;
  }
  j->ended_ns = thaw_now_ns();
}

static void* worker(void* arg) {
  (void)arg;
  thaw_cpu_thread_init();
  for (;;) {
    int more;
    thaw_cpu_job* q = thaw_cpu_next(&more);
    if (more) spawn();
    if (!q) break;
    job* j = (job*)q;
    run(j);
    pthread_mutex_lock(&g_lock);
    g_order[g_done++] = j->id;
    pthread_cond_broadcast(&g_done_cond);
    pthread_mutex_unlock(&g_lock);
  }
  thaw_cpu_thread_exit();
  return NULL;
}

static void start(uint32_t slots, int preempt) {
  thaw_cpu_config cfg = {.slots = slots, .max_workers = slots + 8, .max_jobs = 256, .preempt = preempt};
  CHECK(thaw_cpu_start(&cfg) == 0);
  g_done = 0;
  g_nthreads = 0;
  for (uint32_t i = 0; i <= slots; i++)
    if (thaw_cpu_reserve_worker()) spawn();
}

static void stop(void) {
  thaw_cpu_stop();
  for (int i = 0;; i++) {
    pthread_mutex_lock(&g_lock);
    int more = i < g_nthreads;
    pthread_t t = more ? g_threads[i] : 0;
    pthread_mutex_unlock(&g_lock);
    if (!more) break;
    pthread_join(t, NULL);
  }
  thaw_cpu_destroy();
}

static void submit(job* j, uint64_t tenant, uint64_t function) {
  int more;
  j->q.ticket = (uint64_t)j->id;
  CHECK(thaw_cpu_submit(&j->q, tenant, function, &more, NULL) == 0);
  if (more) spawn();
}

static void wait_done(int n) {
  pthread_mutex_lock(&g_lock);
  while (g_done < n) pthread_cond_wait(&g_done_cond, &g_lock);
  pthread_mutex_unlock(&g_lock);
}

/* Workers start asynchronously and a loaded machine can be slow to run
 * them: tests that need a job running wait for it (up to 10 s). */
static void wait_started(const job* j) {
  for (int i = 0; i < 10000 && !__atomic_load_n(&j->started_ns, __ATOMIC_ACQUIRE); i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECKF(j->started_ns != 0, "job %d never started", j->id);
}

static int position(int id, int n) {
  for (int i = 0; i < n; i++)
    if (g_order[i] == id) return i;
  return -1;
}

/* ---- tests --------------------------------------------------------------------------- */

/* One slot. (tenant, fn) `heavy` queues ten 3 ms jobs (ids 100-109), then
 * `light` queues two (ids 200, 201); all twelve run. Returns how many jobs
 * were done when `light` arrived: positions are counted from there, since a
 * loaded machine may have kept this thread off the CPU for a while. */
static int backlog_then_newcomer(int heavy_tenant, int heavy_fn, int light_tenant, int light_fn) {
  start(1, 0);
  job a[10], b[2];
  for (int i = 0; i < 10; i++) {
    a[i] = (job){.kind = VIRTUAL, .ms = 3, .id = 100 + i};
    submit(&a[i], heavy_tenant, heavy_fn);
  }
  spin_ms(1);
  pthread_mutex_lock(&g_lock);
  int done = g_done;
  pthread_mutex_unlock(&g_lock);
  for (int i = 0; i < 2; i++) {
    b[i] = (job){.kind = VIRTUAL, .ms = 3, .id = 200 + i};
    submit(&b[i], light_tenant, light_fn);
  }
  wait_done(12);
  stop();
  g_virtual_ns = 0;
  return done;
}

/* One slot. Tenant 1 queues ten 3 ms jobs; tenant 2 then queues two. Tenant
 * 2 has used nothing: its jobs run next, not after tenant 1's backlog. */
static void test_tenants_share_fairly(void) {
  int done = backlog_then_newcomer(1, 1, 2, 1);
  int b0 = position(200, 12) - done, b1 = position(201, 12) - done;
  CHECKF(b0 >= 0 && b0 <= 2, "tenant 2's first job ran %d after it came", b0);
  CHECKF(b1 >= 0 && b1 <= 4, "tenant 2's second job ran %d after it came", b1);
}

/* The same between two functions of one tenant. */
static void test_functions_share_fairly(void) {
  int done = backlog_then_newcomer(7, 1, 7, 2);
  int b1 = position(201, 12) - done;
  CHECKF(b1 >= 0 && b1 <= 4, "function 2's second job ran %d after it came", b1);
}

/* Two tenants with long backlogs of different job sizes share the slot by
 * time, not by count: until the 60th job ends, tenant 1 (1 ms jobs) has
 * held the slot about as long as tenant 2 (4 ms jobs). */
static void test_share_is_by_time(void) {
  start(1, 0);
  static job a[120], b[30];
  for (int i = 0; i < 120; i++) {
    a[i] = (job){.kind = VIRTUAL, .ms = 1, .id = 1000 + i};
    submit(&a[i], 1, 1);
  }
  for (int i = 0; i < 30; i++) {
    b[i] = (job){.kind = VIRTUAL, .ms = 4, .id = 2000 + i};
    submit(&b[i], 2, 1);
  }
  wait_done(60);
  uint64_t ta = 0, tb = 0;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < 60; i++) {
    if (g_order[i] < 2000) ta += 1000000u;
    else tb += 4000000u;
  }
  pthread_mutex_unlock(&g_lock);
  /* Even, within the credit and a job or two (by count, tenant 1 would get
   * a quarter of tenant 2's time; in arrival order, tenant 2 none). */
  CHECKF(ta * 10 >= tb * 7 && tb * 10 >= ta * 7, "slot time: tenant 1 %.1f ms, tenant 2 %.1f ms", ta / 1e6, tb / 1e6);
  wait_done(150);
  stop();
  g_virtual_ns = 0; /* nothing of the scheduler outlives stop() */
}

/* A job that sleeps gives its slot up: with one slot, a sleeping 200 ms
 * job does not delay another tenant's job, and the stats show it blocked. */
static void test_sleep_releases_slot(void) {
  start(1, 0);
  job sleeper = {.kind = SLEEP, .ms = 200, .id = 1};
  job quick = {.kind = SPIN, .ms = 1, .id = 2};
  submit(&sleeper, 1, 1);
  wait_started(&sleeper);
  thaw_cpu_stats s;
  for (int i = 0; i < 100; i++) {
    thaw_cpu_stats_get(&s);
    if (s.blocked) break;
    spin_ms(1);
  }
  CHECKF(s.blocked == 1 && s.running == 0 && s.free_slots == 1,
         "blocked %llu running %llu free %llu", (unsigned long long)s.blocked,
         (unsigned long long)s.running, (unsigned long long)s.free_slots);
  uint64_t t0 = thaw_now_ns();
  submit(&quick, 2, 1);
  wait_done(1);
  CHECKF(g_order[0] == 2, "the quick job finished first (%d)", g_order[0]);
  CHECKF(quick.ended_ns - t0 < 100000000u, "quick job took %.1f ms", (quick.ended_ns - t0) / 1e6);
  wait_done(2);
  thaw_cpu_stats_get(&s);
  CHECK(s.blocks == 1);
  stop();
}

/* More sleepers than slots: all of them sleep at once. */
static void test_many_sleepers(void) {
  start(1, 0);
  static job sleepers[6];
  uint64_t t0 = thaw_now_ns();
  for (int i = 0; i < 6; i++) {
    sleepers[i] = (job){.kind = SLEEP, .ms = 100, .id = 10 + i};
    submit(&sleepers[i], 1, 1);
  }
  wait_done(6);
  uint64_t took = thaw_now_ns() - t0;
  CHECKF(took < 450000000u, "6 sleeps of 100 ms on one slot took %.1f ms", took / 1e6);
  stop();
}

/* A queued job can be cancelled and never runs; a started one cannot. */
static void test_cancel(void) {
  start(1, 0);
  job running = {.kind = SPIN, .ms = 50, .id = 1};
  job queued = {.kind = SPIN, .ms = 1, .id = 2};
  job after = {.kind = SPIN, .ms = 1, .id = 3};
  submit(&running, 1, 1);
  wait_started(&running);
  submit(&queued, 1, 1);
  submit(&after, 1, 1);
  CHECK(thaw_cpu_cancel(2) == &queued.q);
  CHECK(thaw_cpu_cancel(2) == NULL);
  CHECK(thaw_cpu_cancel(1) == NULL); /* started */
  CHECK(thaw_cpu_cancel(99) == NULL); /* unknown */
  wait_done(2);
  CHECK(g_order[0] == 1 && g_order[1] == 3);
  thaw_cpu_stats s;
  thaw_cpu_stats_get(&s);
  CHECK(s.queued == 0);
  stop();
  CHECK(queued.started_ns == 0);
}

/* Preemption: tenant 1's 600 ms of guest code holds the only slot; tenant 2's
 * job arriving meanwhile runs long before it ends (within milliseconds on a
 * quiet machine), and tenant 1's call finishes after (it got its slot
 * back). */
static void test_preemption(void) {
  start(1, 1);
  job hog = {.kind = GUEST, .ms = 600, .id = 1};
  job quick = {.kind = SPIN, .ms = 1, .id = 2};
  submit(&hog, 1, 1);
  wait_started(&hog);
  spin_ms(5);
  uint64_t t0 = thaw_now_ns();
  submit(&quick, 2, 1);
  wait_done(1);
  CHECKF(g_order[0] == 2, "the quick job finished first (%d)", g_order[0]);
  CHECKF(quick.ended_ns - t0 < 250000000u, "quick job waited %.1f ms", (quick.ended_ns - t0) / 1e6);
  wait_done(2);
  thaw_cpu_stats s;
  thaw_cpu_stats_get(&s);
  CHECK(s.preemptions >= 1);
  stop();
}

/* Without preemption the same job waits for the hog. */
static void test_no_preemption_when_off(void) {
  start(1, 0);
  job hog = {.kind = GUEST, .ms = 100, .id = 1};
  job quick = {.kind = SPIN, .ms = 1, .id = 2};
  submit(&hog, 1, 1);
  wait_started(&hog);
  submit(&quick, 2, 1);
  wait_done(2);
  CHECK(g_order[0] == 1 && g_order[1] == 2);
  stop();
}

/* A tenant's own calls never preempt each other. */
static void test_no_preemption_within_tenant(void) {
  start(1, 1);
  job hog = {.kind = GUEST, .ms = 100, .id = 1};
  job next = {.kind = SPIN, .ms = 1, .id = 2};
  submit(&hog, 1, 1);
  wait_started(&hog);
  submit(&next, 1, 2);
  wait_done(2);
  CHECK(g_order[0] == 1 && g_order[1] == 2);
  thaw_cpu_stats s;
  thaw_cpu_stats_get(&s);
  CHECK(s.preemptions == 0);
  stop();
}

/* Many threads, slots and tenants at once: everything runs exactly once and
 * the books balance (the sanitizers watch the rest). */
static void test_stress(void) {
  start(3, 1);
  static job jobs[200];
  int cancelled = 0;
  for (int i = 0; i < 200; i++) {
    int kind = i % 5 == 0 ? SLEEP : i % 3 == 0 ? GUEST : SPIN;
    jobs[i] = (job){.kind = kind, .ms = (uint64_t)(i % 4), .id = i};
    submit(&jobs[i], (uint64_t)(i % 7), (uint64_t)(i % 3));
    if (i % 17 == 0 && thaw_cpu_cancel((uint64_t)i)) cancelled++;
  }
  wait_done(200 - cancelled);
  /* A worker counts as running until it is back in thaw_cpu_next, which on
   * a loaded machine can take a while after its job ended: wait for the
   * books to settle (at most 2 s), then check them. */
  thaw_cpu_stats s;
  for (int i = 0; i < 200; i++) {
    thaw_cpu_stats_get(&s);
    if (s.running == 0 && s.tenants == 0) break;
    usleep(10000);
  }
  CHECKF(s.queued == 0 && s.running == 0 && s.waiting == 0 && s.blocked == 0 && s.tenants == 0,
         "queued %llu running %llu waiting %llu blocked %llu tenants %llu",
         (unsigned long long)s.queued, (unsigned long long)s.running, (unsigned long long)s.waiting,
         (unsigned long long)s.blocked, (unsigned long long)s.tenants);
  int ran = 0;
  for (int i = 0; i < 200; i++) ran += jobs[i].ended_ns != 0;
  CHECKF(ran == 200 - cancelled && g_done == ran, "ran %d, done %d, cancelled %d", ran, g_done, cancelled);
  stop();
}

int main(void) {
  test_tenants_share_fairly();
  test_functions_share_fairly();
  test_share_is_by_time();
  test_sleep_releases_slot();
  test_many_sleepers();
  test_cancel();
  test_preemption();
  test_no_preemption_when_off();
  test_no_preemption_within_tenant();
  test_stress();
  return check_summary();
}
