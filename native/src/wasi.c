/* wasi.c -- the wasi_snapshot_preview1 host: a process with stdio only.
 *
 * A function sees three descriptors and nothing else: fd 0 reads the
 * request's stdin buffer, fds 1 and 2 append to bounded in-memory captures.
 * There are no preopened directories, so there is no file system and no
 * network. wasi-libc learns that at startup from fd_prestat_get(3) == EBADF
 * and then fails open() with ENOTCAPABLE on its own, so the path_* and
 * file-only functions below are reachable only by code that calls the
 * imports directly; they answer without touching any host resource.
 *
 * Errno choices for the fd_* functions follow wasmtime's preview1 host, so
 * a program tested under `wasmtime run` gets the same answers here:
 *  - seek/tell on stdio: ESPIPE; pread on stdin and pwrite on stdout/stderr:
 *    ESPIPE; the other direction: EBADF, as fd_read/fd_write answer.
 *  - Operations that need a file or directory (advise, allocate, datasync,
 *    sync, fdstat_set_flags/rights, filestat_set_*, readdir): EBADF on any
 *    fd, since none is one.
 *  - fd_close on stdio succeeds. wasmtime then drops the stream; here it
 *    stays usable: the capture is the function's output, and a program that
 *    closes stdout early (gnulib's close_stdout does) loses nothing.
 *  - Stdio reports filetype UNKNOWN, as wasmtime does for a stdio that is
 *    not a terminal. CHARACTER_DEVICE without seek rights is wasi-libc's
 *    isatty() test: it would make libc line-buffer stdout (a host call per
 *    line) and make programs write terminal colour codes into a response.
 * Elsewhere the answers are those of a host without capabilities:
 *  - path_*: ENOTCAPABLE whatever the fd (wasmtime: EBADF, as no fd is a
 *    directory), once the guest's pointers have been checked.
 *  - sock_*: ENOTSOCK on stdio; proc_raise: ENOSYS; fd_renumber: ENOTSUP
 *    between stdio fds, whose captures are tied to their numbers.
 *  - poll_oneoff reports a bad fd or clock in that subscription's event,
 *    the spec's per-event error, instead of failing the whole call.
 *
 * Memory safety: every guest address is checked against the memory size in
 * 64-bit arithmetic right before the access that uses it, and a bad one is
 * answered with EFAULT, never a trap. Addresses read out of guest memory
 * (iovecs) are re-checked at the point of use, because a read may overwrite
 * the very iovec array it is walking. A memory that does not exist yet (a
 * start function runs before wasm2c allocates it, or the context has no
 * memory at all) has no valid address: every access is EFAULT.
 *
 * Every export brackets its work with thaw_host_enter/leave (HOST below) so
 * that the watchdog never unwinds through host code; leave() takes a
 * timeout deferred meanwhile. proc_exit and a poll_oneoff that sleeps into
 * the call's deadline leave the call themselves (leave_call).
 *
 * Blocking: the only waits a guest can ask for are poll_oneoff's clock
 * subscriptions (nanosleep, sleep, usleep) and sched_yield; stdin is a
 * buffer and never waits. A call on an executor worker gives its CPU slot
 * up for the length of a sleep and queues for one afterwards, in the fair
 * order of cpu.c; sched_yield hands the slot to whoever is owed it more.
 * An inline call (call.c) must not wait at all: its sleep moves it to the
 * executor instead.
 * So a sleeping call holds a thread but no CPU slot (see executor.c).
 *
 * Deferring a timeout is only sound if no host function runs long, and a
 * guest chooses the lengths a host function works through: iovec arrays
 * and subscriptions of millions of entries, buffers of gigabytes. So work
 * proportional to any such length is done in slices (pace below): after
 * each HOST_SLICE_BYTES of work -- bytes copied, or ENTRY_COST per array
 * entry -- the host looks at the deadline and leaves the call with a
 * timeout once it passed. A slice is a millisecond or two even where every
 * page faults (random_get into freshly grown memory), which bounds how far
 * a call overruns its timeout; one clock read per slice costs nothing
 * measurable, and a host call that does less than a slice never reads it.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cpu.h"
#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "guest memory is little-endian and read with plain memcpy");

/* The import signatures are fixed by the ABI; many handlers ignore some of
 * their parameters. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define EXPORT __attribute__((visibility("default")))

enum wasi_errno {
  ESUCCESS = 0,
  WASI_EBADF = 8,
  WASI_EFAULT = 21,
  WASI_EINVAL = 28,
  WASI_EIO = 29,
  WASI_ENOSYS = 52,
  WASI_ENOTSOCK = 57,
  WASI_ENOTSUP = 58,
  WASI_EOVERFLOW = 61,
  WASI_ESPIPE = 70,
  WASI_ENOTCAPABLE = 76,
};

enum {
  RIGHT_FD_READ = 1u << 1,
  RIGHT_FD_WRITE = 1u << 6,
  RIGHT_POLL_FD_READWRITE = 1u << 27,
  FDSTAT_SIZE = 24,
  FILESTAT_SIZE = 64,
  IOVEC_SIZE = 8,
};

enum { CLOCK_REALTIME_ID, CLOCK_MONOTONIC_ID, CLOCK_PROCESS_ID, CLOCK_THREAD_ID };

#define HOST(expr)           \
  do {                       \
    thaw_host_enter();       \
    u32 host_rc_ = (expr);   \
    thaw_host_leave();       \
    return host_rc_;         \
  } while (0)

#define HOST_SLICE_BYTES (1u << 20)
#define ENTRY_COST 64u /* one array entry, counted as this many bytes of work */

