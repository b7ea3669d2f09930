/* test_wasi.c -- unit test of the WASI host (native/src/wasi.c) alone.
 *
 * Links wasi.c with stand-ins for the rest of libthaw: thaw_unwind jumps
 * back into the test, thaw_now_ns reads CLOCK_MONOTONIC like call.c's. A
 * 64 KiB buffer plays the guest's linear memory, so the sanitizers catch
 * any access the bounds checks miss; a 64 MiB one gives host functions
 * enough work to show that they stop at the call's deadline.
 *
 *   clang -std=gnu11 -g -fsanitize=address,undefined -Inative/include \
 *     -Inative/src native/test/test_wasi.c native/src/wasi.c -o test_wasi
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

typedef uint32_t u32;
typedef uint64_t u64;

/* The imports under test, declared as wasm2c output declares them. */
#define W struct Z_wasi_snapshot_preview1_instance_t*
u32 Z_wasi_snapshot_preview1Z_args_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_args_sizes_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_environ_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_environ_sizes_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_clock_res_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_clock_time_get(W, u32, u64, u32);
u32 Z_wasi_snapshot_preview1Z_fd_close(W, u32);
u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_filestat_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_prestat_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_pread(W, u32, u32, u32, u64, u32);
u32 Z_wasi_snapshot_preview1Z_fd_pwrite(W, u32, u32, u32, u64, u32);
u32 Z_wasi_snapshot_preview1Z_fd_read(W, u32, u32, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_renumber(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_seek(W, u32, u64, u32, u32);
u32 Z_wasi_snapshot_preview1Z_fd_sync(W, u32);
u32 Z_wasi_snapshot_preview1Z_fd_write(W, u32, u32, u32, u32);
u32 Z_wasi_snapshot_preview1Z_path_open(W, u32, u32, u32, u32, u32, u64, u64,
                                        u32, u32);
u32 Z_wasi_snapshot_preview1Z_path_rename(W, u32, u32, u32, u32, u32, u32);
u32 Z_wasi_snapshot_preview1Z_poll_oneoff(W, u32, u32, u32, u32);
void Z_wasi_snapshot_preview1Z_proc_exit(W, u32);
u32 Z_wasi_snapshot_preview1Z_proc_raise(W, u32);
u32 Z_wasi_snapshot_preview1Z_random_get(W, u32, u32);
u32 Z_wasi_snapshot_preview1Z_sched_yield(W);
u32 Z_wasi_snapshot_preview1Z_sock_recv(W, u32, u32, u32, u32, u32, u32);
#undef W

/* ---- stand-ins for call.c / rt.c ------------------------------------------- */

__thread thaw_call_state* thaw_current __attribute__((tls_model("initial-exec")));
static jmp_buf g_unwind;

void thaw_unwind(int status) { longjmp(g_unwind, status); }

uint64_t thaw_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- harness ----------------------------------------------------------------- */

#include "check.h"

#define MEM_SIZE 65536u
enum { EBADF_ = 8, EFAULT_ = 21, EINVAL_ = 28, ENOSYS_ = 52, ENOTSOCK_ = 57,
       ENOTSUP_ = 58, ESPIPE_ = 70, ENOTCAPABLE_ = 76 };

static uint8_t* g_mem;
static wasm_rt_memory_t g_memory;
static thaw_wasi g_w;
static thaw_call_state g_call;

static uint16_t rd16(u32 p) { uint16_t v; memcpy(&v, g_mem + p, 2); return v; }
static u32 rd32(u32 p) { u32 v; memcpy(&v, g_mem + p, 4); return v; }
static u64 rd64(u32 p) { u64 v; memcpy(&v, g_mem + p, 8); return v; }
static void wr32(u32 p, u32 v) { memcpy(g_mem + p, &v, 4); }
static void wr64(u32 p, u64 v) { memcpy(g_mem + p, &v, 8); }
static u32 rd32_of(const uint8_t* m, u32 p) { u32 v; memcpy(&v, m + p, 4); return v; }
static void wr32_of(uint8_t* m, u32 p, u32 v) { memcpy(m + p, &v, 4); }

static void iov(u32 at, u32 buf, u32 len) {
  wr32(at, buf);
  wr32(at + 4, len);
}

static void begin(const thaw_request* req, uint64_t deadline) {
  memset(g_mem, 0, MEM_SIZE);
  memset(&g_call, 0, sizeof g_call);
  thaw_current = &g_call;
  thaw_wasi_begin_call(&g_w, req, deadline);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_outbuf(void) {
  thaw_outbuf b = {.cap = 10};
  thaw_outbuf_append(&b, (const uint8_t*)"hello", 5);
  thaw_outbuf_append(&b, (const uint8_t*)"", 0);
  CHECK(b.len == 5 && !b.truncated && memcmp(b.data, "hello", 5) == 0);
  thaw_outbuf_append(&b, (const uint8_t*)" world!", 7);
  CHECK(b.len == 10 && b.truncated && memcmp(b.data, "hello worl", 10) == 0);
  CHECK(b.alloc <= 10);
  thaw_outbuf_clear(&b);
  CHECK(b.len == 0 && !b.truncated && b.data != NULL);
  thaw_outbuf_free(&b);

  static uint8_t big[THAW_OUTBUF_KEEP + 100];
  thaw_outbuf g = {.cap = sizeof big};
  for (size_t i = 0; i < sizeof big; i += 1000)
    thaw_outbuf_append(&g, big + i, sizeof big - i < 1000 ? sizeof big - i : 1000);
  CHECK(g.len == sizeof big && !g.truncated);
  thaw_outbuf_clear(&g);
  CHECK(g.data == NULL && g.alloc == 0);
  thaw_outbuf_free(&g);
}

static void test_fd_write(void) {
  begin(NULL, 0);
  memcpy(g_mem + 1000, "abc", 3);
  memcpy(g_mem + 2000, "defg", 4);
  iov(100, 1000, 3);
  iov(108, 2000, 4);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 2, 200) == 0);
  CHECK(rd32(200) == 7);
  CHECK(g_w.out.len == 7 && memcmp(g_w.out.data, "abcdefg", 7) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 2, 100, 1, 200) == 0);
  CHECK(g_w.err.len == 3 && rd32(200) == 3);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 0, 100, 1, 200) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 3, 100, 1, 200) == EBADF_);
  CHECK(g_call.in_host == 0);

  /* A buffer ending exactly at the end of memory is fine; one more byte is
   * not, and the failed call has no effect at all. */
  iov(100, MEM_SIZE - 4, 4);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 1, 200) == 0);
  CHECK(g_w.out.len == 11);
  iov(108, MEM_SIZE - 4, 5);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 2, 200) == EFAULT_);
  CHECK(g_w.out.len == 11);
  iov(108, 0xFFFFFFFFu, 0xFFFFFFFFu);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 2, 200) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, MEM_SIZE - 4, 1, 200) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 0x20000000u, 200) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 1, MEM_SIZE - 3) == EFAULT_);
  CHECK(g_w.out.len == 11);

  /* Over the cap: everything counts as written, the excess is dropped. */
  g_w.out.cap = 12;
  iov(100, 1000, 3);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&g_w, 1, 100, 1, 200) == 0);
  CHECK(rd32(200) == 3 && g_w.out.len == 12 && g_w.out.truncated);
  g_w.out.cap = 1 << 20;
}

