/* executor.c -- worker threads that run calls off Bun's event loop, shared
 * fairly between tenants.
 *
 * Bun submits a call (instance, request, result buffer, ticket) with one FFI
 * call that only enqueues; a worker runs it with thaw_call and reports the
 * ticket. The queue is bounded: a full queue is back-pressure the caller
 * turns into 429, never unbounded memory.
 *
 * Completions. With thaw_executor_start_ex a worker calls on_complete(ticket)
 * per call. With thaw_executor_start_batched it appends the ticket to a
 * completion queue and calls on_ready only when the queue was empty and
 * nobody had been told yet: the caller drains every completed ticket with
 * thaw_completions_take, so a burst of calls costs one wake-up of the
 * caller's thread (a threadsafe JSCallback is an eventfd write and a task
 * on Bun's event loop), not one per call. The caller may also read the
 * counter thaw_completions_seq bumps at each completion and drain without
 * waiting for on_ready, which is how a short call's round trip avoids the
 * wake-up altogether (src/engine/engine.ts spins on it briefly). A completed
 * call keeps its job node until it is taken, so the queue holds at most as
 * many tickets as there are nodes and never overflows. A worker reports a
 * completion only once it is back on the idle stack (thaw_cpu_next_after),
 * so the caller's next call finds it there, still spinning, instead of
 * waking a sleeping thread.
 *
 * Scheduling model
 *
 *  - CPU slots. At most cpu_slots calls (--threads: one per core) run guest
 *    code at once; a worker runs a call only while it holds a slot.
 *  - Threads are not slots. Up to max_threads workers (cpu_slots +
 *    --max-blocked) are started as needed. A call that blocks in a host
 *    call -- a clock sleep in poll_oneoff (nanosleep, sleep, usleep) or
 *    sched_yield -- gives its slot up for the wait and keeps only its
 *    thread, and another call runs on the slot meanwhile; when the wait
 *    ends it queues to get a slot back. Sleeping calls cost threads,
 *    bounded by max_threads, and no CPU. When every thread is taken, new
 *    calls wait in the queue while started ones go on.
 *  - Fair queue. Calls wait for a slot in a queue per tenant, and within a
 *    tenant per function (req->tenant, req->function). A slot that frees up
 *    goes to the tenant that has been charged the least slot time, then to
 *    its function charged the least, then to a started call of it waiting
 *    to get its slot back before a new one. Slot time is charged as it is
 *    used (running calls count while they run). This is start-time fair
 *    queueing over slot time with equal weights: while tenants compete,
 *    each gets an equal share of the slots however costly its calls and
 *    however many it queues, and a tenant using less than its share is
 *    served first, so its calls wait for a slot only while another of its
 *    own calls or a call that is owed more holds one. No one is owed more
 *    than 4 ms: a tenant that was idle, or asleep, or below its share for
 *    a long time comes back at most that far behind (it cannot save up
 *    credit), which also gives an occasional caller a small head start.
 *  - Preemption. A call keeps its slot while it runs, unless a tenant more
 *    than 1 ms behind the call's own waits for one: then, once the call has
 *    run 20 us, it is signalled, gives its slot up at once (in a host
 *    function: on the way out) and queues to get it back like a sleeper. So
 *    another tenant's CPU-bound calls delay a call by a signal and a
 *    context switch, not by their length. A tenant's own calls never
 *    preempt each other: a tenant's backlog delays only that tenant.
 *  - Priority. Workers run at nice 19, below the event loop's thread (and
 *    below the clients of a node that shares its machine): the loop serves
 *    every tenant -- HTTP, inline calls, completions -- and a tenant's
 *    CPU-bound calls on both cores must not make another tenant's request
 *    wait for the kernel to take a core back from them (at the same
 *    priority that took milliseconds: a light tenant's p99 was 5-15 times
 *    its p99 alone; at nice 19, about 1x; `bun run bench fairness`). Only
 *    the order between threads that want the same core changes: guest code
 *    still gets every core nothing else wants. Compiles run at the same
 *    nice (src/compiler/subprocess.ts), so a deploy shares the cores with
 *    running calls as before.
 *  - Bounds. queue_cap calls can wait for a first slot (THAW_EBUSY past
 *    that); a waiting call can be taken out (thaw_cancel: its client left,
 *    or it waited past the queue timeout) and then never runs. A started
 *    call runs to its end or its timeout, which also ends a wait for a slot.
 *
 * The mechanism (flows, queues, handing slots over, the preemption signal)
 * is in cpu.c, below this file: wasi.c gives slots up through it too.
 *
 * Workers get THAW_STACK_BYTES of stack so that the call-depth limit is
 * what stops ordinary deep recursion; only functions with big frames reach
 * the stack floor (call.c), which traps the same way. After a call that went
 * deep the worker hands the deep part of its stack back to the kernel, so
 * one recursive call does not leave the process's RSS raised forever. (A
 * call asleep keeps its stack, as deep as it is: --max-blocked bounds how
 * many do.)
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cpu.h"
#include "internal.h"

typedef struct job {
  thaw_cpu_job q; /* first: cpu.c hands back a thaw_cpu_job* */
  thaw_instance* inst;
  const thaw_request* req;
  thaw_result* res;
  struct job* free_next;
} job;

