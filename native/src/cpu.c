/* cpu.c -- CPU slots and the fair queue in front of them.
 *
 * The scheduling model is described at the top of executor.c; this file is
 * its mechanism. Everything below is guarded by one mutex (cpu.lock).
 *
 * Flows. Every call belongs to a function flow, which belongs to a tenant
 * flow. A flow's virtual time (vtime) is the slot time charged to it, in
 * nanoseconds; the slot time of calls running now counts too (eff()), so a
 * tenant holding every slot falls behind while it holds them, not only
 * when its calls end. A flow exists while it has a call queued or started
 * and is freed after. The virtual clock is the eff() of the last tenant
 * picked; whenever an entry is queued its flows are brought to at most
 * WAKE_CREDIT_NS behind it (clamp_lag): no one saves up credit by sleeping
 * or by using less than its share for a long time and then spends it on
 * every slot, and a tenant that calls now and then (a new flow starts at
 * the credit) gets a small head start over one that never stops.
 *
 * Entries. A function flow queues two kinds of entries: jobs (calls that
 * have not started; they need an idle worker thread) and resumes (started
 * calls whose thread gave its slot up -- a sleep, a yield, a preemption --
 * and wants it back). When a slot is free, pick() takes the eligible
 * tenant with the smallest eff(), then its eligible function with the
 * smallest eff(), then that function's oldest resume, else its oldest job.
 * A job is eligible only if a worker is idle to run it, so a node whose
 * threads are all taken still lets started calls finish.
 *
 * Slots are handed over, never left free while anyone eligible waits: a
 * slot given up goes straight to the next entry (grant_locked), and its
 * thread is woken with the slot already held.
 *
 * Preemption. A call holding a slot while another tenant waits, further
 * behind than HYSTERESIS_NS, is sent PREEMPT_SIGNAL once it has run
 * MIN_SLICE_NS (at once when the waiting entry arrives, else by the ticker
 * thread, which looks every TICK_NS while anyone waits and no slot is
 * free). The handler runs on the call's thread: in guest code it yields
 * there (gives the slot up and waits for it in the queue); inside a host
 * function it only marks the call (yield_pending) and thaw_host_leave
 * yields on the way out. That is safe for the same reason the timeout
 * unwind is (call.c): guest code never holds a lock or a libc resource,
 * and host code, which may, is bracketed by thaw_host_enter/leave. While a
 * preempted call waits it counts as in a host function (in_host), so the
 * watchdog defers a timeout instead of unwinding out of the wait; the wait
 * ends at the call's deadline and the call then ends with its timeout.
 *
 * Workers. Threads are started on demand up to max_workers: whenever a
 * worker takes a job and no other worker is idle, the caller is asked to
 * start one (spawn), so a slot given up by a sleeping or preempted call
 * finds a thread for the next job without waiting for one to start.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "internal.h"

#define PREEMPT_SIGNAL (SIGRTMIN + 7)
#define TICK_NS 1000000u         /* the ticker's period while anyone waits */
#define MIN_SLICE_NS 20000u     /* a slice is never cut shorter */
#define HYSTERESIS_NS 1000000u   /* preempt for a tenant this far behind */
#define WAKE_CREDIT_NS 4000000u  /* an idle flow restarts this far behind */
#define RESIGNAL_NS 1000000u     /* a preemption not acted on is sent again */
#define SPIN_NS 50000u           /* an idle worker spins before it sleeps */
#define FLOW_BUCKETS 1024u

typedef struct worker worker;

struct thaw_cpu_flow {
  thaw_cpu_flow* hnext;
  thaw_cpu_flow* parent; /* a function's tenant; NULL for a tenant */
  uint64_t tenant, function;
  uint64_t vtime;     /* slot time charged, ns */
  uint64_t since_sum; /* sum of the slice starts of its calls holding slots */
  uint32_t running;   /* its calls holding a slot */
  uint32_t refs;      /* function: calls queued or started; tenant: functions */
  uint32_t nresume, njobs; /* entries queued (a tenant: of all its functions) */
  worker *rhead, *rtail;   /* function: started calls waiting for a slot */
  thaw_cpu_job *jhead, *jtail; /* function: calls waiting to start */
  thaw_cpu_flow *bl_next, *bl_prev; /* in the parent's or the node's backlog */
  thaw_cpu_flow* backlog; /* tenant: its functions with entries queued */
  uint64_t vclock;        /* tenant: the virtual clock of its functions */
};