/* ---- output capture ------------------------------------------------------- */

#define OUTBUF_MIN_ALLOC 4096u

static int outbuf_reserve(thaw_outbuf* b, size_t need) {
  if (need <= b->alloc) return 1;
  size_t n = b->alloc > SIZE_MAX / 2 ? SIZE_MAX : b->alloc * 2;
  if (n < OUTBUF_MIN_ALLOC) n = OUTBUF_MIN_ALLOC;
  if (n < need) n = need;
  if (n > b->cap) n = b->cap; /* need <= cap, so n still fits it */
  uint8_t* p = realloc(b->data, n);
  if (!p) return 0;
  b->data = p;
  b->alloc = n;
  return 1;
}

void thaw_outbuf_append(thaw_outbuf* b, const uint8_t* p, size_t n) {
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  size_t take = n < room ? n : room;
  /* Out of host memory, the bytes are dropped like bytes over the cap:
   * the guest's write still succeeds and the result says "truncated". */
  if (take && !outbuf_reserve(b, b->len + take)) take = 0;
  if (take) memcpy(b->data + b->len, p, take);
  b->len += take;
  if (take < n) b->truncated = 1;
}

void thaw_outbuf_clear(thaw_outbuf* b) {
  b->len = 0;
  b->truncated = 0;
  if (b->alloc > THAW_OUTBUF_KEEP) thaw_outbuf_free(b);
}

void thaw_outbuf_free(thaw_outbuf* b) {
  free(b->data);
  b->data = NULL;
  b->alloc = 0;
  b->len = 0;
}

/* ---- instance state --------------------------------------------------------- */

void thaw_wasi_init(thaw_wasi* w, wasm_rt_memory_t* memory, size_t stdout_cap,
                    size_t stderr_cap) {
  memset(w, 0, sizeof *w);
  w->memory = memory;
  w->out.cap = stdout_cap;
  w->err.cap = stderr_cap;
}

/* random_get reads getrandom(2) on every call, so no generator state can
 * leak between calls or survive in a snapshot. */
void thaw_wasi_begin_call(thaw_wasi* w, const thaw_request* req,
                          uint64_t deadline_ns) {
  w->req = req;
  w->stdin_pos = 0;
  w->deadline_ns = deadline_ns;
  thaw_outbuf_clear(&w->out);
  thaw_outbuf_clear(&w->err);
}

void thaw_wasi_free(thaw_wasi* w) {
  thaw_outbuf_free(&w->out);
  thaw_outbuf_free(&w->err);
}

/* Leave the call from host code: clear in_host first, since after the jump
 * no host frame is left to defer a timeout for. Only called where the host
 * holds nothing: between slices, never inside libc. */
__attribute__((noreturn)) static void leave_call(int status) {
  if (thaw_current) thaw_current->in_host = 0;
  thaw_unwind(status);
}

static int out_of_time(const thaw_wasi* w) {
  if (thaw_current && thaw_current->timeout_pending) return 1;
  return w->deadline_ns && thaw_now_ns() >= w->deadline_ns;
}

/* Work done since the deadline was last looked at. */
typedef struct pacer {
  u64 work;
} pacer;

static void pace(const thaw_wasi* w, pacer* p, u64 work) {
  p->work += work;
  if (p->work < HOST_SLICE_BYTES) return;
  p->work = 0;
  if (out_of_time(w)) leave_call(THAW_TRAP_TIMEOUT);
}

