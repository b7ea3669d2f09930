/* cpu.h -- CPU slots and the fair queue in front of them (cpu.c).
 *
 * The lowest layer of the executor: it knows threads, slots, tenants and
 * functions, and nothing about instances or calls. executor.c queues jobs
 * and runs its workers through it; wasi.c gives the slot up around a
 * blocking host call (thaw_cpu_block_begin/end) and yields it
 * (thaw_cpu_yield). On a thread that is not one of the executor's workers
 * (a direct thaw_call, a snapshot being made, a unit test) every one of
 * those is a no-op, so the WASI host works the same without an executor.
 */
#ifndef THAW_CPU_H
#define THAW_CPU_H

#include <stdint.h>
#include "thaw.h"

typedef struct thaw_cpu_flow thaw_cpu_flow;

/* A call waiting for its first slot; the executor embeds it in its job. */
typedef struct thaw_cpu_job {
  struct thaw_cpu_job* next;  /* in its function's queue */
  struct thaw_cpu_job* prev;
  struct thaw_cpu_job* hnext; /* in the ticket index */
  thaw_cpu_flow* flow;        /* its function's flow */
  uint64_t ticket;
} thaw_cpu_job;

typedef struct thaw_cpu_config {
  uint32_t slots;       /* calls that run guest code at once */
  uint32_t max_workers; /* worker threads, at least slots + 1 */
  uint32_t max_jobs;    /* sizes the ticket index */
  int preempt;          /* yield slots to tenants owed them (see executor.c) */
} thaw_cpu_config;

/* The executor's statistics (thaw.h) are this module's: one struct. */
typedef thaw_executor_stats thaw_cpu_stats;

/* Returns 0, or THAW_EINVAL / THAW_ENOMEM. */
int thaw_cpu_start(const thaw_cpu_config* cfg);
/* Wakes idle workers: thaw_cpu_next returns NULL once nothing is queued. */
void thaw_cpu_stop(void);
/* After every worker has exited: frees what thaw_cpu_start made. */
void thaw_cpu_destroy(void);

/* Queue a job for (tenant, function). Returns 0 or a THAW_E* code; sets
 * *spawn when the caller must start a worker (thaw_cpu_spawned after), and
 * *awake (if not NULL) when the job went straight to a worker that was
 * spinning, not asleep: it is running now, with no wake-up to wait for. */
int thaw_cpu_submit(thaw_cpu_job* j, uint64_t tenant, uint64_t function,
                    int* spawn, int* awake);
/* Take a queued job out by ticket; NULL when it has started or is unknown. */
thaw_cpu_job* thaw_cpu_cancel(uint64_t ticket);

/* Worker side. thaw_cpu_next ends the caller's previous job (gives its slot
 * back) and waits for the next one, which it returns with a slot held;
 * NULL: stop. *spawn as for submit. A worker thread calls
 * thaw_cpu_thread_init once before anything else. */
void thaw_cpu_thread_init(void);
thaw_cpu_job* thaw_cpu_next(int* spawn);
/* thaw_cpu_next that runs done(arg) once, unlocked, as soon as this worker
 * is back on the idle stack (or has its next job): a completion reported
 * there finds the worker ready for the caller's next call. */
thaw_cpu_job* thaw_cpu_next_after(int* spawn, void (*done)(void*), void* arg);
/* Count one more worker about to start, if under the limit: returns 1 and
 * the caller starts it (or calls thaw_cpu_spawn_failed). */
int thaw_cpu_reserve_worker(void);
/* A worker the caller was told to spawn could not be started. */
void thaw_cpu_spawn_failed(void);
/* A worker thread leaves (after thaw_cpu_next returned NULL). */
void thaw_cpu_thread_exit(void);

/* Guest side, from host functions. block_begin gives the slot up before a
 * wait; block_end gets one back, in fair order, and returns 0, or -1 when
 * the deadline (CLOCK_MONOTONIC ns, 0: none) passed or the call's timeout
 * is pending first (the call then holds no slot and must end). yield gives
 * the slot to whoever is owed it more, if anyone, and gets it back the
 * same way. */
void thaw_cpu_block_begin(void);
int thaw_cpu_block_end(uint64_t deadline_ns);
int thaw_cpu_yield(uint64_t deadline_ns);

/* Outside guest code (after a call's guest code, before its reset): yield
 * if this slice was asked to, when the signal found no guest code to stop. */
void thaw_cpu_checkpoint(void);

void thaw_cpu_stats_get(thaw_cpu_stats* out);

#endif /* THAW_CPU_H */