static struct {
  pthread_mutex_t lock;
  job* jobs;
  job* free;
  pthread_t* threads;
  uint32_t nthreads, max_threads;
  thaw_complete_fn on_complete;
  int started, stopping, batched;
} ex = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Completed jobs not taken yet (batched mode), a ring of cap entries. */
static struct {
  pthread_mutex_t lock;
  job** ring;
  uint32_t cap, head, count;
  int told; /* on_ready was called and the queue not emptied since */
} cq = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Shared with the caller's thread: [0] is bumped after each completion is
 * queued; [1] is set by the caller while it polls [0], and then no one
 * needs telling (it takes the queue, which clears [1], when it stops); [2]
 * says whether the last call submitted went to a worker that was awake. */
static uint32_t cq_words[3];

/* The low end of this worker's stack (pthread_getattr_np once per thread). */
static __thread uintptr_t t_stack_lo;

/* Hands the stack below the deepest MiB in use now back to the kernel. With
 * `only_if_touched`, first asks mincore whether the call left any page
 * resident in the 256 KiB just below that MiB: every compiled frame is at
 * most THAW_MAX_FRAME_BYTES (256 KiB) and touches its top, so a call that
 * went deeper left one there. That costs one system call per call and
 * keeps every idle worker's stack at about a MiB: with many more threads
 * than slots, stacks left deep would otherwise add up. */
static void release_deep_stack(int only_if_touched) {
  if (!t_stack_lo) {
    pthread_attr_t attr;
    void* lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
    pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
    t_stack_lo = (uintptr_t)lo;
  }
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  uintptr_t keep_from = (here - (1u << 20)) & ~(uintptr_t)(THAW_OS_PAGE - 1);
  uintptr_t start = (t_stack_lo + THAW_OS_PAGE) & ~(uintptr_t)(THAW_OS_PAGE - 1);
  if (keep_from <= start) return;
  if (only_if_touched) {
    enum { PROBE = THAW_MAX_FRAME_BYTES / THAW_OS_PAGE };
    uintptr_t probe = keep_from - start < THAW_MAX_FRAME_BYTES ? start : keep_from - THAW_MAX_FRAME_BYTES;
    unsigned char resident[PROBE];
    size_t pages = (keep_from - probe) / THAW_OS_PAGE;
    if (mincore((void*)probe, keep_from - probe, resident) != 0) return;
    size_t i = 0;
    while (i < pages && !(resident[i] & 1)) i++;
    if (i == pages) return;
  }
  madvise((void*)start, keep_from - start, MADV_DONTNEED);
}

static void job_free(job* j) {
  pthread_mutex_lock(&ex.lock);
  j->free_next = ex.free;
  ex.free = j;
  pthread_mutex_unlock(&ex.lock);
}

#define WORKER_NICE 19
static void* worker_main(void* arg);

/* Start a worker cpu.c asked for (counted there already). */
static void spawn_worker(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THAW_STACK_BYTES);
  pthread_mutex_lock(&ex.lock);
  int ok = !ex.stopping && ex.nthreads < ex.max_threads &&
           pthread_create(&ex.threads[ex.nthreads], &attr, worker_main, NULL) == 0;
  if (ok) ex.nthreads++;
  pthread_mutex_unlock(&ex.lock);
  pthread_attr_destroy(&attr);
  if (!ok) thaw_cpu_spawn_failed();
}

static void report_batched(job* j) {
  pthread_mutex_lock(&cq.lock);
  cq.ring[(cq.head + cq.count++) % cq.cap] = j;
  __atomic_add_fetch(&cq_words[0], 1, __ATOMIC_RELEASE);
  int tell = !cq.told && !__atomic_load_n(&cq_words[1], __ATOMIC_ACQUIRE);
  if (tell) cq.told = 1;
  pthread_mutex_unlock(&cq.lock);
  if (tell && ex.on_complete) ex.on_complete(1);
}

typedef struct finished {
  job* j;
  int deep; /* the call ended in stack exhaustion: its stack went deep */
} finished;