static u64 slice_of(u64 left) {
  return left < HOST_SLICE_BYTES ? left : HOST_SLICE_BYTES;
}

/* ---- guest memory ------------------------------------------------------------ */

static int in_bounds(const thaw_wasi* w, u64 ptr, u64 len) {
  if (!w->memory || !w->memory->data) return 0;
  u64 size = w->memory->size;
  return ptr <= size && len <= size - ptr;
}

static u8* at(const thaw_wasi* w, u32 ptr) { return w->memory->data + ptr; }

static u16 ld16(const u8* p) {
  u16 v;
  memcpy(&v, p, sizeof v);
  return v;
}
static u32 ld32(const u8* p) {
  u32 v;
  memcpy(&v, p, sizeof v);
  return v;
}
static u64 ld64(const u8* p) {
  u64 v;
  memcpy(&v, p, sizeof v);
  return v;
}
static void st16(u8* p, u16 v) { memcpy(p, &v, sizeof v); }
static void st32(u8* p, u32 v) { memcpy(p, &v, sizeof v); }
static void st64(u8* p, u64 v) { memcpy(p, &v, sizeof v); }

static u32 put32(thaw_wasi* w, u32 ptr, u32 v) {
  if (!in_bounds(w, ptr, 4)) return WASI_EFAULT;
  st32(at(w, ptr), v);
  return ESUCCESS;
}

static u32 put64(thaw_wasi* w, u32 ptr, u64 v) {
  if (!in_bounds(w, ptr, 8)) return WASI_EFAULT;
  st64(at(w, ptr), v);
  return ESUCCESS;
}

/* Entry i of an iovec array, checked as it is now in memory. */
static int iov_get(const thaw_wasi* w, u32 iovs, u32 i, u32* buf, u32* len) {
  u64 entry = (u64)iovs + (u64)i * IOVEC_SIZE;
  if (!in_bounds(w, entry, IOVEC_SIZE)) return 0;
  *buf = ld32(at(w, (u32)entry));
  *len = ld32(at(w, (u32)entry) + 4);
  return in_bounds(w, *buf, *len);
}

/* Checks a whole iovec array before any side effect, so that a bad entry
 * fails the call cleanly, and sums its lengths. */
static u32 iovs_check(const thaw_wasi* w, pacer* p, u32 iovs, u32 n, u64* total) {
  *total = 0;
  for (u32 i = 0; i < n; i++) {
    u32 buf, len;
    if (!iov_get(w, iovs, i, &buf, &len)) return WASI_EFAULT;
    *total += len;
    pace(w, p, ENTRY_COST);
  }
  return ESUCCESS;
}

/* ---- descriptors --------------------------------------------------------------- */

static int is_stdio(u32 fd) { return fd <= 2; }

static u32 stdio_or_badf(u32 fd, u32 err) {
  return is_stdio(fd) ? err : WASI_EBADF;
}

static thaw_outbuf* output_of(thaw_wasi* w, u32 fd) {
  if (fd == 1) return &w->out;
  if (fd == 2) return &w->err;
  return NULL;
}

static u64 stdin_left(const thaw_wasi* w) {
  const thaw_request* r = w->req;
  if (!r || !r->stdin_ptr || w->stdin_pos >= r->stdin_len) return 0;
  return r->stdin_len - w->stdin_pos;
}

static u32 fd_write(thaw_wasi* w, u32 fd, u32 iovs, u32 n, u32 nwritten) {
  thaw_outbuf* b = output_of(w, fd);
  if (!b) return WASI_EBADF;
  pacer p = {0};
  u64 total;
  u32 rc = iovs_check(w, &p, iovs, n, &total);
  if (rc) return rc;
  if (!in_bounds(w, nwritten, 4)) return WASI_EFAULT;
  if (total > UINT32_MAX) return WASI_EINVAL; /* like writev over SSIZE_MAX */
  for (u32 i = 0; i < n; i++) {
    u32 buf, len;
    if (!iov_get(w, iovs, i, &buf, &len)) return WASI_EFAULT;
    pace(w, &p, ENTRY_COST);
    for (u64 done = 0, k; done < len; done += k) {
      k = slice_of(len - done);
      thaw_outbuf_append(b, at(w, buf) + done, k);
      pace(w, &p, k);
    }
  }
  /* Bytes over the cap count as written: they are dropped on purpose, and
   * a short count would only make the program retry them. */
  return put32(w, nwritten, (u32)total);
}

