/* call.c -- running one call: unwinding, the watchdog, the result.
 *
 * A call runs wasm code directly on the current thread. Everything that
 * ends it early -- a trap raised by wasm2c code, proc_exit, the watchdog --
 * leaves through one siglongjmp to the frame in thaw_guarded_run. That is
 * safe because no libthaw or libc frame that holds a resource is ever
 * between the wasm code and that frame: host functions mark themselves
 * (thaw_host_enter/leave) and a timeout that arrives inside one is deferred
 * until it returns.
 *
 * The watchdog is one thread holding the armed calls in a list. It sleeps
 * until the earliest deadline (at most a second) and then sends
 * THAW_TIMEOUT_SIGNAL to the thread running the late call. Arming a call
 * wakes it only when the call's deadline comes before the wake-up it has
 * planned: usually it does not (timeouts are seconds), and a futex wake
 * per call -- with the woken watchdog then contending for its lock with
 * the call's disarm -- was a large part of a short call's cost. The
 * handler checks that the call on that
 * thread is still the late one (deadline passed) before unwinding, so a
 * signal that lands after the call ended is ignored. The handler is
 * installed with SA_NODEFER and the unwind does not restore a signal mask,
 * which keeps the per-call cost of sigsetjmp free of system calls.
 *
 * Inline calls (thaw_call_inline) run on a thread that serves others --
 * Bun's event loop -- so they get a budget of a millisecond or so, not a
 * timeout of seconds. Waking the watchdog for each of them would cost more
 * than most of them run; instead, while inline calls keep coming, the
 * watchdog wakes every INLINE_TICK_NS on its own, so a budget of at least
 * that never needs a wake-up, and a call that overruns is stopped within
 * budget + INLINE_TICK_NS. An inline call is armed in a slot of its own,
 * without the watchdog's lock (see `inl`). An inline call that is stopped,
 * would sleep or runs out of this thread's stack is not failed: it is reset
 * and handed back (THAW_MOVED) to run again from the start on the
 * executor, where the same call gets its full timeout, no budget, and a
 * 128 MiB stack.
 */
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "internal.h"

#define THAW_TIMEOUT_SIGNAL (SIGRTMIN + 6)
#define RESIGNAL_NS (20u * 1000u * 1000u)
#define INLINE_TICK_NS (1000u * 1000u)
/* How long the watchdog keeps ticking after the last inline call's deadline. */
#define INLINE_LINGER_NS (100u * 1000u * 1000u)

/* ---- the native stack floor --------------------------------------------------
 * Every compiled function's prologue traps when its frame lies below
 * thaw_stack_floor (wasm-rt.h), so the native stack never overflows. The
 * floor is the stack's low end plus THAW_STACK_RESERVE, which must hold
 * everything that can run below a frame whose check passed. With F =
 * THAW_MAX_FRAME_BYTES (the compiler refuses larger frames):
 *
 *   F  the passing frame itself: the check looks at a local, which can sit
 *      at the top of its frame, so the frame may reach F below the floor.
 *   F  a callee's frame, allocated before its own check traps.
 *   H  what then runs below the lowest of these: the trap path
 *      (wasm_rt_trap, thaw_unwind, siglongjmp: < 1 KiB), the timeout
 *      signal's kernel frame and handler (measured 3.1 KiB here, xsave
 *      state included; ~11 KiB on a CPU with AMX), or a WASI host function
 *      called from the passing frame, with the libc it calls (measured
 *      3.4 KiB at most, a first call's lazy symbol binding included).
 *      64 KiB covers each with a wide margin.
 *
 * 2F + H = 576 KiB of the executor's 128 MiB. A thread with less stack
 * than that gets a floor above its stack top and every call traps.
 * native/test/test_stack.c runs frames of F at this limit. */
#define THAW_HOST_STACK_BYTES (64u << 10)
#define THAW_STACK_RESERVE (2u * THAW_MAX_FRAME_BYTES + THAW_HOST_STACK_BYTES)
/* The kernel keeps a main thread's growing stack this far above the next
 * mapping (stack_guard_gap), which glibc's bound for that stack ignores. */
#define MAIN_STACK_GUARD_GAP (1u << 20)

__thread uintptr_t thaw_stack_floor __attribute__((tls_model("initial-exec")));

uint64_t thaw_max_frame_bytes(void) { return THAW_MAX_FRAME_BYTES; }

/* The floor for the calling thread; UINTPTR_MAX (every call traps) when its
 * stack cannot be found. */