static void test_fd_read(void) {
  const char* input = "0123456789";
  thaw_request req = {.stdin_ptr = (uint64_t)(uintptr_t)input, .stdin_len = 10};
  begin(&req, 0);
  iov(100, 1000, 3);
  iov(108, 2000, 4);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 2, 200) == 0);
  CHECK(rd32(200) == 7);
  CHECK(memcmp(g_mem + 1000, "012", 3) == 0 && memcmp(g_mem + 2000, "3456", 4) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 2, 200) == 0);
  CHECK(rd32(200) == 3 && memcmp(g_mem + 1000, "789", 3) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 2, 200) == 0);
  CHECK(rd32(200) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 1, 100, 2, 200) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 9, 100, 2, 200) == EBADF_);

  /* A bad iovec fails before any input is consumed. */
  begin(&req, 0);
  iov(100, 1000, 3);
  iov(108, MEM_SIZE, 1);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 2, 200) == EFAULT_);
  CHECK(g_w.stdin_pos == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 1, MEM_SIZE) == EFAULT_);
  CHECK(g_w.stdin_pos == 0);

  /* The first buffer overwrites the second iovec with an out-of-bounds
   * one: the read stops with EFAULT instead of writing past memory. */
  char evil[24] = {(char)0xF0, (char)0xFF, 0, 0, 0x11, 0, 0, 0};
  thaw_request ereq = {.stdin_ptr = (uint64_t)(uintptr_t)evil,
                       .stdin_len = sizeof evil};
  begin(&ereq, 0);
  iov(100, 108, 8);   /* writes over iov[1] */
  iov(108, 3000, 16); /* valid when checked */
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 2, 200) == EFAULT_);

  /* No request (snapshot initialization): stdin is empty. */
  begin(NULL, 0);
  iov(100, 1000, 3);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&g_w, 0, 100, 1, 200) == 0 && rd32(200) == 0);
}