/* A timeout can end the call between slices, with guest memory half
 * written and stdin_pos where it was; no one can observe either, as a
 * timed-out instance is never used again. */
static u32 fd_read(thaw_wasi* w, u32 fd, u32 iovs, u32 n, u32 nread) {
  if (fd != 0) return WASI_EBADF;
  pacer p = {0};
  u64 total;
  u32 rc = iovs_check(w, &p, iovs, n, &total);
  if (rc) return rc;
  if (!in_bounds(w, nread, 4)) return WASI_EFAULT;
  u64 left = stdin_left(w);
  if (left > UINT32_MAX) left = UINT32_MAX; /* nread is 32 bits */
  const u8* src = w->req ? (const u8*)(uintptr_t)w->req->stdin_ptr : NULL;
  u64 done = 0;
  for (u32 i = 0; i < n && done < left; i++) {
    u32 buf, len;
    if (!iov_get(w, iovs, i, &buf, &len)) return WASI_EFAULT;
    pace(w, &p, ENTRY_COST);
    u64 want = len < left - done ? len : left - done;
    for (u64 copied = 0, k; copied < want; copied += k) {
      k = slice_of(want - copied);
      memcpy(at(w, buf) + copied, src + w->stdin_pos + done + copied, k);
      pace(w, &p, k);
    }
    done += want;
  }
  w->stdin_pos += done;
  return put32(w, nread, (u32)done);
}

static u32 fd_fdstat_get(thaw_wasi* w, u32 fd, u32 out) {
  if (!is_stdio(fd)) return WASI_EBADF;
  if (!in_bounds(w, out, FDSTAT_SIZE)) return WASI_EFAULT;
  u64 rights = RIGHT_POLL_FD_READWRITE | (fd == 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE);
  u8* p = at(w, out);
  memset(p, 0, FDSTAT_SIZE); /* filetype UNKNOWN (see the top), no flags */
  st64(p + 8, rights);
  st64(p + 16, rights);
  return ESUCCESS;
}

static u32 fd_filestat_get(thaw_wasi* w, u32 fd, u32 out) {
  if (!is_stdio(fd)) return WASI_EBADF;
  if (!in_bounds(w, out, FILESTAT_SIZE)) return WASI_EFAULT;
  memset(at(w, out), 0, FILESTAT_SIZE); /* filetype UNKNOWN, no times */
  return ESUCCESS;
}

static u32 fd_renumber(u32 from, u32 to) {
  return is_stdio(from) && is_stdio(to) ? WASI_ENOTSUP : WASI_EBADF;
}

/* ---- args and environment --------------------------------------------------------- */

/* The first `count` NUL-terminated strings of a packed host buffer. A
 * buffer with fewer terminators than announced yields only the complete
 * strings, so nothing past its end is ever read. */
typedef struct strlist {
  const u8* data;
  u64 size; /* bytes of the complete strings, terminators included */
  u64 count;
} strlist;

/* One past the NUL ending the string at data[from], or 0 if there is none
 * before len. */
static u64 string_end(const thaw_wasi* w, pacer* p, const u8* data, u64 from,
                      u64 len) {
  pace(w, p, ENTRY_COST);
  for (u64 at = from, k; at < len; at += k) {
    k = slice_of(len - at);
    const u8* nul = memchr(data + at, 0, k);
    if (nul) {
      u64 end = (u64)(nul - data) + 1;
      pace(w, p, end - at);
      return end;
    }
    pace(w, p, k);
  }
  return 0;
}

static strlist strlist_of(const thaw_wasi* w, pacer* p, u64 ptr, u64 len,
                          u64 count) {
  strlist s = {(const u8*)(uintptr_t)ptr, 0, 0};
  while (s.data && s.count < count && s.size < len) {
    u64 end = string_end(w, p, s.data, s.size, len);
    if (!end) break;
    s.size = end;
    s.count++;
  }
  return s;
}

typedef strlist (*strlist_fn)(const thaw_wasi* w, pacer* p);

static strlist args_of(const thaw_wasi* w, pacer* p) {
  const thaw_request* r = w->req;
  return r ? strlist_of(w, p, r->args_ptr, r->args_len, r->argc) : (strlist){0};
}

static strlist env_of(const thaw_wasi* w, pacer* p) {
  const thaw_request* r = w->req;
  return r ? strlist_of(w, p, r->env_ptr, r->env_len, r->envc) : (strlist){0};
}