static uintptr_t stack_floor_of_this_thread(void) {
  pthread_attr_t attr;
  void* lo;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return UINTPTR_MAX;
  int rc = pthread_attr_getstack(&attr, &lo, &size);
  pthread_attr_destroy(&attr);
  if (rc != 0) return UINTPTR_MAX;
  uintptr_t floor = (uintptr_t)lo + THAW_STACK_RESERVE;
  if (gettid() == getpid()) floor += MAIN_STACK_GUARD_GAP;
  return floor;
}

/* A thread's stack does not move: one pthread_getattr_np per thread (on the
 * main thread glibc reads /proc/self/maps for it, ~0.2 ms). */
static void find_stack_floor(void) {
  if (!thaw_stack_floor) thaw_stack_floor = stack_floor_of_this_thread();
}

/* ---- timeout signal -------------------------------------------------------- */

static void on_timeout_signal(int sig) {
  (void)sig;
  thaw_call_state* c = thaw_current;
  if (!c || !c->active || !c->deadline_ns) return;
  if (thaw_now_ns() < c->deadline_ns) return;
  if (c->in_host) {
    c->timeout_pending = 1;
    return;
  }
  c->active = 0;
  siglongjmp(c->unwind, THAW_TRAP_TIMEOUT);
}

static pthread_once_t g_signal_once = PTHREAD_ONCE_INIT;

static void install_signal_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_timeout_signal;
  sa.sa_flags = SA_NODEFER | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(THAW_TIMEOUT_SIGNAL, &sa, NULL);
}

/* The creating thread may block real-time signals (Bun's threads do their
 * own signal setup), so every thread that runs wasm unblocks ours. */
static void unblock_timeout_signal(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, THAW_TIMEOUT_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- watchdog ---------------------------------------------------------------- */

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  thaw_call_state* head;
  uint64_t wake_at; /* when the watchdog wakes next (0: it is running) */
  _Atomic uint64_t tick_until; /* wake every INLINE_TICK_NS until then */
  int started;
  pthread_t thread;
} wd = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* The inline call running now, kept out of the list: its thread (Bun's
 * event loop) arms and disarms it without the lock, which workers take at
 * every call -- and a worker at nice 19 preempted while holding it would
 * stall the event loop. The thread publishes its deadline (0: no inline
 * call) after its pthread_t; the watchdog alone writes the rest. A signal
 * that lands after the call ended finds no late call and is ignored. */
static struct {
  _Atomic uint64_t deadline_ns;
  pthread_t thread;
  uint64_t signalled_for; /* the deadline last signalled, and when */
  uint64_t signalled_at;
} inl;

#define INLINE_CLAIMED UINT64_MAX

/* When the inline call, if any, is due a signal: sends it if that is now. */
static uint64_t watch_inline(uint64_t now) {
  uint64_t d = atomic_load_explicit(&inl.deadline_ns, memory_order_acquire);
  if (!d || d == INLINE_CLAIMED) return UINT64_MAX;
  uint64_t due = d == inl.signalled_for ? inl.signalled_at + RESIGNAL_NS : d;
  if (due > now) return due;
  pthread_kill(inl.thread, THAW_TIMEOUT_SIGNAL);
  inl.signalled_for = d;
  inl.signalled_at = now;
  return now + RESIGNAL_NS;
}

static void* watchdog_main(void* arg) {
  (void)arg;
  pthread_mutex_lock(&wd.lock);
  for (;;) {
    uint64_t now = thaw_now_ns();
    uint64_t next = now + 1000000000u;
    for (thaw_call_state* c = wd.head; c; c = c->wd_next) {
      uint64_t due = c->deadline_ns;
      if (c->last_signal_ns) due = c->last_signal_ns + RESIGNAL_NS;
      if (due <= now) {
        pthread_kill(c->thread, THAW_TIMEOUT_SIGNAL);
        c->last_signal_ns = now;
        due = now + RESIGNAL_NS;
      }
      if (due < next) next = due;
    }
    uint64_t inline_due = watch_inline(now);
    if (inline_due < next) next = inline_due;
    if (now < atomic_load(&wd.tick_until) && now + INLINE_TICK_NS < next) next = now + INLINE_TICK_NS;
    wd.wake_at = next;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait = next - now;
    ts.tv_sec += (time_t)(wait / 1000000000u);
    ts.tv_nsec += (long)(wait % 1000000000u);
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&wd.wake, &wd.lock, &ts);
    wd.wake_at = 0;
  }
  return NULL;
}

