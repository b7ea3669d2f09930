/* executor.c -- worker threads that run calls off Bun's event loop.
 *
 * Bun submits a call (instance, request, result buffer, ticket) with one FFI
 * call that only enqueues; a worker runs it with thaw_call and reports the
 * ticket through the completion callback, which bun:ffi delivers to the
 * JavaScript thread (a threadsafe JSCallback). The queue is bounded: a full
 * queue is back-pressure the caller turns into 429, never unbounded memory.
 *
 * Workers get THAW_STACK_BYTES of stack so that the call-depth limit is
 * what stops ordinary deep recursion; only functions with big frames reach
 * the stack floor (call.c), which traps the same way. After a call that hit
 * either the worker hands the deep part of its stack back to the kernel, so
 * one recursive call does not leave the process's RSS raised forever.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define SPIN_NS 50000u

typedef struct job {
  thaw_instance* inst;
  const thaw_request* req;
  thaw_result* res;
  uint64_t ticket;
} job;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t nonempty;
  job* ring;
  uint32_t cap, head, count;
  uint32_t running;
  uint32_t sleeping;
  uint32_t nthreads;
  pthread_t* threads;
  thaw_complete_fn on_complete;
  int stopping;
} ex = {.lock = PTHREAD_MUTEX_INITIALIZER, .nonempty = PTHREAD_COND_INITIALIZER};

static void release_deep_stack(void) {
  pthread_attr_t attr;
  void* lo;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  pthread_attr_getstack(&attr, &lo, &size);
  pthread_attr_destroy(&attr);
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  uintptr_t keep_from = (here - (1u << 20)) & ~(uintptr_t)(THAW_OS_PAGE - 1);
  uintptr_t start = ((uintptr_t)lo + THAW_OS_PAGE) & ~(uintptr_t)(THAW_OS_PAGE - 1);
  if (keep_from > start) madvise((void*)start, keep_from - start, MADV_DONTNEED);
}

/* Wait for a job: spin briefly first (under load the next call arrives
 * within microseconds, and a futex sleep + wake costs more than the call),
 * then sleep. Called and returns with the lock held. */
static void wait_for_job(void) {
  if (!ex.count && !ex.stopping) {
    pthread_mutex_unlock(&ex.lock);
    uint64_t until = thaw_now_ns() + SPIN_NS;
    while (!__atomic_load_n(&ex.count, __ATOMIC_RELAXED) && thaw_now_ns() < until)
      __builtin_ia32_pause();
    pthread_mutex_lock(&ex.lock);
  }
  while (!ex.count && !ex.stopping) {
    ex.sleeping++;
    pthread_cond_wait(&ex.nonempty, &ex.lock);
    ex.sleeping--;
  }
}

static void* worker_main(void* arg) {
  (void)arg;
  pthread_mutex_lock(&ex.lock);
  for (;;) {
    wait_for_job();
    if (ex.stopping && !ex.count) break;
    job j = ex.ring[ex.head];
    ex.head = (ex.head + 1) % ex.cap;
    __atomic_store_n(&ex.count, ex.count - 1, __ATOMIC_RELAXED);
    ex.running++;
    thaw_complete_fn cb = ex.on_complete;
    pthread_mutex_unlock(&ex.lock);
    thaw_call(j.inst, j.req, j.res);
    if (j.res->status == THAW_TRAP_STACK_EXHAUSTION) release_deep_stack();
    if (cb) cb(j.ticket);
    pthread_mutex_lock(&ex.lock);
    ex.running--;
  }
  pthread_mutex_unlock(&ex.lock);
  return NULL;
}

int thaw_executor_start(uint32_t threads, uint32_t queue_cap,
                        thaw_complete_fn on_complete) {
  if (threads == 0 || queue_cap == 0) return THAW_EINVAL;
  pthread_mutex_lock(&ex.lock);
  if (ex.threads) {
    pthread_mutex_unlock(&ex.lock);
    return THAW_EINVAL;
  }
  ex.ring = calloc(queue_cap, sizeof *ex.ring);
  ex.threads = calloc(threads, sizeof *ex.threads);
  if (!ex.ring || !ex.threads) {
    free(ex.ring);
    free(ex.threads);
    ex.ring = NULL;
    ex.threads = NULL;
    pthread_mutex_unlock(&ex.lock);
    return THAW_ENOMEM;
  }
  ex.cap = queue_cap;
  ex.head = ex.count = ex.running = 0;
  ex.on_complete = on_complete;
  ex.stopping = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THAW_STACK_BYTES);
  for (ex.nthreads = 0; ex.nthreads < threads; ex.nthreads++)
    if (pthread_create(&ex.threads[ex.nthreads], &attr, worker_main, NULL) != 0)
      break;
  pthread_attr_destroy(&attr);
  int rc = ex.nthreads ? 0 : THAW_ENOMEM;
  pthread_mutex_unlock(&ex.lock);
  return rc;
}

int thaw_submit(thaw_instance* inst, const thaw_request* req, thaw_result* res,
                uint64_t ticket) {
  if (!inst || !req || !res) return THAW_EINVAL;
  pthread_mutex_lock(&ex.lock);
  if (!ex.threads || ex.stopping) {
    pthread_mutex_unlock(&ex.lock);
    return THAW_EINVAL;
  }
  if (ex.count == ex.cap) {
    pthread_mutex_unlock(&ex.lock);
    return THAW_EBUSY;
  }
  ex.ring[(ex.head + ex.count) % ex.cap] = (job){inst, req, res, ticket};
  __atomic_store_n(&ex.count, ex.count + 1, __ATOMIC_RELAXED);
  if (ex.sleeping) pthread_cond_signal(&ex.nonempty);
  pthread_mutex_unlock(&ex.lock);
  return 0;
}

uint64_t thaw_executor_pending(void) {
  pthread_mutex_lock(&ex.lock);
  uint64_t n = ex.count + ex.running;
  pthread_mutex_unlock(&ex.lock);
  return n;
}

void thaw_executor_stop(void) {
  pthread_mutex_lock(&ex.lock);
  if (!ex.threads) {
    pthread_mutex_unlock(&ex.lock);
    return;
  }
  ex.stopping = 1;
  pthread_cond_broadcast(&ex.nonempty);
  uint32_t n = ex.nthreads;
  pthread_t* threads = ex.threads;
  pthread_mutex_unlock(&ex.lock);
  for (uint32_t i = 0; i < n; i++) pthread_join(threads[i], NULL);
  pthread_mutex_lock(&ex.lock);
  free(ex.ring);
  free(ex.threads);
  ex.ring = NULL;
  ex.threads = NULL;
  ex.nthreads = 0;
  pthread_mutex_unlock(&ex.lock);
}