static u32 list_sizes_get(thaw_wasi* w, strlist_fn list, u32 count_out,
                          u32 size_out) {
  pacer p = {0};
  strlist s = list(w, &p);
  if (s.count > UINT32_MAX || s.size > UINT32_MAX) return WASI_EOVERFLOW;
  u32 rc = put32(w, count_out, (u32)s.count);
  return rc ? rc : put32(w, size_out, (u32)s.size);
}

static u32 list_get(thaw_wasi* w, strlist_fn list, u32 ptrs, u32 buf) {
  pacer p = {0};
  strlist s = list(w, &p);
  if (s.count > UINT32_MAX || s.size > UINT32_MAX) return WASI_EOVERFLOW;
  if (!in_bounds(w, ptrs, s.count * 4) || !in_bounds(w, buf, s.size))
    return WASI_EFAULT;
  for (u64 done = 0, k; done < s.size; done += k) {
    k = slice_of(s.size - done);
    memcpy(at(w, buf) + done, s.data + done, k);
    pace(w, &p, k);
  }
  for (u64 i = 0, off = 0; i < s.count; i++) {
    st32(at(w, ptrs) + i * 4, (u32)(buf + off));
    off = string_end(w, &p, s.data, off, s.size);
  }
  return ESUCCESS;
}

/* ---- clocks and randomness ---------------------------------------------------------- */

static int host_clock(u32 id, clockid_t* out) {
  static const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC,
                                  CLOCK_PROCESS_CPUTIME_ID,
                                  CLOCK_THREAD_CPUTIME_ID};
  if (id >= sizeof ids / sizeof ids[0]) return 0;
  *out = ids[id];
  return 1;
}