struct worker {
  worker* next; /* in the idle stack or in a resume queue */
  pthread_cond_t cond;
  int sleeping;
  thaw_cpu_job* job;   /* handed over while idle */
  int granted;         /* a resume got its slot */
  int holder;          /* index in cpu.holders, -1 without a slot */
  int queued;          /* in a resume queue */
  volatile sig_atomic_t asked; /* asked to yield this slice (preempt_check) */
  thaw_cpu_flow* flow; /* the function of the call this thread runs */
  pthread_t thread;
};

typedef struct holder {
  worker* w; /* NULL: the slot is free */
  thaw_cpu_flow* flow;
  uint64_t since;
  uint64_t preempted_at; /* 0: not asked to yield this slice */
} holder;

static struct {
  pthread_mutex_t lock;
  int started, stopping, preempt;
  uint32_t slots;
  holder* holders;
  uint32_t* free_idx; /* free holder indices, a stack */
  uint32_t free_slots;
  worker* idle; /* idle workers, a stack: the latest may still be spinning */
  uint32_t nidle, spinning;
  uint32_t workers, arriving, max_workers;
  thaw_cpu_flow* backlog; /* tenants with entries queued */
  uint64_t vclock;
  thaw_cpu_flow* flows[FLOW_BUCKETS];
  thaw_cpu_job** index;
  uint64_t index_mask;
  uint64_t queued, active, waiting, tenants;
  uint64_t preemptions, blocks;
  pthread_t ticker;
  int ticker_started, ticker_idle;
  pthread_cond_t tick;
} cpu = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Read in the preemption handler: initial-exec, so no lazy allocation. */
static __thread worker* t_me __attribute__((tls_model("initial-exec")));

static uint64_t sub_floor(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static uint64_t eff(const thaw_cpu_flow* f, uint64_t now) {
  return f->vtime + (uint64_t)f->running * now - f->since_sum;
}

static void cond_init_monotonic(pthread_cond_t* c) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
}