static void test_args_env(void) {
  static const char args[] = "prog\0-x\0\0last";
  thaw_request req = {.args_ptr = (uint64_t)(uintptr_t)args, .args_len = 13,
                      .argc = 3,
                      .env_ptr = (uint64_t)(uintptr_t)"A=1\0B=2", .env_len = 8,
                      .envc = 2};
  begin(&req, 0);
  CHECK(Z_wasi_snapshot_preview1Z_args_sizes_get(&g_w, 100, 104) == 0);
  CHECK(rd32(100) == 3 && rd32(104) == 9);
  CHECK(Z_wasi_snapshot_preview1Z_args_get(&g_w, 200, 300) == 0);
  CHECK(rd32(200) == 300 && rd32(204) == 305 && rd32(208) == 308);
  CHECK(memcmp(g_mem + 300, "prog\0-x\0", 9) == 0);
  CHECK(g_mem[309] == 0);
  CHECK(Z_wasi_snapshot_preview1Z_args_get(&g_w, MEM_SIZE - 8, 300) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_args_get(&g_w, 200, MEM_SIZE - 8) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_args_sizes_get(&g_w, MEM_SIZE - 2, 104) == EFAULT_);

  CHECK(Z_wasi_snapshot_preview1Z_environ_sizes_get(&g_w, 100, 104) == 0);
  CHECK(rd32(100) == 2 && rd32(104) == 8);
  CHECK(Z_wasi_snapshot_preview1Z_environ_get(&g_w, 400, 500) == 0);
  CHECK(rd32(400) == 500 && rd32(404) == 504);
  CHECK(strcmp((char*)g_mem + 504, "B=2") == 0);

  /* Fewer terminators than announced: only the complete strings count. */
  thaw_request bad = {.args_ptr = (uint64_t)(uintptr_t)"ab\0cd", .args_len = 5,
                      .argc = 5};
  begin(&bad, 0);
  CHECK(Z_wasi_snapshot_preview1Z_args_sizes_get(&g_w, 100, 104) == 0);
  CHECK(rd32(100) == 1 && rd32(104) == 3);

  begin(NULL, 0);
  wr32(100, 77);
  CHECK(Z_wasi_snapshot_preview1Z_environ_sizes_get(&g_w, 100, 104) == 0);
  CHECK(rd32(100) == 0 && rd32(104) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_args_get(&g_w, MEM_SIZE, MEM_SIZE) == 0);
}