/* Runs once the worker is idle again (thaw_cpu_next_after): the caller
 * hears of the call first, then the worker tidies its stack. */
static void report(void* arg) {
  finished* f = arg;
  if (ex.batched) {
    report_batched(f->j);
  } else {
    uint64_t ticket = f->j->q.ticket;
    job_free(f->j);
    if (ex.on_complete) ex.on_complete(ticket);
  }
  release_deep_stack(!f->deep);
}

static void* worker_main(void* arg) {
  (void)arg;
  thaw_cpu_thread_init();
  pthread_setname_np(pthread_self(), "thaw-worker");
  setpriority(PRIO_PROCESS, (id_t)gettid(), WORKER_NICE);
  finished done = {0};
  for (;;) {
    int spawn;
    thaw_cpu_job* q = thaw_cpu_next_after(&spawn, done.j ? report : NULL, &done);
    done.j = NULL;
    if (spawn) spawn_worker();
    if (!q) break;
    job* j = (job*)q;
    thaw_call(j->inst, j->req, j->res);
    done = (finished){j, j->res->status == THAW_TRAP_STACK_EXHAUSTION};
  }
  thaw_cpu_thread_exit();
  return NULL;
}

uint32_t thaw_completions_take(uint64_t* tickets, uint32_t max) {
  uint32_t n = 0;
  job* taken[64];
  while (n < max) {
    uint32_t k = 0;
    pthread_mutex_lock(&cq.lock);
    __atomic_store_n(&cq_words[1], 0, __ATOMIC_RELEASE);
    while (k < 64 && n + k < max && cq.count) {
      taken[k++] = cq.ring[cq.head];
      cq.head = (cq.head + 1) % cq.cap;
      cq.count--;
    }
    if (!cq.count) cq.told = 0;
    pthread_mutex_unlock(&cq.lock);
    for (uint32_t i = 0; i < k; i++) {
      tickets[n + i] = taken[i]->q.ticket;
      job_free(taken[i]);
    }
    n += k;
    if (k < 64) break;
  }
  return n;
}

uint32_t* thaw_completions_seq(void) { return cq_words; }

/* Spin, not sleep: a sleep and its wake-up are what this saves. Between
 * looks it yields the core, as an idle worker does (cpu.c): with more
 * runnable threads than cores the worker running the awaited call may be
 * waiting for this very core. No PAUSE: under a hypervisor with pause-loop
 * exiting it deschedules the virtual CPU. Worth it only when the awaited
 * call went to a worker that was awake ([2]), which the caller checks. */
int thaw_completions_wait(uint32_t seen, uint64_t max_ns) {
  __atomic_store_n(&cq_words[1], 1, __ATOMIC_RELEASE);
  uint64_t until = thaw_now_ns() + max_ns;
  for (;;) {
    for (int i = 0; i < 64; i++)
      if (__atomic_load_n(&cq_words[0], __ATOMIC_ACQUIRE) != seen) return 1;
    if (thaw_now_ns() >= until) return 0;
    sched_yield();
  }
}

static int start(const thaw_executor_config* cfg, thaw_complete_fn on_complete,
                 int batched) {
  if (!cfg || cfg->cpu_slots == 0 || cfg->queue_cap == 0 ||
      cfg->cpu_slots > 65536 || cfg->queue_cap > (1u << 24) ||
      cfg->max_threads > 65536)
    return THAW_EINVAL;
  uint32_t slots = (uint32_t)cfg->cpu_slots;
  uint32_t max_threads = (uint32_t)cfg->max_threads;
  if (max_threads <= slots) max_threads = slots + 1;
  /* Nodes for the queue plus one per thread, whose calls hold theirs. */
  uint32_t nodes = (uint32_t)cfg->queue_cap + max_threads;
  /* Before any worker could: a thread inherits its creator's nice. */
  thaw_watchdog_start();
  pthread_mutex_lock(&ex.lock);
  if (ex.started) {
    pthread_mutex_unlock(&ex.lock);
    return THAW_EINVAL;
  }
  ex.jobs = calloc(nodes, sizeof *ex.jobs);
  ex.threads = calloc(max_threads, sizeof *ex.threads);
  job** ring = batched ? calloc(nodes, sizeof *ring) : NULL;
  thaw_cpu_config cc = {.slots = slots, .max_workers = max_threads,
                        .max_jobs = nodes, .preempt = cfg->preempt != 0};
  int rc = ex.jobs && ex.threads && (ring || !batched) ? thaw_cpu_start(&cc) : THAW_ENOMEM;
  if (rc != 0) {
    free(ex.jobs);
    free(ex.threads);
    free(ring);
    ex.jobs = NULL;
    ex.threads = NULL;
    pthread_mutex_unlock(&ex.lock);
    return rc;
  }
  pthread_mutex_lock(&cq.lock);
  cq.ring = ring;
  cq.cap = nodes;
  cq.head = cq.count = 0;
  cq.told = 0;
  pthread_mutex_unlock(&cq.lock);
  ex.batched = batched;
  ex.free = NULL;
  for (uint32_t i = nodes; i-- > 0;) {
    ex.jobs[i].free_next = ex.free;
    ex.free = &ex.jobs[i];
  }
  ex.nthreads = 0;
  ex.max_threads = max_threads;
  ex.on_complete = on_complete;
  ex.started = 1;
  ex.stopping = 0;
  pthread_mutex_unlock(&ex.lock);
  /* A worker per slot and one idle; more start as calls block. */
  for (uint32_t i = 0; i <= slots && thaw_cpu_reserve_worker(); i++) spawn_worker();
  pthread_mutex_lock(&ex.lock);
  rc = ex.nthreads ? 0 : THAW_ENOMEM;
  pthread_mutex_unlock(&ex.lock);
  if (rc) thaw_executor_stop();
  return rc;
}