static struct timespec abs_time(uint64_t ns) {
  return (struct timespec){(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
}

/* ---- flows -------------------------------------------------------------------- */

static uint32_t bucket_of(uint64_t tenant, uint64_t function, int is_tenant) {
  uint64_t h = tenant * 0x9E3779B97F4A7C15ull ^ function * 0xC2B2AE3D27D4EB4Full ^
               (uint64_t)is_tenant;
  return (uint32_t)((h ^ (h >> 29)) % FLOW_BUCKETS);
}

static thaw_cpu_flow* flow_find(uint64_t tenant, uint64_t function,
                                thaw_cpu_flow* parent) {
  uint32_t b = bucket_of(tenant, function, !parent);
  for (thaw_cpu_flow* f = cpu.flows[b]; f; f = f->hnext)
    if (f->tenant == tenant && f->function == function && !f->parent == !parent)
      return f;
  return NULL;
}

static thaw_cpu_flow* flow_new(uint64_t tenant, uint64_t function,
                               thaw_cpu_flow* parent) {
  thaw_cpu_flow* f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->tenant = tenant;
  f->function = function;
  f->parent = parent;
  f->vtime = sub_floor(parent ? parent->vclock : cpu.vclock, WAKE_CREDIT_NS);
  f->vclock = f->vtime;
  uint32_t b = bucket_of(tenant, function, !parent);
  f->hnext = cpu.flows[b];
  cpu.flows[b] = f;
  if (parent) parent->refs++;
  else cpu.tenants++;
  return f;
}

static void flow_unlink(thaw_cpu_flow* f) {
  thaw_cpu_flow** p = &cpu.flows[bucket_of(f->tenant, f->function, !f->parent)];
  while (*p != f) p = &(*p)->hnext;
  *p = f->hnext;
  free(f);
}

/* The function flow of (tenant, function) with one more reference. */
static thaw_cpu_flow* flow_get(uint64_t tenant, uint64_t function) {
  thaw_cpu_flow* t = flow_find(tenant, 0, NULL);
  if (!t && !(t = flow_new(tenant, 0, NULL))) return NULL;
  thaw_cpu_flow* f = flow_find(tenant, function, t);
  if (!f && !(f = flow_new(tenant, function, t))) {
    if (!t->refs) {
      flow_unlink(t);
      cpu.tenants--;
    }
    return NULL;
  }
  f->refs++;
  return f;
}

static void flow_put(thaw_cpu_flow* f) {
  if (--f->refs) return;
  thaw_cpu_flow* t = f->parent;
  flow_unlink(f);
  if (--t->refs == 0) {
    flow_unlink(t);
    cpu.tenants--;
  }
}

static void bl_insert(thaw_cpu_flow** head, thaw_cpu_flow* f) {
  f->bl_prev = NULL;
  f->bl_next = *head;
  if (*head) (*head)->bl_prev = f;
  *head = f;
}

static void bl_remove(thaw_cpu_flow** head, thaw_cpu_flow* f) {
  if (f->bl_prev) f->bl_prev->bl_next = f->bl_next;
  else *head = f->bl_next;
  if (f->bl_next) f->bl_next->bl_prev = f->bl_prev;
  f->bl_next = f->bl_prev = NULL;
}

/* No flow is owed more than the credit behind the clock its entries are
 * compared on: a flow that was idle, or asleep, or just never wanted
 * more, does not come back with a lag it could spend on every slot. */
static void clamp_lag(thaw_cpu_flow* f, uint64_t clock, uint64_t now) {
  uint64_t floor = sub_floor(clock, WAKE_CREDIT_NS), e = eff(f, now);
  if (e < floor) f->vtime += floor - e;
}

/* An entry joins f's queue. */
static void queued_add(thaw_cpu_flow* f, int resume, uint64_t now) {
  thaw_cpu_flow* t = f->parent;
  clamp_lag(t, cpu.vclock, now);
  clamp_lag(f, t->vclock, now);
  if (!t->nresume && !t->njobs) bl_insert(&cpu.backlog, t);
  if (!f->nresume && !f->njobs) bl_insert(&t->backlog, f);
  if (resume) {
    f->nresume++;
    t->nresume++;
  } else {
    f->njobs++;
    t->njobs++;
  }
}

static void queued_remove(thaw_cpu_flow* f, int resume) {
  thaw_cpu_flow* t = f->parent;
  if (resume) {
    f->nresume--;
    t->nresume--;
  } else {
    f->njobs--;
    t->njobs--;
  }
  if (!f->nresume && !f->njobs) bl_remove(&t->backlog, f);
  if (!t->nresume && !t->njobs) bl_remove(&cpu.backlog, t);
}

/* ---- the ticket index ------------------------------------------------------------ */

static thaw_cpu_job** index_slot(uint64_t ticket) {
  return &cpu.index[(ticket * 0x9E3779B97F4A7C15ull >> 20) & cpu.index_mask];
}

static void index_remove(thaw_cpu_job* j) {
  thaw_cpu_job** p = index_slot(j->ticket);
  while (*p != j) p = &(*p)->hnext;
  *p = j->hnext;
}

/* ---- queues ------------------------------------------------------------------------ */

static void job_unlink(thaw_cpu_job* j) {
  thaw_cpu_flow* f = j->flow;
  if (j->prev) j->prev->next = j->next;
  else f->jhead = j->next;
  if (j->next) j->next->prev = j->prev;
  else f->jtail = j->prev;
  j->next = j->prev = NULL;
  index_remove(j);
  queued_remove(f, 0);
  cpu.queued--;
}

static void resume_push(worker* w, uint64_t now) {
  thaw_cpu_flow* f = w->flow;
  w->next = NULL;
  if (f->rtail) f->rtail->next = w;
  else f->rhead = w;
  f->rtail = w;
  w->queued = 1;
  queued_add(f, 1, now);
  cpu.waiting++;
}

static void resume_unlink(worker* w) {
  thaw_cpu_flow* f = w->flow;
  worker* prev = NULL;
  for (worker* x = f->rhead; x != w; x = x->next) prev = x;
  if (prev) prev->next = w->next;
  else f->rhead = w->next;
  if (f->rtail == w) f->rtail = prev;
  w->next = NULL;
  w->queued = 0;
  queued_remove(f, 1);
  cpu.waiting--;
}

static void wake_idle_all(void) {
  for (worker* w = cpu.idle; w; w = w->next)
    if (w->sleeping) pthread_cond_signal(&w->cond);
}

static int eligible(const thaw_cpu_flow* f, int job_ok) {
  return f->nresume || (job_ok && f->njobs);
}

static thaw_cpu_flow* best_of(thaw_cpu_flow* list, int job_ok, uint64_t now) {
  thaw_cpu_flow* best = NULL;
  uint64_t be = UINT64_MAX;
  for (thaw_cpu_flow* f = list; f; f = f->bl_next) {
    if (!eligible(f, job_ok)) continue;
    uint64_t e = eff(f, now);
    if (e < be) {
      best = f;
      be = e;
    }
  }
  return best;
}

/* Take the entry owed a slot the most (see the top of this file) out of
 * the queues: a resume in *w or a job in *j. Returns 0 if none is eligible. */
static int pick(uint64_t now, int job_ok, worker** w, thaw_cpu_job** j) {
  thaw_cpu_flow* t = best_of(cpu.backlog, job_ok, now);
  if (!t) return 0;
  thaw_cpu_flow* f = best_of(t->backlog, job_ok, now);
  cpu.vclock = max64(cpu.vclock, eff(t, now));
  t->vclock = max64(t->vclock, eff(f, now));
  if (f->nresume) {
    *w = f->rhead;
    resume_unlink(*w);
  } else {
    *j = f->jhead;
    job_unlink(*j);
    if (cpu.stopping && !cpu.queued) wake_idle_all();
  }
  return 1;
}

/* ---- slots ----------------------------------------------------------------------- */

static void hold(worker* w, thaw_cpu_flow* f, uint64_t now) {
  uint32_t i = cpu.free_idx[--cpu.free_slots];
  cpu.holders[i] = (holder){.w = w, .flow = f, .since = now};
  w->holder = (int)i;
  w->asked = 0;
  f->running++;
  f->since_sum += now;
  f->parent->running++;
  f->parent->since_sum += now;
}

static void unhold(worker* w, uint64_t now) {
  holder* h = &cpu.holders[w->holder];
  uint64_t slice = now - h->since;
  for (thaw_cpu_flow* f = h->flow; f; f = f->parent) {
    f->vtime += slice;
    f->running--;
    f->since_sum -= h->since;
  }
  h->w = NULL;
  cpu.free_idx[cpu.free_slots++] = (uint32_t)w->holder;
  w->holder = -1;
}

/* Hand free slots to whoever is owed them: a resume is woken, a job goes
 * to an idle worker. */
static void grant_locked(uint64_t now) {
  while (cpu.free_slots) {
    worker* w = NULL;
    thaw_cpu_job* j = NULL;
    if (!pick(now, cpu.nidle > 0, &w, &j)) return;
    if (w) {
      hold(w, w->flow, now);
      w->granted = 1;
      pthread_cond_signal(&w->cond);
      continue;
    }
    worker* idle = cpu.idle;
    cpu.idle = idle->next;
    cpu.nidle--;
    idle->flow = j->flow;
    hold(idle, j->flow, now);
    cpu.active++;
    __atomic_store_n(&idle->job, j, __ATOMIC_RELEASE);
    if (idle->sleeping) pthread_cond_signal(&idle->cond);
  }
}

/* Ask the call holding a slot longest past what its tenant is owed to give
 * it to the tenant furthest behind among those waiting. */
static void preempt_check(uint64_t now) {
  if (!cpu.preempt || cpu.free_slots) return;
  thaw_cpu_flow* bt = best_of(cpu.backlog, cpu.nidle > 0, now);
  if (!bt) return;
  uint64_t limit = eff(bt, now) + HYSTERESIS_NS;
  holder* victim = NULL;
  uint64_t ve = 0;
  for (uint32_t i = 0; i < cpu.slots; i++) {
    holder* h = &cpu.holders[i];
    if (!h->w || h->flow->parent == bt || now - h->since < MIN_SLICE_NS) continue;
    if (h->preempted_at && now - h->preempted_at < RESIGNAL_NS) continue;
    uint64_t e = eff(h->flow->parent, now);
    if (e > limit && (!victim || e > ve)) {
      victim = h;
      ve = e;
    }
  }
  if (!victim) return;
  victim->preempted_at = now;
  victim->w->asked = 1;
  cpu.preemptions++;
  pthread_kill(victim->w->thread, PREEMPT_SIGNAL);
}

static void ticker_wake(void) {
  if (cpu.ticker_idle) pthread_cond_signal(&cpu.tick);
}

static void* ticker_main(void* arg) {
  (void)arg;
  pthread_mutex_lock(&cpu.lock);
  while (!cpu.stopping) {
    uint64_t now = thaw_now_ns();
    if (!cpu.free_slots && cpu.backlog) {
      preempt_check(now);
      struct timespec ts = abs_time(now + TICK_NS);
      pthread_cond_timedwait(&cpu.tick, &cpu.lock, &ts);
    } else {
      cpu.ticker_idle = 1;
      pthread_cond_wait(&cpu.tick, &cpu.lock);
      cpu.ticker_idle = 0;
    }
  }
  pthread_mutex_unlock(&cpu.lock);
  return NULL;
}

/* Wait, queued as a resume, until granted a slot. Locked. Returns -1 (and
 * leaves the queue) if the deadline passes or the call's timeout is
 * pending first. */
static int wait_for_slot(worker* me, uint64_t deadline_ns) {
  thaw_call_state* c = thaw_current;
  while (!me->granted) {
    if ((c && c->timeout_pending) || (deadline_ns && thaw_now_ns() >= deadline_ns)) {
      resume_unlink(me);
      return -1;
    }
    if (deadline_ns) {
      struct timespec ts = abs_time(deadline_ns);
      pthread_cond_timedwait(&me->cond, &cpu.lock, &ts);
    } else {
      pthread_cond_wait(&me->cond, &cpu.lock);
    }
  }
  me->granted = 0;
  return 0;
}

/* ---- the preemption signal ------------------------------------------------------------ */

static void on_preempt(int sig) {
  (void)sig;
  thaw_call_state* c = thaw_current;
  if (!c || !c->active) return;
  if (c->in_host) {
    c->yield_pending = 1;
    return;
  }
  int saved = errno;
  c->in_host = 1; /* a timeout now waits for the yield to end */
  c->yield_pending = 0;
  int rc = thaw_cpu_yield(c->deadline_ns);
  c->in_host = 0;
  errno = saved;
  if (rc != 0 || c->timeout_pending) thaw_unwind(THAW_TRAP_TIMEOUT);
}

void thaw_cpu_yield_pending(thaw_call_state* c) {
  c->yield_pending = 0;
  if (thaw_cpu_yield(c->deadline_ns) != 0) c->timeout_pending = 1;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

/* Frees what thaw_cpu_start allocates for the slots; called with the lock held. */
static void free_slot_arrays(void) {
  free(cpu.holders);
  free(cpu.free_idx);
  free(cpu.index);
  cpu.holders = NULL;
  cpu.free_idx = NULL;
  cpu.index = NULL;
}

int thaw_cpu_start(const thaw_cpu_config* cfg) {
  if (!cfg->slots || cfg->max_workers <= cfg->slots) return THAW_EINVAL;
  pthread_mutex_lock(&cpu.lock);
  if (cpu.started) {
    pthread_mutex_unlock(&cpu.lock);
    return THAW_EINVAL;
  }
  uint64_t n = 64;
  while (n < 2u * (uint64_t)cfg->max_jobs) n <<= 1;
  cpu.holders = calloc(cfg->slots, sizeof *cpu.holders);
  cpu.free_idx = calloc(cfg->slots, sizeof *cpu.free_idx);
  cpu.index = calloc(n, sizeof *cpu.index);
  if (!cpu.holders || !cpu.free_idx || !cpu.index) {
    free_slot_arrays();
    pthread_mutex_unlock(&cpu.lock);
    return THAW_ENOMEM;
  }
  cpu.index_mask = n - 1;
  cpu.slots = cpu.free_slots = cfg->slots;
  for (uint32_t i = 0; i < cfg->slots; i++) cpu.free_idx[i] = cfg->slots - 1 - i;
  cpu.max_workers = cfg->max_workers;
  cpu.workers = cpu.arriving = cpu.nidle = cpu.spinning = 0;
  cpu.idle = NULL;
  cpu.backlog = NULL;
  cpu.vclock = 0;
  cpu.queued = cpu.active = cpu.waiting = cpu.tenants = 0;
  cpu.preemptions = cpu.blocks = 0;
  cpu.preempt = cfg->preempt;
  cpu.stopping = 0;
  cpu.started = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_preempt;
  sa.sa_flags = SA_NODEFER | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(PREEMPT_SIGNAL, &sa, NULL);
  cond_init_monotonic(&cpu.tick);
  cpu.ticker_started = 0;
  if (cpu.preempt) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    cpu.ticker_started = pthread_create(&cpu.ticker, NULL, ticker_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!cpu.ticker_started) cpu.preempt = 0;
  }
  pthread_mutex_unlock(&cpu.lock);
  return 0;
}

void thaw_cpu_stop(void) {
  pthread_mutex_lock(&cpu.lock);
  cpu.stopping = 1;
  wake_idle_all();
  pthread_cond_signal(&cpu.tick);
  pthread_mutex_unlock(&cpu.lock);
}

void thaw_cpu_destroy(void) {
  pthread_mutex_lock(&cpu.lock);
  int ticker = cpu.ticker_started;
  cpu.ticker_started = 0;
  pthread_mutex_unlock(&cpu.lock);
  if (ticker) pthread_join(cpu.ticker, NULL);
  pthread_mutex_lock(&cpu.lock);
  for (uint32_t b = 0; b < FLOW_BUCKETS; b++) {
    while (cpu.flows[b]) {
      thaw_cpu_flow* f = cpu.flows[b];
      cpu.flows[b] = f->hnext;
      free(f);
    }
  }
  free_slot_arrays();
  pthread_cond_destroy(&cpu.tick);
  cpu.started = 0;
  cpu.stopping = 0;
  pthread_mutex_unlock(&cpu.lock);
}

/* Keep one idle worker in reserve while under the limit. Locked. */
static int want_spare(void) {
  if (cpu.nidle || cpu.arriving || cpu.stopping || cpu.workers >= cpu.max_workers)
    return 0;
  cpu.arriving++;
  cpu.workers++;
  return 1;
}

int thaw_cpu_reserve_worker(void) {
  pthread_mutex_lock(&cpu.lock);
  int ok = cpu.started && !cpu.stopping && cpu.workers < cpu.max_workers;
  if (ok) {
    cpu.arriving++;
    cpu.workers++;
  }
  pthread_mutex_unlock(&cpu.lock);
  return ok;
}

void thaw_cpu_spawn_failed(void) {
  pthread_mutex_lock(&cpu.lock);
  cpu.arriving--;
  cpu.workers--;
  pthread_mutex_unlock(&cpu.lock);
}

void thaw_cpu_thread_init(void) {
  worker* w = calloc(1, sizeof *w);
  if (!w) abort(); /* a few dozen bytes, once per thread */
  cond_init_monotonic(&w->cond);
  w->holder = -1;
  w->thread = pthread_self();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, PREEMPT_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  pthread_mutex_lock(&cpu.lock);
  cpu.arriving--;
  pthread_mutex_unlock(&cpu.lock);
  t_me = w;
}

void thaw_cpu_thread_exit(void) {
  worker* w = t_me;
  if (!w) return;
  pthread_mutex_lock(&cpu.lock);
  cpu.workers--;
  pthread_mutex_unlock(&cpu.lock);
  t_me = NULL;
  pthread_cond_destroy(&w->cond);
  free(w);
}

/* ---- jobs -------------------------------------------------------------------------------- */

int thaw_cpu_submit(thaw_cpu_job* j, uint64_t tenant, uint64_t function,
                    int* spawn, int* awake) {
  *spawn = 0;
  if (awake) *awake = 0;
  pthread_mutex_lock(&cpu.lock);
  if (!cpu.started || cpu.stopping) {
    pthread_mutex_unlock(&cpu.lock);
    return THAW_EINVAL;
  }
  thaw_cpu_flow* f = flow_get(tenant, function);
  if (!f) {
    pthread_mutex_unlock(&cpu.lock);
    return THAW_ENOMEM;
  }
  j->flow = f;
  j->next = NULL;
  j->prev = f->jtail;
  if (f->jtail) f->jtail->next = j;
  else f->jhead = j;
  f->jtail = j;
  thaw_cpu_job** slot = index_slot(j->ticket);
  j->hnext = *slot;
  *slot = j;
  uint64_t now = thaw_now_ns();
  queued_add(f, 0, now);
  cpu.queued++;
  worker* first = cpu.idle;
  int first_awake = first && !first->sleeping;
  grant_locked(now);
  if (awake) *awake = first_awake && first->job == j;
  if (!cpu.free_slots && cpu.backlog) {
    preempt_check(now);
    ticker_wake();
  }
  *spawn = want_spare();
  pthread_mutex_unlock(&cpu.lock);
  return 0;
}

thaw_cpu_job* thaw_cpu_cancel(uint64_t ticket) {
  pthread_mutex_lock(&cpu.lock);
  thaw_cpu_job* j = NULL;
  if (cpu.started)
    for (j = *index_slot(ticket); j && j->ticket != ticket; j = j->hnext) {}
  if (j) {
    thaw_cpu_flow* f = j->flow;
    job_unlink(j);
    flow_put(f);
    if (cpu.stopping && !cpu.queued) wake_idle_all();
  }
  pthread_mutex_unlock(&cpu.lock);
  return j;
}

/* An idle worker watches for a job for SPIN_NS before it sleeps, so a
 * caller submitting calls one after another hands each to a running
 * thread instead of waking one. It yields the core between looks: with
 * more runnable threads than cores (2 cores: the JS thread, this worker,
 * anyone else) a plain spin would hold the core the submitting thread
 * needs, delaying the very call it waits for by up to SPIN_NS. No PAUSE:
 * under a hypervisor with pause-loop exiting it deschedules the vCPU. */
static void spin_for_job(worker* me) {
  uint64_t until = thaw_now_ns() + SPIN_NS;
  for (;;) {
    for (int i = 0; i < 64; i++)
      if (__atomic_load_n(&me->job, __ATOMIC_ACQUIRE)) return;
    if (thaw_now_ns() >= until) return;
    sched_yield();
  }
}

thaw_cpu_job* thaw_cpu_next(int* spawn) { return thaw_cpu_next_after(spawn, NULL, NULL); }

thaw_cpu_job* thaw_cpu_next_after(int* spawn, void (*done)(void*), void* arg) {
  worker* me = t_me;
  *spawn = 0;
  pthread_mutex_lock(&cpu.lock);
  uint64_t now = thaw_now_ns();
  if (me->holder >= 0) unhold(me, now);
  if (me->flow) {
    flow_put(me->flow);
    me->flow = NULL;
    cpu.active--;
  }
  for (;;) {
    while (cpu.free_slots) {
      worker* w = NULL;
      thaw_cpu_job* j = NULL;
      if (!pick(now, 1, &w, &j)) break;
      if (w) {
        hold(w, w->flow, now);
        w->granted = 1;
        pthread_cond_signal(&w->cond);
        continue;
      }
      me->flow = j->flow;
      hold(me, j->flow, now);
      cpu.active++;
      grant_locked(now);
      *spawn = want_spare();
      pthread_mutex_unlock(&cpu.lock);
      if (done) done(arg);
      return j;
    }
    if (cpu.stopping && !cpu.queued) {
      pthread_mutex_unlock(&cpu.lock);
      if (done) done(arg);
      return NULL;
    }
    me->job = NULL;
    me->next = cpu.idle;
    cpu.idle = me;
    cpu.nidle++;
    /* A job may be queued while this worker was busy, with no one idle to
     * take it: look again now that one is. */
    grant_locked(now);
    if (done) {
      pthread_mutex_unlock(&cpu.lock);
      done(arg);
      done = NULL;
      pthread_mutex_lock(&cpu.lock);
    }
    if (!me->job && cpu.spinning < cpu.free_slots && !cpu.stopping) {
      cpu.spinning++;
      pthread_mutex_unlock(&cpu.lock);
      spin_for_job(me);
      pthread_mutex_lock(&cpu.lock);
      cpu.spinning--;
    }
    while (!me->job && !(cpu.stopping && !cpu.queued)) {
      me->sleeping = 1;
      pthread_cond_wait(&me->cond, &cpu.lock);
      me->sleeping = 0;
    }
    if (me->job) {
      thaw_cpu_job* j = me->job;
      me->job = NULL;
      *spawn = want_spare();
      pthread_mutex_unlock(&cpu.lock);
      return j;
    }
    /* Stopping with nothing queued: leave the idle stack and exit. */
    worker** p = &cpu.idle;
    while (*p != me) p = &(*p)->next;
    *p = me->next;
    cpu.nidle--;
    now = thaw_now_ns();
  }
}

/* ---- guest side ------------------------------------------------------------------------- */

void thaw_cpu_block_begin(void) {
  worker* me = t_me;
  if (!me || me->holder < 0) return;
  pthread_mutex_lock(&cpu.lock);
  uint64_t now = thaw_now_ns();
  unhold(me, now);
  cpu.blocks++;
  grant_locked(now);
  pthread_mutex_unlock(&cpu.lock);
}

int thaw_cpu_block_end(uint64_t deadline_ns) {
  worker* me = t_me;
  if (!me || !me->flow || me->holder >= 0) return 0;
  thaw_call_state* c = thaw_current;
  if (c) c->yield_pending = 0;
  pthread_mutex_lock(&cpu.lock);
  uint64_t now = thaw_now_ns();
  int rc = 0;
  if (cpu.free_slots) {
    hold(me, me->flow, now);
  } else {
    resume_push(me, now);
    preempt_check(now);
    ticker_wake();
    rc = wait_for_slot(me, deadline_ns);
  }
  pthread_mutex_unlock(&cpu.lock);
  return rc;
}

int thaw_cpu_yield(uint64_t deadline_ns) {
  worker* me = t_me;
  if (!me || me->holder < 0) return 0;
  pthread_mutex_lock(&cpu.lock);
  uint64_t now = thaw_now_ns();
  int rc = 0;
  if (!best_of(cpu.backlog, cpu.nidle > 0, now)) {
    cpu.holders[me->holder].preempted_at = 0; /* nobody waits: keep the slice */
  } else {
    unhold(me, now);
    resume_push(me, now);
    grant_locked(now);
    rc = wait_for_slot(me, deadline_ns);
  }
  pthread_mutex_unlock(&cpu.lock);
  return rc;
}

void thaw_cpu_checkpoint(void) {
  worker* me = t_me;
  if (me && me->holder >= 0 && me->asked) thaw_cpu_yield(0);
}

void thaw_cpu_stats_get(thaw_cpu_stats* out) {
  pthread_mutex_lock(&cpu.lock);
  uint64_t running = cpu.slots - cpu.free_slots;
  *out = (thaw_cpu_stats){
      .cpu_slots = cpu.slots,
      .free_slots = cpu.free_slots,
      .threads = cpu.workers,
      .max_threads = cpu.max_workers,
      .idle_threads = cpu.nidle,
      .queued = cpu.queued,
      .running = running,
      .waiting = cpu.waiting,
      .blocked = cpu.active - running - cpu.waiting,
      .tenants = cpu.tenants,
      .preemptions = cpu.preemptions,
      .blocks = cpu.blocks,
  };
  pthread_mutex_unlock(&cpu.lock);
}