static void watchdog_start_locked(void) {
  if (wd.started) return;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_destroy(&wd.wake);
  pthread_cond_init(&wd.wake, &attr);
  pthread_condattr_destroy(&attr);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (pthread_create(&wd.thread, NULL, watchdog_main, NULL) == 0) {
    pthread_setname_np(wd.thread, "thaw-watchdog");
    pthread_detach(wd.thread);
    wd.started = 1;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void watchdog_arm(thaw_call_state* c) {
  if (!c->deadline_ns) return;
  c->thread = pthread_self();
  c->last_signal_ns = 0;
  pthread_mutex_lock(&wd.lock);
  watchdog_start_locked();
  c->wd_prev = NULL;
  c->wd_next = wd.head;
  if (wd.head) wd.head->wd_prev = c;
  wd.head = c;
  c->wd_armed = 1;
  if (wd.wake_at && c->deadline_ns < wd.wake_at) pthread_cond_signal(&wd.wake);
  pthread_mutex_unlock(&wd.lock);
}

void thaw_watchdog_start(void) {
  pthread_mutex_lock(&wd.lock);
  watchdog_start_locked();
  pthread_mutex_unlock(&wd.lock);
}

/* Arms the inline call c in the lock-free slot; 0 if another holds it. The
 * lock is taken only when the watchdog may not be ticking: the first
 * inline call after a quiet spell, and then about every 50 ms. */
static int inline_arm(thaw_call_state* c) {
  uint64_t none = 0;
  if (!atomic_compare_exchange_strong(&inl.deadline_ns, &none, INLINE_CLAIMED)) return 0;
  inl.thread = pthread_self();
  atomic_store_explicit(&inl.deadline_ns, c->deadline_ns, memory_order_release);
  uint64_t was = atomic_exchange(&wd.tick_until, c->deadline_ns + INLINE_LINGER_NS);
  if (was < c->deadline_ns + INLINE_LINGER_NS / 2) {
    pthread_mutex_lock(&wd.lock);
    watchdog_start_locked();
    if (wd.wake_at && c->deadline_ns < wd.wake_at) pthread_cond_signal(&wd.wake);
    pthread_mutex_unlock(&wd.lock);
  }
  return 1;
}

static void inline_disarm(void) {
  atomic_store_explicit(&inl.deadline_ns, 0, memory_order_release);
}

static void watchdog_disarm(thaw_call_state* c) {
  if (!c->wd_armed) return;
  pthread_mutex_lock(&wd.lock);
  if (c->wd_prev) c->wd_prev->wd_next = c->wd_next;
  else wd.head = c->wd_next;
  if (c->wd_next) c->wd_next->wd_prev = c->wd_prev;
  c->wd_armed = 0;
  pthread_mutex_unlock(&wd.lock);
}

/* ---- guarded execution ------------------------------------------------------- */

int thaw_guarded_run(thaw_call_state* st, void (*fn)(void*), void* arg,
                     uint64_t deadline_ns, uint32_t depth_limit, int inline_call) {
  pthread_once(&g_signal_once, install_signal_handler);
  unblock_timeout_signal();
  /* The signal handlers (timeout, preemption) act only on an active call:
   * st is fresh stack memory, so say it is not one until sigsetjmp ran. */
  st->active = 0;
  st->in_host = 0;
  st->timeout_pending = 0;
  st->yield_pending = 0;
  st->grow_refused = 0;
  st->exit_code = 0;
  st->deadline_ns = deadline_ns;
  st->inline_call = inline_call;
  st->wd_armed = 0;
  thaw_current = st;
  find_stack_floor();
  /* A limit at or over the bound would wrap the counter's start. */
  if (depth_limit >= THAW_DEPTH_BOUND) depth_limit = THAW_DEPTH_BOUND - 1;
  wasm_rt_call_stack_depth = THAW_DEPTH_BOUND - depth_limit;
  int in_slot = inline_call && deadline_ns && inline_arm(st);
  if (!in_slot) watchdog_arm(st);
  int rc = sigsetjmp(st->unwind, 0);
  if (rc == 0) {
    st->active = 1;
    fn(arg);
    st->active = 0;
  }
  if (in_slot) inline_disarm();
  else watchdog_disarm(st);
  thaw_current = NULL;
  return rc;
}

struct big_stack_job {
  void* (*fn)(void*);
  void* arg;
};

int thaw_run_on_big_stack(void* (*fn)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THAW_STACK_BYTES);
  int rc = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  if (rc != 0) return THAW_ENOMEM;
  pthread_join(t, NULL);
  return 0;
}

/* ---- one call ------------------------------------------------------------------ */

static void run_start(void* arg) {
  thaw_instance* inst = arg;
  inst->module->info->start(inst->wasm);
}

static int64_t classify(int rc, const thaw_call_state* st) {
  if (rc == 0 || rc == THAW_UNWIND_EXIT) return THAW_OK;
  if (st->grow_refused &&
      (rc == THAW_TRAP_UNREACHABLE || rc == THAW_TRAP_OOB))
    return THAW_TRAP_MEMORY_LIMIT;
  return rc;
}

/* One call; budget_ns > 0 makes it inline (see the header). */
static int run_call(thaw_instance* inst, const thaw_request* req, thaw_result* res,
                    uint64_t budget_ns) {
  thaw_module* m = inst->module;
  memset(res, 0, sizeof *res);
  if (!m->info->start || inst->lost) {
    res->status = THAW_TRAP_HOST;
    return THAW_EINVAL;
  }
  uint64_t timeout_ms = req->timeout_ms ? req->timeout_ms : m->limits.timeout_ms;
  /* Before the clock starts: a thread's first call is not charged for it,
   * which would count against an inline budget and the function's profile. */
  find_stack_floor();
  uint64_t t0 = thaw_now_ns();
  uint64_t deadline = timeout_ms ? t0 + timeout_ms * 1000000u : 0;
  /* A stop at the budget moves the call; one at its own deadline is its timeout. */
  int stop_moves = budget_ns && (!deadline || t0 + budget_ns < deadline);
  if (stop_moves) deadline = t0 + budget_ns;
  thaw_call_state st;
  thaw_instance_prefault(inst);
  thaw_instance_prepare_call(inst, &st);
  thaw_wasi_begin_call(&inst->wasi, req, deadline);
  int rc = thaw_guarded_run(&st, run_start, inst, deadline,
                            (uint32_t)m->limits.max_call_depth, budget_ns != 0);
  res->duration_ns = thaw_now_ns() - t0;
  thaw_instance_end_call(inst);
  wasm_rt_memory_t* mem = thaw_instance_memory(inst);
  if (budget_ns && (rc == THAW_MOVED || rc == THAW_TRAP_STACK_EXHAUSTION ||
                    (rc == THAW_TRAP_TIMEOUT && stop_moves))) {
    res->status = THAW_MOVED;
    if (thaw_instance_reset(inst) == 0) res->flags |= THAW_RESULT_RESET;
    else res->flags |= THAW_RESULT_INSTANCE_LOST;
    return 0;
  }
  res->status = classify(rc, &st);
  res->exit_code = rc == THAW_UNWIND_EXIT ? st.exit_code : 0;
  if (rc == THAW_TRAP_TIMEOUT) inst->lost = 1;
  if (st.grow_refused) res->flags |= THAW_RESULT_GROW_REFUSED;
  if (inst->wasi.out.truncated) res->flags |= THAW_RESULT_STDOUT_TRUNCATED;
  if (inst->wasi.err.truncated) res->flags |= THAW_RESULT_STDERR_TRUNCATED;
  res->memory_pages = mem->pages;
  if (req->flags & THAW_REQUEST_COUNT_PAGES)
    res->pages_touched = thaw_private_pages(mem->data, mem->size);
  if ((req->flags & THAW_REQUEST_RESET_AFTER) && !inst->lost) {
    /* A reset can take a millisecond (it copies back every page the call
     * wrote): a tenant owed the slot gets it first (cpu.c). */
    thaw_cpu_checkpoint();
    if (thaw_instance_reset(inst) == 0) res->flags |= THAW_RESULT_RESET;
  }
  if (inst->lost) res->flags |= THAW_RESULT_INSTANCE_LOST;
  res->stdout_ptr = (uint64_t)(uintptr_t)inst->wasi.out.data;
  res->stdout_len = inst->wasi.out.len;
  res->stderr_ptr = (uint64_t)(uintptr_t)inst->wasi.err.data;
  res->stderr_len = inst->wasi.err.len;
  return 0;
}

int thaw_call(thaw_instance* inst, const thaw_request* req, thaw_result* res) {
  return run_call(inst, req, res, 0);
}

int thaw_call_inline(thaw_instance* inst, const thaw_request* req,
                     thaw_result* res, uint64_t budget_ns) {
  if (!budget_ns) return THAW_EINVAL;
  return run_call(inst, req, res, budget_ns);
}