static void test_fds(void) {
  begin(NULL, 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_prestat_get(&g_w, 3, 100) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_fdstat_get(&g_w, 1, 100) == 0);
  CHECK(g_mem[100] == 0 && rd64(108) == ((1u << 6) | (1u << 27)));
  CHECK(Z_wasi_snapshot_preview1Z_fd_fdstat_get(&g_w, 0, 100) == 0);
  CHECK(rd64(108) == ((1u << 1) | (1u << 27)));
  CHECK(Z_wasi_snapshot_preview1Z_fd_fdstat_get(&g_w, 3, 100) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_fdstat_get(&g_w, 0, MEM_SIZE - 23) == EFAULT_);
  memset(g_mem + 200, 0xAA, 64);
  CHECK(Z_wasi_snapshot_preview1Z_fd_filestat_get(&g_w, 2, 200) == 0);
  CHECK(rd64(200) == 0 && g_mem[216] == 0 && rd64(256) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_filestat_get(&g_w, 2, MEM_SIZE - 63) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_seek(&g_w, 1, 0, 0, 100) == ESPIPE_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_seek(&g_w, 4, 0, 0, 100) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_pread(&g_w, 0, 0, 0, 0, 100) == ESPIPE_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_pwrite(&g_w, 1, 0, 0, 0, 100) == ESPIPE_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_pwrite(&g_w, 0, 0, 0, 0, 100) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_sync(&g_w, 1) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_renumber(&g_w, 1, 2) == ENOTSUP_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_renumber(&g_w, 1, 3) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_fd_close(&g_w, 1) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_close(&g_w, 3) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_sock_recv(&g_w, 0, 0, 0, 0, 0, 0) == ENOTSOCK_);
  CHECK(Z_wasi_snapshot_preview1Z_sock_recv(&g_w, 5, 0, 0, 0, 0, 0) == EBADF_);
  CHECK(Z_wasi_snapshot_preview1Z_proc_raise(&g_w, 6) == ENOSYS_);
  CHECK(Z_wasi_snapshot_preview1Z_sched_yield(&g_w) == 0);
  CHECK(g_call.in_host == 0);
}

static void test_paths(void) {
  begin(NULL, 0);
  memcpy(g_mem + 100, "file.txt", 8);
  CHECK(Z_wasi_snapshot_preview1Z_path_open(&g_w, 3, 0, 100, 8, 0, ~0ull, ~0ull,
                                            0, 200) == ENOTCAPABLE_);
  CHECK(Z_wasi_snapshot_preview1Z_path_open(&g_w, 3, 0, MEM_SIZE - 4, 8, 0, 0, 0,
                                            0, 200) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_path_open(&g_w, 3, 0, 100, 8, 0, 0, 0, 0,
                                            MEM_SIZE - 2) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_path_rename(&g_w, 3, 100, 8, 3, 0xFFFFFFF0u,
                                              0x20) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_path_rename(&g_w, 3, 100, 8, 3, 100, 8) ==
        ENOTCAPABLE_);
}

static void test_clock_random(void) {
  begin(NULL, 0);
  CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&g_w, 1, 0, 100) == 0);
  u64 t = rd64(100);
  CHECK(t > 0 && t <= thaw_now_ns());
  CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&g_w, 0, 0, 100) == 0);
  CHECK(rd64(100) > 1600000000ull * 1000000000ull);
  CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&g_w, 3, 0, 100) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&g_w, 4, 0, 100) == EINVAL_);
  CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&g_w, 1, 0, MEM_SIZE - 7) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_clock_res_get(&g_w, 2, 100) == 0 && rd64(100) > 0);

  CHECK(Z_wasi_snapshot_preview1Z_random_get(&g_w, 1000, 4096) == 0);
  int nonzero = 0;
  for (int i = 0; i < 4096; i++) nonzero += g_mem[1000 + i] != 0;
  CHECK(nonzero > 3500);
  CHECK(Z_wasi_snapshot_preview1Z_random_get(&g_w, MEM_SIZE, 0) == 0);
  CHECK(Z_wasi_snapshot_preview1Z_random_get(&g_w, MEM_SIZE - 10, 11) == EFAULT_);
}

static void sub_clock(u32 at, u64 userdata, u32 id, u64 timeout, int abs) {
  memset(g_mem + at, 0, 48);
  wr64(at, userdata);
  g_mem[at + 8] = 0;
  wr32(at + 16, id);
  wr64(at + 24, timeout);
  g_mem[at + 40] = abs ? 1 : 0;
}

static void sub_fd(u32 at, u64 userdata, int tag, u32 fd) {
  memset(g_mem + at, 0, 48);
  wr64(at, userdata);
  g_mem[at + 8] = (uint8_t)tag;
  wr32(at + 16, fd);
}