int thaw_executor_start_ex(const thaw_executor_config* cfg,
                           thaw_complete_fn on_complete) {
  return start(cfg, on_complete, 0);
}

int thaw_executor_start_batched(const thaw_executor_config* cfg,
                                thaw_complete_fn on_ready) {
  return start(cfg, on_ready, 1);
}

int thaw_executor_start(uint32_t threads, uint32_t queue_cap,
                        thaw_complete_fn on_complete) {
  thaw_executor_config cfg = {.cpu_slots = threads,
                              .max_threads = 5ull * threads,
                              .queue_cap = queue_cap,
                              .preempt = 1};
  return thaw_executor_start_ex(&cfg, on_complete);
}

int thaw_submit(thaw_instance* inst, const thaw_request* req, thaw_result* res,
                uint64_t ticket) {
  if (!inst || !req || !res) return THAW_EINVAL;
  pthread_mutex_lock(&ex.lock);
  job* j = ex.started ? ex.free : NULL;
  int rc = !ex.started ? THAW_EINVAL : !j ? THAW_EBUSY : 0;
  if (j) ex.free = j->free_next;
  pthread_mutex_unlock(&ex.lock);
  if (rc) return rc;
  j->inst = inst;
  j->req = req;
  j->res = res;
  j->q.ticket = ticket;
  int spawn, awake;
  rc = thaw_cpu_submit(&j->q, req->tenant, req->function, &spawn, &awake);
  __atomic_store_n(&cq_words[2], rc == 0 && awake, __ATOMIC_RELAXED);
  if (rc) job_free(j);
  if (spawn) spawn_worker();
  return rc;
}

int thaw_cancel(uint64_t ticket) {
  thaw_cpu_job* q = thaw_cpu_cancel(ticket);
  if (!q) return THAW_ENOENT;
  job_free((job*)q);
  return 0;
}

uint64_t thaw_executor_pending(void) {
  thaw_cpu_stats s;
  thaw_cpu_stats_get(&s);
  return s.queued + s.running + s.waiting + s.blocked;
}

void thaw_executor_stats_get(thaw_executor_stats* out) { thaw_cpu_stats_get(out); }

/* Calls already queued run first; then the workers exit. */
void thaw_executor_stop(void) {
  pthread_mutex_lock(&ex.lock);
  if (!ex.started || ex.stopping) {
    pthread_mutex_unlock(&ex.lock);
    return;
  }
  ex.stopping = 1; /* no thread starts after this */
  pthread_mutex_unlock(&ex.lock);
  thaw_cpu_stop();
  for (uint32_t i = 0;; i++) {
    pthread_mutex_lock(&ex.lock);
    int more = i < ex.nthreads;
    pthread_t t = more ? ex.threads[i] : 0;
    pthread_mutex_unlock(&ex.lock);
    if (!more) break;
    pthread_join(t, NULL);
  }
  thaw_cpu_destroy();
  pthread_mutex_lock(&cq.lock);
  free(cq.ring);
  cq.ring = NULL;
  cq.cap = cq.head = cq.count = 0;
  pthread_mutex_unlock(&cq.lock);
  pthread_mutex_lock(&ex.lock);
  free(ex.jobs);
  free(ex.threads);
  ex.jobs = NULL;
  ex.free = NULL;
  ex.threads = NULL;
  ex.nthreads = 0;
  ex.started = 0;
  pthread_mutex_unlock(&ex.lock);
}