static u64 ts_ns(struct timespec ts) {
  return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

static u32 clock_res_get(thaw_wasi* w, u32 id, u32 out) {
  clockid_t c;
  struct timespec ts;
  if (!host_clock(id, &c) || clock_getres(c, &ts)) return WASI_EINVAL;
  return put64(w, out, ts_ns(ts));
}

static u32 clock_time_get(thaw_wasi* w, u32 id, u32 out) {
  clockid_t c;
  struct timespec ts;
  if (!host_clock(id, &c) || clock_gettime(c, &ts)) return WASI_EINVAL;
  return put64(w, out, ts_ns(ts));
}

static u32 random_get(thaw_wasi* w, u32 buf, u32 len) {
  if (!in_bounds(w, buf, len)) return WASI_EFAULT;
  pacer p = {0};
  for (u32 done = 0; done < len;) {
    ssize_t n = getrandom(at(w, buf) + done, slice_of(len - done), 0);
    if (n < 0) {
      if (errno != EINTR) return WASI_EIO;
      /* The watchdog's signal interrupts a large read: see if it was ours. */
      if (out_of_time(w)) leave_call(THAW_TRAP_TIMEOUT);
      continue;
    }
    done += (u32)n;
    pace(w, &p, (u64)n);
  }
  return ESUCCESS;
}

/* ---- poll_oneoff ------------------------------------------------------------------------ */

enum {
  SUB_SIZE = 48,
  EVENT_SIZE = 32,
  EVENTTYPE_CLOCK = 0,
  EVENTTYPE_FD_READ = 1,
  EVENTTYPE_FD_WRITE = 2,
  SUBCLOCK_ABSTIME = 1,
  EVENT_HANGUP = 1,
};

/* Clocks read once per poll, so that both passes over the subscriptions
 * compute the same wake-up times. */
typedef struct poll_clock {
  u64 mono; /* thaw_now_ns(), which reads CLOCK_MONOTONIC */
  u64 real;
} poll_clock;

static u64 add_sat(u64 a, u64 b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

/* When a clock subscription fires, in thaw_now_ns() time. Only the
 * realtime and monotonic clocks can be waited on (as in wasmtime); another
 * id fires at once with EINVAL. */
static u64 clock_fires_at(const u8* sub, const poll_clock* t0, u16* error) {
  u32 id = ld32(sub + 16);
  u64 timeout = ld64(sub + 24);
  if (id != CLOCK_REALTIME_ID && id != CLOCK_MONOTONIC_ID) {
    *error = WASI_EINVAL;
    return 0;
  }
  if (!(ld16(sub + 40) & SUBCLOCK_ABSTIME)) return add_sat(t0->mono, timeout);
  if (id == CLOCK_MONOTONIC_ID) return timeout;
  return timeout > t0->real ? add_sat(t0->mono, timeout - t0->real) : t0->mono;
}

/* When a subscription fires (0: at once) and the event it then reports.
 * fd subscriptions never wait: stdin is a buffer and the captures always
 * accept bytes. A subscription with an invalid tag never fires. */
static u64 sub_fires_at(const thaw_wasi* w, const u8* sub, const poll_clock* t0,
                        u8* ev) {
  u8 tag = sub[8];
  u32 fd = ld32(sub + 16);
  u16 error = ESUCCESS, flags = 0;
  u64 nbytes = 0, when = 0;
  if (tag == EVENTTYPE_CLOCK) {
    when = clock_fires_at(sub, t0, &error);
  } else if (tag == EVENTTYPE_FD_READ && fd == 0) {
    nbytes = stdin_left(w);
    if (!nbytes) flags = EVENT_HANGUP; /* at EOF, as poll(2) on a pipe */
  } else if (tag == EVENTTYPE_FD_WRITE && (fd == 1 || fd == 2)) {
    nbytes = 1; /* "at least one byte", as wasmtime reports for stdio */
  } else if (tag == EVENTTYPE_FD_READ || tag == EVENTTYPE_FD_WRITE) {
    error = WASI_EBADF;
  } else {
    return UINT64_MAX;
  }
  memset(ev, 0, EVENT_SIZE);
  st64(ev, ld64(sub));
  st16(ev + 8, error);
  ev[10] = tag;
  st64(ev + 16, nbytes);
  st16(ev + 24, flags);
  return when;
}

/* Sleeps until `wake` unless the call's deadline comes first, in which case
 * the call ends with a timeout. The watchdog's signal interrupts nanosleep
 * (never restarted, whatever SA_RESTART says) and is seen through
 * timeout_pending, which thaw_host_leave then acts on. */
static void sleep_until(const thaw_wasi* w, u64 wake) {
  for (;;) {
    if (thaw_current && thaw_current->timeout_pending) return;
    u64 now = thaw_now_ns();
    if (now >= wake) return;
    u64 until = wake;
    if (w->deadline_ns) {
      if (now >= w->deadline_ns) leave_call(THAW_TRAP_TIMEOUT);
      if (w->deadline_ns < until) until = w->deadline_ns;
    }
    u64 d = until - now;
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

static u64 realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts_ns(ts);
}

/* Two passes over the subscriptions: the first validates them and finds the
 * earliest wake-up, the second (after sleeping until then) writes the events
 * of everything due. Reading them twice, rather than copying, needs no
 * allocation for any nsubscriptions. */
static u32 poll_oneoff(thaw_wasi* w, u32 in, u32 out, u32 nsubs, u32 nevents) {
  if (nsubs == 0) return WASI_EINVAL; /* would block forever */
  if (!in_bounds(w, in, (u64)nsubs * SUB_SIZE) ||
      !in_bounds(w, out, (u64)nsubs * EVENT_SIZE) || !in_bounds(w, nevents, 4))
    return WASI_EFAULT;
  poll_clock t0 = {thaw_now_ns(), realtime_ns()};
  pacer p = {0};
  u8 ev[EVENT_SIZE];
  u64 first = UINT64_MAX;
  for (u32 i = 0; i < nsubs; i++) {
    const u8* sub = at(w, in) + (u64)i * SUB_SIZE;
    if (sub[8] > EVENTTYPE_FD_WRITE) return WASI_EINVAL;
    u64 when = sub_fires_at(w, sub, &t0, ev);
    if (when < first) first = when;
    pace(w, &p, ENTRY_COST);
  }
  /* A call that is going to wait gives its CPU slot up for the wait and
   * queues for one after it (cpu.c); a timeout while asleep or while
   * queued ends the call, which then holds no slot. */
  if (first > thaw_now_ns()) {
    if (thaw_current && thaw_current->inline_call) leave_call(THAW_MOVED);
    thaw_cpu_block_begin();
    sleep_until(w, first);
    if (thaw_cpu_block_end(w->deadline_ns) != 0) leave_call(THAW_TRAP_TIMEOUT);
  }
  u64 now = thaw_now_ns();
  u32 count = 0;
  for (u32 i = 0; i < nsubs; i++) {
    pace(w, &p, ENTRY_COST);
    if (sub_fires_at(w, at(w, in) + (u64)i * SUB_SIZE, &t0, ev) > now) continue;
    memcpy(at(w, out) + (u64)count * EVENT_SIZE, ev, EVENT_SIZE);
    count++;
  }
  return put32(w, nevents, count);
}

/* ---- paths and sockets ------------------------------------------------------------------- */

/* No capability reaches any path. The guest's pointers are still checked,
 * so that a bad one gets the same EFAULT it would get from a real host. */
static u32 no_path(const thaw_wasi* w, u32 path, u32 len, u32 out, u32 out_len) {
  if (!in_bounds(w, path, len) || !in_bounds(w, out, out_len)) return WASI_EFAULT;
  return WASI_ENOTCAPABLE;
}

static u32 no_paths(const thaw_wasi* w, u32 a, u32 a_len, u32 b, u32 b_len) {
  if (!in_bounds(w, a, a_len)) return WASI_EFAULT;
  return no_path(w, b, b_len, 0, 0);
}

static u32 not_socket(u32 fd) { return stdio_or_badf(fd, WASI_ENOTSOCK); }

/* ---- exports ---------------------------------------------------------------------------- */

EXPORT u32 Z_wasi_snapshot_preview1Z_args_get(thaw_wasi* w, u32 argv, u32 buf) {
  HOST(list_get(w, args_of, argv, buf));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_args_sizes_get(thaw_wasi* w, u32 argc,
                                                    u32 size) {
  HOST(list_sizes_get(w, args_of, argc, size));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_environ_get(thaw_wasi* w, u32 environ,
                                                 u32 buf) {
  HOST(list_get(w, env_of, environ, buf));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_environ_sizes_get(thaw_wasi* w, u32 count,
                                                       u32 size) {
  HOST(list_sizes_get(w, env_of, count, size));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_clock_res_get(thaw_wasi* w, u32 id,
                                                   u32 out) {
  HOST(clock_res_get(w, id, out));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_clock_time_get(thaw_wasi* w, u32 id,
                                                    u64 precision, u32 out) {
  HOST(clock_time_get(w, id, out));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_advise(thaw_wasi* w, u32 fd, u64 offset,
                                               u64 len, u32 advice) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_allocate(thaw_wasi* w, u32 fd,
                                                 u64 offset, u64 len) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_close(thaw_wasi* w, u32 fd) {
  HOST(stdio_or_badf(fd, ESUCCESS));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_datasync(thaw_wasi* w, u32 fd) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(thaw_wasi* w, u32 fd,
                                                   u32 out) {
  HOST(fd_fdstat_get(w, fd, out));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_fdstat_set_flags(thaw_wasi* w, u32 fd,
                                                         u32 flags) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_fdstat_set_rights(thaw_wasi* w, u32 fd,
                                                          u64 base,
                                                          u64 inheriting) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_filestat_get(thaw_wasi* w, u32 fd,
                                                     u32 out) {
  HOST(fd_filestat_get(w, fd, out));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_filestat_set_size(thaw_wasi* w, u32 fd,
                                                          u64 size) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_filestat_set_times(thaw_wasi* w, u32 fd,
                                                           u64 atim, u64 mtim,
                                                           u32 flags) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_pread(thaw_wasi* w, u32 fd, u32 iovs,
                                              u32 n, u64 offset, u32 nread) {
  HOST(fd == 0 ? WASI_ESPIPE : WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_prestat_get(thaw_wasi* w, u32 fd,
                                                    u32 out) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_prestat_dir_name(thaw_wasi* w, u32 fd,
                                                         u32 path, u32 len) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_pwrite(thaw_wasi* w, u32 fd, u32 iovs,
                                               u32 n, u64 offset,
                                               u32 nwritten) {
  HOST(output_of(w, fd) ? WASI_ESPIPE : WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_read(thaw_wasi* w, u32 fd, u32 iovs,
                                             u32 n, u32 nread) {
  HOST(fd_read(w, fd, iovs, n, nread));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_readdir(thaw_wasi* w, u32 fd, u32 buf,
                                                u32 len, u64 cookie,
                                                u32 bufused) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_renumber(thaw_wasi* w, u32 from,
                                                 u32 to) {
  HOST(fd_renumber(from, to));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_seek(thaw_wasi* w, u32 fd, u64 offset,
                                             u32 whence, u32 newoffset) {
  HOST(stdio_or_badf(fd, WASI_ESPIPE));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_sync(thaw_wasi* w, u32 fd) {
  HOST(WASI_EBADF);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_tell(thaw_wasi* w, u32 fd,
                                             u32 offset) {
  HOST(stdio_or_badf(fd, WASI_ESPIPE));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_fd_write(thaw_wasi* w, u32 fd, u32 iovs,
                                              u32 n, u32 nwritten) {
  HOST(fd_write(w, fd, iovs, n, nwritten));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_create_directory(thaw_wasi* w, u32 fd,
                                                           u32 path, u32 len) {
  HOST(no_path(w, path, len, 0, 0));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_filestat_get(thaw_wasi* w, u32 fd,
                                                       u32 flags, u32 path,
                                                       u32 len, u32 out) {
  HOST(no_path(w, path, len, out, FILESTAT_SIZE));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_filestat_set_times(
    thaw_wasi* w, u32 fd, u32 flags, u32 path, u32 len, u64 atim, u64 mtim,
    u32 fst_flags) {
  HOST(no_path(w, path, len, 0, 0));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_link(thaw_wasi* w, u32 old_fd,
                                               u32 old_flags, u32 old_path,
                                               u32 old_len, u32 new_fd,
                                               u32 new_path, u32 new_len) {
  HOST(no_paths(w, old_path, old_len, new_path, new_len));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_open(thaw_wasi* w, u32 fd,
                                               u32 dirflags, u32 path, u32 len,
                                               u32 oflags, u64 rights_base,
                                               u64 rights_inheriting,
                                               u32 fdflags, u32 opened) {
  HOST(no_path(w, path, len, opened, 4));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_readlink(thaw_wasi* w, u32 fd,
                                                   u32 path, u32 len, u32 buf,
                                                   u32 buf_len, u32 bufused) {
  HOST(in_bounds(w, buf, buf_len) ? no_path(w, path, len, bufused, 4)
                                  : WASI_EFAULT);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_remove_directory(thaw_wasi* w, u32 fd,
                                                           u32 path, u32 len) {
  HOST(no_path(w, path, len, 0, 0));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_rename(thaw_wasi* w, u32 fd,
                                                 u32 old_path, u32 old_len,
                                                 u32 new_fd, u32 new_path,
                                                 u32 new_len) {
  HOST(no_paths(w, old_path, old_len, new_path, new_len));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_symlink(thaw_wasi* w, u32 old_path,
                                                  u32 old_len, u32 fd,
                                                  u32 new_path, u32 new_len) {
  HOST(no_paths(w, old_path, old_len, new_path, new_len));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_path_unlink_file(thaw_wasi* w, u32 fd,
                                                      u32 path, u32 len) {
  HOST(no_path(w, path, len, 0, 0));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_poll_oneoff(thaw_wasi* w, u32 in, u32 out,
                                                 u32 nsubs, u32 nevents) {
  HOST(poll_oneoff(w, in, out, nsubs, nevents));
}

/* Records the exit code and unwinds; the caller reports THAW_OK with it. */
EXPORT void Z_wasi_snapshot_preview1Z_proc_exit(thaw_wasi* w, u32 code) {
  if (thaw_current) thaw_current->exit_code = (int32_t)code;
  leave_call(THAW_UNWIND_EXIT);
}

EXPORT u32 Z_wasi_snapshot_preview1Z_proc_raise(thaw_wasi* w, u32 sig) {
  HOST(WASI_ENOSYS);
}

/* Yields the CPU slot to a call owed it more, if one waits (cpu.c), then
 * the thread. */
static u32 yield_cpu(const thaw_wasi* w) {
  if (thaw_cpu_yield(w->deadline_ns) != 0) leave_call(THAW_TRAP_TIMEOUT);
  sched_yield();
  return ESUCCESS;
}

EXPORT u32 Z_wasi_snapshot_preview1Z_sched_yield(thaw_wasi* w) {
  HOST(yield_cpu(w));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_random_get(thaw_wasi* w, u32 buf,
                                                u32 len) {
  HOST(random_get(w, buf, len));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_sock_accept(thaw_wasi* w, u32 fd,
                                                 u32 flags, u32 out) {
  HOST(not_socket(fd));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_sock_recv(thaw_wasi* w, u32 fd, u32 iovs,
                                               u32 n, u32 flags, u32 nread,
                                               u32 oflags) {
  HOST(not_socket(fd));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_sock_send(thaw_wasi* w, u32 fd, u32 iovs,
                                               u32 n, u32 flags,
                                               u32 nwritten) {
  HOST(not_socket(fd));
}

EXPORT u32 Z_wasi_snapshot_preview1Z_sock_shutdown(thaw_wasi* w, u32 fd,
                                                   u32 how) {
  HOST(not_socket(fd));
}