static void test_poll(void) {
  thaw_request req = {.stdin_ptr = (uint64_t)(uintptr_t)"xyz", .stdin_len = 3};
  begin(&req, 0);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 0, 100) == EINVAL_);

  /* A relative sleep. */
  sub_clock(1000, 42, 1, 20000000u, 0);
  u64 t0 = thaw_now_ns();
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, 100) == 0);
  u64 slept = thaw_now_ns() - t0;
  CHECK(slept >= 20000000u && slept < 200000000u);
  CHECK(rd32(100) == 1 && rd64(2000) == 42 && g_mem[2008] == 0 && g_mem[2010] == 0);

  /* An absolute monotonic time in the past fires at once. */
  sub_clock(1000, 43, 1, 5, 1);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, 100) == 0);
  CHECK(rd32(100) == 1 && rd64(2000) == 43);

  /* Ready fds: no sleep; the long clock does not fire; a bad fd reports
   * EBADF in its event. */
  sub_clock(1000, 1, 1, 5000000000ull, 0);
  sub_fd(1048, 2, 1, 0);
  sub_fd(1096, 3, 2, 1);
  sub_fd(1144, 4, 1, 7);
  t0 = thaw_now_ns();
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 4, 100) == 0);
  CHECK(thaw_now_ns() - t0 < 100000000u);
  CHECK(rd32(100) == 3);
  CHECK(rd64(2000) == 2 && g_mem[2010] == 1 && rd64(2016) == 3);
  CHECK(rd64(2032) == 3 && g_mem[2042] == 2);
  CHECK(rd64(2064) == 4 && rd16(2072) == EBADF_ && g_mem[2074] == 1);

  /* Unknown clock ids and tags. */
  sub_clock(1000, 5, 2, 1000, 0);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, 100) == 0);
  CHECK(rd32(100) == 1 && rd16(2008) == EINVAL_);
  sub_fd(1000, 6, 9, 0);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, 100) == EINVAL_);

  /* Bounds. */
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, MEM_SIZE - 47, 2000, 1, 100) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, MEM_SIZE - 31, 1, 100) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 0xFFFFFFFFu, 100) == EFAULT_);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, MEM_SIZE - 3) == EFAULT_);
  CHECK(g_call.in_host == 0);
}

static void test_unwinds(void) {
  /* Sleeping into the deadline ends the call with a timeout. */
  begin(NULL, thaw_now_ns() + 30000000u);
  sub_clock(1000, 1, 1, 10000000000ull, 0);
  u64 t0 = thaw_now_ns();
  int st = setjmp(g_unwind);
  if (st == 0) {
    Z_wasi_snapshot_preview1Z_poll_oneoff(&g_w, 1000, 2000, 1, 100);
    CHECK(!"poll_oneoff returned past the deadline");
  } else {
    u64 waited = thaw_now_ns() - t0;
    CHECK(st == THAW_TRAP_TIMEOUT);
    CHECK(waited >= 25000000u && waited < 500000000u);
    CHECK(g_call.in_host == 0);
  }

  /* A timeout deferred while in the host fires when the host leaves. */
  begin(NULL, 0);
  g_call.timeout_pending = 1;
  st = setjmp(g_unwind);
  if (st == 0) {
    Z_wasi_snapshot_preview1Z_sched_yield(&g_w);
    CHECK(!"sched_yield ignored a pending timeout");
  } else {
    CHECK(st == THAW_TRAP_TIMEOUT && g_call.in_host == 0);
  }

  begin(NULL, 0);
  st = setjmp(g_unwind);
  if (st == 0) {
    Z_wasi_snapshot_preview1Z_proc_exit(&g_w, 3);
    CHECK(!"proc_exit returned");
  } else {
    CHECK(st == THAW_UNWIND_EXIT && g_call.exit_code == 3 && g_call.in_host == 0);
  }
}

/* The status a host call unwound with, or -1 if it returned. */
#define UNWIND_STATUS(call)     \
  ({                            \
    int st_ = setjmp(g_unwind); \
    if (st_ == 0) {             \
      (void)(call);             \
      st_ = -1;                 \
    }                           \
    st_;                        \
  })

/* Before memory exists -- no memory struct at all, or one wasm2c has not
 * allocated yet -- every access is EFAULT and nothing crashes. */
static void test_no_memory(void) {
  wasm_rt_memory_t unallocated = {0};
  wasm_rt_memory_t* memories[] = {NULL, &unallocated};
  thaw_request req = {.stdin_ptr = (uint64_t)(uintptr_t)"in", .stdin_len = 2,
                      .args_ptr = (uint64_t)(uintptr_t)"prog", .args_len = 5,
                      .argc = 1};
  for (int i = 0; i < 2; i++) {
    thaw_wasi w;
    thaw_wasi_init(&w, memories[i], 1 << 20, 1 << 20);
    memset(&g_call, 0, sizeof g_call);
    thaw_current = &g_call;
    thaw_wasi_begin_call(&w, &req, 0);
    CHECK(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, 0, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, 1, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_fd_read(&w, 0, 0, 1, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_random_get(&w, 0, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_clock_time_get(&w, 1, 0, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_args_sizes_get(&w, 0, 4) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_args_get(&w, 0, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_fd_fdstat_get(&w, 1, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&w, 0, 0, 1, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_path_open(&w, 3, 0, 0, 0, 0, 0, 0, 0, 0) == EFAULT_);
    CHECK(Z_wasi_snapshot_preview1Z_sched_yield(&w) == 0);
    CHECK(w.out.len == 0 && g_call.in_host == 0);
    thaw_wasi_free(&w);
  }
}

#define BIG_SIZE (64u << 20)

static int all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* Host work proportional to a guest-chosen length stops at the deadline:
 * with the deadline already past, each call below unwinds with a timeout
 * after its first slice of work, where it would otherwise run to the end.
 * A call doing less than a slice of work never looks at the clock. */
static void test_deadline_in_host(void) {
  uint8_t* mem = calloc(1, BIG_SIZE);
  wasm_rt_memory_t memory = {mem, BIG_SIZE / 65536, BIG_SIZE / 65536, BIG_SIZE};
  thaw_wasi w;
  thaw_wasi_init(&w, &memory, 1 << 20, 1 << 20);
  const uint64_t past = thaw_now_ns() - 1;
#define BEGIN(req, deadline)                    \
  do {                                          \
    memset(mem, 0, BIG_SIZE);                   \
    memset(&g_call, 0, sizeof g_call);          \
    thaw_current = &g_call;                     \
    thaw_wasi_begin_call(&w, (req), (deadline)); \
  } while (0)

  BEGIN(NULL, past);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_random_get(&w, 0, BIG_SIZE)) == THAW_TRAP_TIMEOUT);
  CHECK(all_zero(mem + BIG_SIZE - 4096, 4096) && g_call.in_host == 0);
  BEGIN(NULL, 0);
  CHECK(Z_wasi_snapshot_preview1Z_random_get(&w, 0, BIG_SIZE) == 0);
  CHECK(!all_zero(mem + BIG_SIZE - 4096, 4096));

  /* 8M empty iovecs: the check pass alone is the work. */
  BEGIN(NULL, past);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, BIG_SIZE / 8 - 1, BIG_SIZE - 4)) == THAW_TRAP_TIMEOUT);
  CHECK(w.out.len == 0 && g_call.in_host == 0);
  /* The watchdog's mark, without a deadline of the host's own: the write
   * stops before it would store its count. */
  BEGIN(NULL, 0);
  g_call.timeout_pending = 1;
  wr32_of(mem, BIG_SIZE - 4, 77);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, BIG_SIZE / 8 - 1, BIG_SIZE - 4)) == THAW_TRAP_TIMEOUT);
  CHECK(rd32_of(mem, BIG_SIZE - 4) == 77);
  BEGIN(NULL, 0);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, BIG_SIZE / 8 - 1, BIG_SIZE - 4) == 0);
  CHECK(rd32_of(mem, BIG_SIZE - 4) == 0 && w.out.len == 0);

  /* One 48 MiB iovec: copied in slices, never past the cap. */
  BEGIN(NULL, past);
  wr32_of(mem, 0, 4096);
  wr32_of(mem, 4, 48u << 20);
  memset(mem + 4096, 'x', 48u << 20);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, 1, 8)) == THAW_TRAP_TIMEOUT);
  CHECK(w.out.len > 0 && w.out.len <= w.out.cap);
  w.deadline_ns = 0;
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, 1, 8) == 0);
  CHECK(rd32_of(mem, 8) == 48u << 20 && w.out.len == w.out.cap && w.out.truncated);

  /* A small write past the deadline finishes: it never reads the clock. */
  BEGIN(NULL, past);
  wr32_of(mem, 0, 100);
  wr32_of(mem, 4, 3);
  CHECK(Z_wasi_snapshot_preview1Z_fd_write(&w, 1, 0, 1, 8) == 0);

  /* stdin of 32 MiB into one iovec. */
  uint8_t* input = malloc(32u << 20);
  memset(input, 'i', 32u << 20);
  thaw_request big_stdin = {.stdin_ptr = (uint64_t)(uintptr_t)input, .stdin_len = 32u << 20};
  BEGIN(&big_stdin, past);
  wr32_of(mem, 0, 4096);
  wr32_of(mem, 4, 32u << 20);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_fd_read(&w, 0, 0, 1, 8)) == THAW_TRAP_TIMEOUT);
  CHECK(mem[4096 + (32u << 20) - 1] == 0);
  BEGIN(&big_stdin, 0);
  wr32_of(mem, 0, 4096);
  wr32_of(mem, 4, 32u << 20);
  CHECK(Z_wasi_snapshot_preview1Z_fd_read(&w, 0, 0, 1, 8) == 0);
  CHECK(rd32_of(mem, 8) == 32u << 20 && mem[4096 + (32u << 20) - 1] == 'i');

  /* 4M one-byte arguments. */
  size_t nargs = 4u << 20;
  char* args = calloc(nargs, 2);
  for (size_t i = 0; i < nargs; i++) args[2 * i] = 'a';
  thaw_request many_args = {.args_ptr = (uint64_t)(uintptr_t)args,
                            .args_len = nargs * 2, .argc = nargs};
  BEGIN(&many_args, past);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_args_sizes_get(&w, 0, 4)) == THAW_TRAP_TIMEOUT);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_args_get(&w, 8, 32u << 20)) == THAW_TRAP_TIMEOUT);
  BEGIN(&many_args, 0);
  CHECK(Z_wasi_snapshot_preview1Z_args_sizes_get(&w, 0, 4) == 0);
  CHECK(rd32_of(mem, 0) == nargs && rd32_of(mem, 4) == nargs * 2);
  CHECK(Z_wasi_snapshot_preview1Z_args_get(&w, 8, 32u << 20) == 0);
  CHECK(rd32_of(mem, 8 + 4 * (nargs - 1)) == (32u << 20) + 2 * (nargs - 1));

  /* 800k subscriptions that all fire at once (zeros: a relative realtime
   * clock of 0 ns), and their events. */
  u32 nsubs = BIG_SIZE / (48 + 32) - 1;
  BEGIN(NULL, past);
  CHECK(UNWIND_STATUS(Z_wasi_snapshot_preview1Z_poll_oneoff(&w, 0, nsubs * 48, nsubs, BIG_SIZE - 4)) == THAW_TRAP_TIMEOUT);
  BEGIN(NULL, 0);
  CHECK(Z_wasi_snapshot_preview1Z_poll_oneoff(&w, 0, nsubs * 48, nsubs, BIG_SIZE - 4) == 0);
  CHECK(rd32_of(mem, BIG_SIZE - 4) == nsubs);
#undef BEGIN

  free(args);
  free(input);
  thaw_wasi_free(&w);
  free(mem);
}

int main(void) {
  g_mem = calloc(1, MEM_SIZE);
  g_memory = (wasm_rt_memory_t){g_mem, 1, 1, MEM_SIZE};
  thaw_wasi_init(&g_w, &g_memory, 1 << 20, 1 << 20);
  test_outbuf();
  test_fd_write();
  test_fd_read();
  test_args_env();
  test_fds();
  test_paths();
  test_clock_random();
  test_poll();
  test_unwinds();
  test_no_memory();
  test_deadline_in_host();
  thaw_wasi_free(&g_w);
  free(g_mem);
  return check_summary();
}
