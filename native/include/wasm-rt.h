/* wasm-rt.h -- the runtime interface that wasm2c output is compiled against.
 *
 * thaw replaces wabt's header and its default runtime (libwasm-rt-impl) with
 * its own so that libthaw decides where linear memory lives and how traps
 * unwind. The layout of every type here must match what wasm2c 1.0.32
 * generates code for; the function definitions live in native/src/rt.c.
 *
 * Choices that differ from wabt's defaults, and why:
 *  - Out-of-bounds accesses: guard pages on x86-64 Linux, explicit checks
 *    elsewhere or when the build defines THAW_EXPLICIT_BOUNDS_CHECKS=1
 *    (src/compiler/flags.ts). Guarded code does no compare per access, and
 *    no reload of the memory's size after every store; libthaw gives each
 *    instance an 8 GiB slot of address space and turns the fault into a
 *    trap. native/src/guard.c explains the model and its density cost; the
 *    choice travels in thaw_module_info.flags (the glue sets it from the
 *    macro below), so libthaw never runs unchecked code on an unguarded
 *    memory.
 *  - Stack exhaustion is a check in every function's prologue, never a
 *    SIGSEGV on the native stack. wasm2c's prologue is fixed text in fn.c,
 *    `if (++wasm_rt_call_stack_depth > WASM_RT_MAX_CALL_STACK_DEPTH) trap`,
 *    but it expands the macro from this header where it is used, so the
 *    macro is an expression of the calling frame: THAW_DEPTH_BOUND while the
 *    frame lies above this thread's stack floor, 0 below it (and every depth
 *    is > 0). One compare so enforces two limits:
 *     . call depth: the counter is a thread-local in libthaw with the
 *       initial-exec TLS model; libthaw starts every call at
 *       THAW_DEPTH_BOUND - limit, which makes the limit a per-call setting
 *       without recompiling the function.
 *     . native stack: thaw_stack_floor (initial-exec too, set once per
 *       thread by call.c) is the stack's low end plus THAW_STACK_RESERVE,
 *       whose arithmetic (call.c) rests on the compiler refusing frames
 *       over THAW_MAX_FRAME_BYTES (thaw_module.h): a frame is allocated
 *       before its check runs.
 *    Where the frame is comes from the address of a local, not from
 *    __builtin_frame_address(0) or the stack pointer read with asm.
 *    Measured with gcc -O3 (the pipeline's compiler): the local costs ~4
 *    instructions per call over the depth check alone (fib: +31 %
 *    instructions; the compute kernel example runs in the same 84 ms), and
 *    nothing in a loop over an inlined callee, whose local's address the
 *    compiler hoists. The other two force a frame pointer or an opaque asm
 *    into every inlined callee: 9-10 instructions per iteration of such a
 *    loop instead of 3.2. A local needs no asm, so any GNU C target works.
 *    It can sit anywhere in its frame, so a frame that passed its check may
 *    reach a whole frame below the floor; the reserve counts that frame.
 */
#ifndef WASM_RT_H_
#define WASM_RT_H_

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define wasm_rt_memcpy __builtin_memcpy
#define wasm_rt_unreachable __builtin_unreachable
#define WASM_RT_NO_RETURN __attribute__((noreturn))

#ifndef THAW_EXPLICIT_BOUNDS_CHECKS
#if defined(__x86_64__) && defined(__linux__)
#define THAW_EXPLICIT_BOUNDS_CHECKS 0
#else
#define THAW_EXPLICIT_BOUNDS_CHECKS 1
#endif
#endif

#define WASM_RT_SKIP_SIGNAL_RECOVERY 1
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER (!THAW_EXPLICIT_BOUNDS_CHECKS)
#define WASM_RT_USE_STACK_DEPTH_COUNT 1
#define WASM_RT_MERGED_OOB_AND_EXHAUSTION_TRAPS 0

#define THAW_DEPTH_BOUND 0x40000000u
#define WASM_RT_MAX_CALL_STACK_DEPTH                                    \
  ({                                                                    \
    char thaw_frame_marker_;                                            \
    __builtin_expect((uintptr_t)&thaw_frame_marker_ < thaw_stack_floor, \
                     0)                                                 \
        ? 0u                                                            \
        : THAW_DEPTH_BOUND;                                             \
  })

extern __thread uint32_t wasm_rt_call_stack_depth
    __attribute__((tls_model("initial-exec")));
extern __thread uintptr_t thaw_stack_floor
    __attribute__((tls_model("initial-exec")));

typedef enum {
  WASM_RT_TRAP_NONE,
  WASM_RT_TRAP_OOB,
  WASM_RT_TRAP_INT_OVERFLOW,
  WASM_RT_TRAP_DIV_BY_ZERO,
  WASM_RT_TRAP_INVALID_CONVERSION,
  WASM_RT_TRAP_UNREACHABLE,
  WASM_RT_TRAP_CALL_INDIRECT,
  WASM_RT_TRAP_UNCAUGHT_EXCEPTION,
  WASM_RT_TRAP_EXHAUSTION,
} wasm_rt_trap_t;

typedef enum {
  WASM_RT_I32,
  WASM_RT_I64,
  WASM_RT_F32,
  WASM_RT_F64,
  WASM_RT_FUNCREF,
  WASM_RT_EXTERNREF,
  WASM_RT_V128,
} wasm_rt_type_t;

typedef void (*wasm_rt_function_ptr_t)(void);

typedef struct {
  uint32_t func_type;
  wasm_rt_function_ptr_t func;
  void* module_instance;
} wasm_rt_funcref_t;

static const wasm_rt_funcref_t wasm_rt_funcref_null_value = {0, NULL, NULL};

typedef void* wasm_rt_externref_t;
static const wasm_rt_externref_t wasm_rt_externref_null_value = NULL;

typedef struct {
  uint8_t* data;
  uint32_t pages, max_pages;
  uint64_t size; /* bytes: 4 GiB, all of wasm32, does not fit in 32 bits */
} wasm_rt_memory_t;

typedef struct {
  wasm_rt_funcref_t* data;
  uint32_t max_size;
  uint32_t size;
} wasm_rt_funcref_table_t;

typedef struct {
  wasm_rt_externref_t* data;
  uint32_t max_size;
  uint32_t size;
} wasm_rt_externref_table_t;

void wasm_rt_init(void);
bool wasm_rt_is_initialized(void);
void wasm_rt_free(void);
WASM_RT_NO_RETURN void wasm_rt_trap(wasm_rt_trap_t);
const char* wasm_rt_strerror(wasm_rt_trap_t trap);
uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...);
uint32_t wasm_rt_register_tag(uint32_t size);
void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void* values);
WASM_RT_NO_RETURN void wasm_rt_throw(void);

#define WASM_RT_UNWIND_TARGET jmp_buf
WASM_RT_UNWIND_TARGET* wasm_rt_get_unwind_target(void);
void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET* target);
uint32_t wasm_rt_exception_tag(void);
uint32_t wasm_rt_exception_size(void);
void* wasm_rt_exception(void);
#define WASM_RT_SETJMP(buf) setjmp(buf)
#define wasm_rt_try(target) WASM_RT_SETJMP(target)

void wasm_rt_allocate_memory(wasm_rt_memory_t*, uint32_t initial_pages,
                             uint32_t max_pages);
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t*, uint32_t pages);
void wasm_rt_free_memory(wasm_rt_memory_t*);
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t*,
                                    uint32_t elements, uint32_t max_elements);
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t*);
void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t*,
                                      uint32_t elements,
                                      uint32_t max_elements);
void wasm_rt_free_externref_table(wasm_rt_externref_table_t*);
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t*, uint32_t delta,
                                    wasm_rt_funcref_t init);
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t*,
                                      uint32_t delta,
                                      wasm_rt_externref_t init);

/* ---- SIMD ------------------------------------------------------------------
 * Debian's wasm2c 1.0.32 has no SIMD (it aborts on any v128 instruction), so
 * thaw's compiler lowers SIMD before translation (src/compiler/simd.ts):
 * every v128 value becomes two i64 halves (low lane bytes first), and every
 * SIMD instruction that is not a plain load or store becomes a call of one
 * of these helpers, which the module imports from wasi_snapshot_preview1
 * under the name thaw_simd_<instruction>. wasm2c declares each import as an
 * extern function of that name; the static definition here comes first, so
 * the declaration takes its internal linkage (C11 6.2.2p4) and gcc inlines
 * the helper into the code that uses it. Lanes are numbered as in memory,
 * which is the host's order on a little-endian host. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "thaw's SIMD helpers assume a little-endian host"
#endif

#include <math.h>

#ifndef wasm_multi_jj
#define wasm_multi_jj wasm_multi_jj
struct wasm_multi_jj {
  uint64_t j0;
  uint64_t j1;
};
#endif

struct Z_wasi_snapshot_preview1_instance_t;

typedef union {
  uint64_t d[2];
  uint8_t u8[16];
  int8_t i8[16];
  uint16_t u16[8];
  int16_t i16[8];
  uint32_t u32[4];
  int32_t i32[4];
  uint64_t u64[2];
  int64_t i64[2];
  float f32[4];
  double f64[2];
} thaw_v128;

static inline thaw_v128 thaw_v(uint64_t lo, uint64_t hi) {
  thaw_v128 v;
  v.d[0] = lo;
  v.d[1] = hi;
  return v;
}
static inline struct wasm_multi_jj thaw_r(thaw_v128 v) {
  struct wasm_multi_jj r = {v.d[0], v.d[1]};
  return r;
}

#define THAW_SIMD(name) Z_wasi_snapshot_preview1Z_thaw_simd_##name
#define THAW_W struct Z_wasi_snapshot_preview1_instance_t* w_ __attribute__((unused))
#define THAW_V(x) uint64_t x##l, uint64_t x##h
#define THAW_VR static inline struct wasm_multi_jj

/* r.OUT[i] = EXPR over x = a.IN[i] (and y = b.IN[i]) for i < N. */
#define THAW_UN(name, IN, OUT, N, EXPR)                         \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a)) {                  \
    thaw_v128 a = thaw_v(al, ah), r = thaw_v(0, 0);             \
    for (int i = 0; i < (N); i++) {                             \
      __typeof__(a.IN[0]) x = a.IN[i];                          \
      r.OUT[i] = (EXPR);                                        \
    }                                                           \
    return thaw_r(r);                                           \
  }
#define THAW_BIN(name, IN, OUT, N, EXPR)                        \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), THAW_V(b)) {       \
    thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), r;        \
    for (int i = 0; i < (N); i++) {                             \
      __typeof__(a.IN[0]) x = a.IN[i], y = b.IN[i];             \
      r.OUT[i] = (EXPR);                                        \
    }                                                           \
    return thaw_r(r);                                           \
  }
#define THAW_SHIFT(name, L, N, BITS, EXPR)                      \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), uint32_t s) {      \
    thaw_v128 a = thaw_v(al, ah), r;                            \
    s &= (BITS) - 1;                                            \
    for (int i = 0; i < (N); i++) {                             \
      __typeof__(a.L[0]) x = a.L[i];                            \
      r.L[i] = (EXPR);                                          \
    }                                                           \
    return thaw_r(r);                                           \
  }
#define THAW_SPLAT(name, L, N, T)                               \
  THAW_VR THAW_SIMD(name)(THAW_W, T x) {                        \
    thaw_v128 r;                                                \
    for (int i = 0; i < (N); i++) r.L[i] = x;                   \
    return thaw_r(r);                                           \
  }
#define THAW_EXTRACT(name, L, N, T)                             \
  static inline T THAW_SIMD(name)(THAW_W, THAW_V(a), uint32_t lane) { \
    return (T)thaw_v(al, ah).L[lane & ((N) - 1)];               \
  }
#define THAW_REPLACE(name, L, N, T)                             \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), T x, uint32_t lane) { \
    thaw_v128 r = thaw_v(al, ah);                               \
    r.L[lane & ((N) - 1)] = (__typeof__(r.L[0]))x;              \
    return thaw_r(r);                                           \
  }
#define THAW_ALL_TRUE(name, L, N)                               \
  static inline uint32_t THAW_SIMD(name)(THAW_W, THAW_V(a)) {   \
    thaw_v128 v = thaw_v(al, ah);                               \
    for (int i = 0; i < (N); i++)                               \
      if (!v.L[i]) return 0;                                    \
    return 1;                                                   \
  }
#define THAW_BITMASK(name, L, N)                                \
  static inline uint32_t THAW_SIMD(name)(THAW_W, THAW_V(a)) {   \
    thaw_v128 v = thaw_v(al, ah);                               \
    uint32_t m = 0;                                             \
    for (int i = 0; i < (N); i++) m |= (uint32_t)(v.L[i] < 0) << i; \
    return m;                                                   \
  }
/* Halves of a narrowing or widening: r.OUT[i] from a's (or b's) lanes. */
#define THAW_NARROW(name, IN, OUT, N, LO, HI)                   \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), THAW_V(b)) {       \
    thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), r;        \
    for (int i = 0; i < (N); i++) {                             \
      r.OUT[i] = (__typeof__(r.OUT[0]))(a.IN[i] < (LO) ? (LO) : a.IN[i] > (HI) ? (HI) : a.IN[i]); \
      r.OUT[i + (N)] = (__typeof__(r.OUT[0]))(b.IN[i] < (LO) ? (LO) : b.IN[i] > (HI) ? (HI) : b.IN[i]); \
    }                                                           \
    return thaw_r(r);                                           \
  }
#define THAW_WIDEN(name, IN, OUT, N, FROM)                      \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a)) {                  \
    thaw_v128 a = thaw_v(al, ah), r;                            \
    for (int i = 0; i < (N); i++) r.OUT[i] = a.IN[i + (FROM)];  \
    return thaw_r(r);                                           \
  }
#define THAW_EXTMUL(name, IN, OUT, WIDE, N, FROM)               \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), THAW_V(b)) {       \
    thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), r;        \
    for (int i = 0; i < (N); i++)                               \
      r.OUT[i] = (WIDE)a.IN[i + (FROM)] * (WIDE)b.IN[i + (FROM)]; \
    return thaw_r(r);                                           \
  }
#define THAW_PAIRWISE(name, IN, OUT, N, WIDE)                   \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a)) {                  \
    thaw_v128 a = thaw_v(al, ah), r;                            \
    for (int i = 0; i < (N); i++) r.OUT[i] = (WIDE)a.IN[2 * i] + (WIDE)a.IN[2 * i + 1]; \
    return thaw_r(r);                                           \
  }

/* wasm's min and max: NaN if either is NaN, and -0 below +0. */
static inline float thaw_fminf(float a, float b) {
  return a != a || b != b ? a + b : a == b ? (signbit(a) ? a : b) : a < b ? a : b;
}
static inline float thaw_fmaxf(float a, float b) {
  return a != a || b != b ? a + b : a == b ? (signbit(a) ? b : a) : a > b ? a : b;
}
static inline double thaw_fmin(double a, double b) {
  return a != a || b != b ? a + b : a == b ? (signbit(a) ? a : b) : a < b ? a : b;
}
static inline double thaw_fmax(double a, double b) {
  return a != a || b != b ? a + b : a == b ? (signbit(a) ? b : a) : a > b ? a : b;
}
/* Saturating float-to-int conversions: NaN is 0, out of range clamps. */
static inline int32_t thaw_sat_i32(double x) {
  return x != x ? 0 : x <= -2147483648.0 ? INT32_MIN : x >= 2147483648.0 ? INT32_MAX : (int32_t)x;
}
static inline uint32_t thaw_sat_u32(double x) {
  return !(x > 0) ? 0 : x >= 4294967296.0 ? UINT32_MAX : (uint32_t)x;
}
#define THAW_SAT(x, LO, HI) ((x) < (LO) ? (LO) : (x) > (HI) ? (HI) : (x))

THAW_SPLAT(f32x4_splat, f32, 4, float)
THAW_SPLAT(f64x2_splat, f64, 2, double)

THAW_EXTRACT(i8x16_extract_lane_s, i8, 16, uint32_t)
THAW_EXTRACT(i8x16_extract_lane_u, u8, 16, uint32_t)
THAW_EXTRACT(i16x8_extract_lane_s, i16, 8, uint32_t)
THAW_EXTRACT(i16x8_extract_lane_u, u16, 8, uint32_t)
THAW_EXTRACT(i32x4_extract_lane, u32, 4, uint32_t)
THAW_EXTRACT(i64x2_extract_lane, u64, 2, uint64_t)
THAW_EXTRACT(f32x4_extract_lane, f32, 4, float)
THAW_EXTRACT(f64x2_extract_lane, f64, 2, double)
THAW_REPLACE(i8x16_replace_lane, u8, 16, uint32_t)
THAW_REPLACE(i16x8_replace_lane, u16, 8, uint32_t)
THAW_REPLACE(i32x4_replace_lane, u32, 4, uint32_t)
THAW_REPLACE(i64x2_replace_lane, u64, 2, uint64_t)
THAW_REPLACE(f32x4_replace_lane, f32, 4, float)
THAW_REPLACE(f64x2_replace_lane, f64, 2, double)

THAW_VR THAW_SIMD(i8x16_shuffle)(THAW_W, THAW_V(a), THAW_V(b), THAW_V(m)) {
  thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), m = thaw_v(ml, mh), r;
  for (int i = 0; i < 16; i++) {
    uint8_t k = m.u8[i] & 31;
    r.u8[i] = k < 16 ? a.u8[k] : b.u8[k - 16];
  }
  return thaw_r(r);
}
THAW_VR THAW_SIMD(i8x16_swizzle)(THAW_W, THAW_V(a), THAW_V(b)) {
  thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), r;
  for (int i = 0; i < 16; i++) r.u8[i] = b.u8[i] < 16 ? a.u8[b.u8[i]] : 0;
  return thaw_r(r);
}

/* Comparisons: all ones where true. */
#define THAW_CMP(name, IN, OUT, N, OP) THAW_BIN(name, IN, OUT, N, (x OP y) ? -1 : 0)
THAW_CMP(i8x16_ne, u8, i8, 16, !=)
THAW_CMP(i8x16_lt_u, u8, i8, 16, <)
THAW_CMP(i8x16_gt_u, u8, i8, 16, >)
THAW_CMP(i8x16_le_s, i8, i8, 16, <=)
THAW_CMP(i8x16_le_u, u8, i8, 16, <=)
THAW_CMP(i8x16_ge_s, i8, i8, 16, >=)
THAW_CMP(i8x16_ge_u, u8, i8, 16, >=)
THAW_CMP(i16x8_ne, u16, i16, 8, !=)
THAW_CMP(i16x8_lt_u, u16, i16, 8, <)
THAW_CMP(i16x8_gt_u, u16, i16, 8, >)
THAW_CMP(i16x8_le_s, i16, i16, 8, <=)
THAW_CMP(i16x8_le_u, u16, i16, 8, <=)
THAW_CMP(i16x8_ge_s, i16, i16, 8, >=)
THAW_CMP(i16x8_ge_u, u16, i16, 8, >=)
THAW_CMP(i32x4_ne, u32, i32, 4, !=)
THAW_CMP(i32x4_lt_u, u32, i32, 4, <)
THAW_CMP(i32x4_gt_u, u32, i32, 4, >)
THAW_CMP(i32x4_le_s, i32, i32, 4, <=)
THAW_CMP(i32x4_le_u, u32, i32, 4, <=)
THAW_CMP(i32x4_ge_s, i32, i32, 4, >=)
THAW_CMP(i32x4_ge_u, u32, i32, 4, >=)
THAW_CMP(i64x2_eq, u64, i64, 2, ==)
THAW_CMP(i64x2_ne, u64, i64, 2, !=)
THAW_CMP(i64x2_lt_s, i64, i64, 2, <)
THAW_CMP(i64x2_gt_s, i64, i64, 2, >)
THAW_CMP(i64x2_le_s, i64, i64, 2, <=)
THAW_CMP(i64x2_ge_s, i64, i64, 2, >=)
THAW_CMP(f32x4_eq, f32, i32, 4, ==)
THAW_CMP(f32x4_ne, f32, i32, 4, !=)
THAW_CMP(f32x4_lt, f32, i32, 4, <)
THAW_CMP(f32x4_gt, f32, i32, 4, >)
THAW_CMP(f32x4_le, f32, i32, 4, <=)
THAW_CMP(f32x4_ge, f32, i32, 4, >=)
THAW_CMP(f64x2_eq, f64, i64, 2, ==)
THAW_CMP(f64x2_ne, f64, i64, 2, !=)
THAW_CMP(f64x2_lt, f64, i64, 2, <)
THAW_CMP(f64x2_gt, f64, i64, 2, >)
THAW_CMP(f64x2_le, f64, i64, 2, <=)
THAW_CMP(f64x2_ge, f64, i64, 2, >=)

THAW_UN(v128_not, u64, u64, 2, ~x)
THAW_VR THAW_SIMD(v128_bitselect)(THAW_W, THAW_V(a), THAW_V(b), THAW_V(c)) {
  struct wasm_multi_jj r = {(al & cl) | (bl & ~cl), (ah & ch) | (bh & ~ch)};
  return r;
}
static inline uint32_t THAW_SIMD(v128_any_true)(THAW_W, THAW_V(a)) { return (al | ah) != 0; }

THAW_VR THAW_SIMD(f32x4_demote_f64x2_zero)(THAW_W, THAW_V(a)) {
  thaw_v128 a = thaw_v(al, ah), r = thaw_v(0, 0);
  r.f32[0] = (float)a.f64[0];
  r.f32[1] = (float)a.f64[1];
  return thaw_r(r);
}
THAW_WIDEN(f64x2_promote_low_f32x4, f32, f64, 2, 0)

/* Integer lane arithmetic wraps: computed in unsigned types. */
THAW_UN(i8x16_abs, i8, u8, 16, x < 0 ? (uint8_t)(0u - (uint8_t)x) : (uint8_t)x)
THAW_UN(i8x16_neg, u8, u8, 16, (uint8_t)(0u - x))
THAW_UN(i8x16_popcnt, u8, u8, 16, (uint8_t)__builtin_popcount(x))
THAW_ALL_TRUE(i8x16_all_true, u8, 16)
THAW_UN(f32x4_ceil, f32, f32, 4, ceilf(x))
THAW_UN(f32x4_floor, f32, f32, 4, floorf(x))
THAW_UN(f32x4_trunc, f32, f32, 4, truncf(x))
THAW_UN(f32x4_nearest, f32, f32, 4, nearbyintf(x))
THAW_SHIFT(i8x16_shl, u8, 16, 8, (uint8_t)((uint32_t)x << s))
THAW_SHIFT(i8x16_shr_s, i8, 16, 8, (int8_t)(x >> s))
THAW_SHIFT(i8x16_shr_u, u8, 16, 8, (uint8_t)(x >> s))
THAW_UN(f64x2_ceil, f64, f64, 2, ceil(x))
THAW_UN(f64x2_floor, f64, f64, 2, floor(x))
THAW_BIN(i8x16_min_s, i8, i8, 16, x < y ? x : y)
THAW_BIN(i8x16_max_s, i8, i8, 16, x > y ? x : y)
THAW_UN(f64x2_trunc, f64, f64, 2, trunc(x))
THAW_PAIRWISE(i16x8_extadd_pairwise_i8x16_s, i8, i16, 8, int16_t)
THAW_PAIRWISE(i16x8_extadd_pairwise_i8x16_u, u8, u16, 8, uint16_t)
THAW_PAIRWISE(i32x4_extadd_pairwise_i16x8_s, i16, i32, 4, int32_t)
THAW_PAIRWISE(i32x4_extadd_pairwise_i16x8_u, u16, u32, 4, uint32_t)

THAW_UN(i16x8_abs, i16, u16, 8, x < 0 ? (uint16_t)(0u - (uint16_t)x) : (uint16_t)x)
THAW_UN(i16x8_neg, u16, u16, 8, (uint16_t)(0u - x))
THAW_BIN(i16x8_q15mulr_sat_s, i16, i16, 8, (int16_t)THAW_SAT(((int32_t)x * y + 0x4000) >> 15, -32768, 32767))
THAW_ALL_TRUE(i16x8_all_true, u16, 8)
THAW_BITMASK(i16x8_bitmask, i16, 8)
THAW_NARROW(i16x8_narrow_i32x4_u, i32, u16, 4, 0, 65535)
THAW_WIDEN(i16x8_extend_low_i8x16_s, i8, i16, 8, 0)
THAW_WIDEN(i16x8_extend_high_i8x16_s, i8, i16, 8, 8)
THAW_WIDEN(i16x8_extend_low_i8x16_u, u8, u16, 8, 0)
THAW_WIDEN(i16x8_extend_high_i8x16_u, u8, u16, 8, 8)
THAW_UN(f64x2_nearest, f64, f64, 2, nearbyint(x))
THAW_BIN(i16x8_min_u, u16, u16, 8, x < y ? x : y)
THAW_BIN(i16x8_max_u, u16, u16, 8, x > y ? x : y)
THAW_EXTMUL(i16x8_extmul_low_i8x16_s, i8, i16, int16_t, 8, 0)
THAW_EXTMUL(i16x8_extmul_high_i8x16_s, i8, i16, int16_t, 8, 8)
THAW_EXTMUL(i16x8_extmul_low_i8x16_u, u8, u16, uint16_t, 8, 0)
THAW_EXTMUL(i16x8_extmul_high_i8x16_u, u8, u16, uint16_t, 8, 8)

THAW_UN(i32x4_abs, i32, u32, 4, x < 0 ? 0u - (uint32_t)x : (uint32_t)x)
THAW_UN(i32x4_neg, u32, u32, 4, 0u - x)
THAW_ALL_TRUE(i32x4_all_true, u32, 4)
THAW_BITMASK(i32x4_bitmask, i32, 4)
THAW_WIDEN(i32x4_extend_low_i16x8_s, i16, i32, 4, 0)
THAW_WIDEN(i32x4_extend_high_i16x8_s, i16, i32, 4, 4)
THAW_WIDEN(i32x4_extend_low_i16x8_u, u16, u32, 4, 0)
THAW_WIDEN(i32x4_extend_high_i16x8_u, u16, u32, 4, 4)
THAW_BIN(i32x4_mul, u32, u32, 4, x * y)
THAW_BIN(i32x4_min_s, i32, i32, 4, x < y ? x : y)
THAW_BIN(i32x4_min_u, u32, u32, 4, x < y ? x : y)
THAW_BIN(i32x4_max_s, i32, i32, 4, x > y ? x : y)
THAW_BIN(i32x4_max_u, u32, u32, 4, x > y ? x : y)
THAW_VR THAW_SIMD(i32x4_dot_i16x8_s)(THAW_W, THAW_V(a), THAW_V(b)) {
  thaw_v128 a = thaw_v(al, ah), b = thaw_v(bl, bh), r;
  for (int i = 0; i < 4; i++)
    r.u32[i] = (uint32_t)((int32_t)a.i16[2 * i] * b.i16[2 * i]) +
               (uint32_t)((int32_t)a.i16[2 * i + 1] * b.i16[2 * i + 1]);
  return thaw_r(r);
}
THAW_EXTMUL(i32x4_extmul_low_i16x8_s, i16, i32, int32_t, 4, 0)
THAW_EXTMUL(i32x4_extmul_high_i16x8_s, i16, i32, int32_t, 4, 4)
THAW_EXTMUL(i32x4_extmul_low_i16x8_u, u16, u32, uint32_t, 4, 0)
THAW_EXTMUL(i32x4_extmul_high_i16x8_u, u16, u32, uint32_t, 4, 4)

THAW_UN(i64x2_abs, i64, u64, 2, x < 0 ? 0u - (uint64_t)x : (uint64_t)x)
THAW_UN(i64x2_neg, u64, u64, 2, 0u - x)
THAW_ALL_TRUE(i64x2_all_true, u64, 2)
THAW_BITMASK(i64x2_bitmask, i64, 2)
THAW_WIDEN(i64x2_extend_low_i32x4_s, i32, i64, 2, 0)
THAW_WIDEN(i64x2_extend_high_i32x4_s, i32, i64, 2, 2)
THAW_WIDEN(i64x2_extend_low_i32x4_u, u32, u64, 2, 0)
THAW_WIDEN(i64x2_extend_high_i32x4_u, u32, u64, 2, 2)
THAW_SHIFT(i64x2_shr_s, i64, 2, 64, x >> s)
THAW_BIN(i64x2_mul, u64, u64, 2, x * y)
THAW_EXTMUL(i64x2_extmul_low_i32x4_s, i32, i64, int64_t, 2, 0)
THAW_EXTMUL(i64x2_extmul_high_i32x4_s, i32, i64, int64_t, 2, 2)
THAW_EXTMUL(i64x2_extmul_low_i32x4_u, u32, u64, uint64_t, 2, 0)
THAW_EXTMUL(i64x2_extmul_high_i32x4_u, u32, u64, uint64_t, 2, 2)

THAW_UN(f32x4_abs, u32, u32, 4, x & 0x7fffffffu)
THAW_UN(f32x4_neg, u32, u32, 4, x ^ 0x80000000u)
THAW_UN(f32x4_sqrt, f32, f32, 4, sqrtf(x))
THAW_BIN(f32x4_min, f32, f32, 4, thaw_fminf(x, y))
THAW_BIN(f32x4_max, f32, f32, 4, thaw_fmaxf(x, y))
THAW_BIN(f32x4_pmin, f32, f32, 4, y < x ? y : x)
THAW_BIN(f32x4_pmax, f32, f32, 4, x < y ? y : x)
THAW_UN(f64x2_abs, u64, u64, 2, x & 0x7fffffffffffffffull)
THAW_UN(f64x2_neg, u64, u64, 2, x ^ 0x8000000000000000ull)
THAW_UN(f64x2_sqrt, f64, f64, 2, sqrt(x))
THAW_BIN(f64x2_min, f64, f64, 2, thaw_fmin(x, y))
THAW_BIN(f64x2_max, f64, f64, 2, thaw_fmax(x, y))
THAW_BIN(f64x2_pmin, f64, f64, 2, y < x ? y : x)
THAW_BIN(f64x2_pmax, f64, f64, 2, x < y ? y : x)

THAW_UN(i32x4_trunc_sat_f32x4_s, f32, i32, 4, thaw_sat_i32(x))
THAW_UN(i32x4_trunc_sat_f32x4_u, f32, u32, 4, thaw_sat_u32(x))
THAW_UN(f32x4_convert_i32x4_s, i32, f32, 4, (float)x)
THAW_UN(f32x4_convert_i32x4_u, u32, f32, 4, (float)x)
THAW_UN(i32x4_trunc_sat_f64x2_s_zero, f64, i32, 2, thaw_sat_i32(x))
THAW_UN(i32x4_trunc_sat_f64x2_u_zero, f64, u32, 2, thaw_sat_u32(x))
THAW_WIDEN(f64x2_convert_low_i32x4_s, i32, f64, 2, 0)
THAW_WIDEN(f64x2_convert_low_i32x4_u, u32, f64, 2, 0)

/* Bitwise and 64-bit lane operations stay in general registers: two
 * instructions, no trip through a vector register. */
THAW_BIN(v128_and, u64, u64, 2, x & y)
THAW_BIN(v128_or, u64, u64, 2, x | y)
THAW_BIN(v128_xor, u64, u64, 2, x ^ y)
THAW_BIN(v128_andnot, u64, u64, 2, x & ~y)
THAW_BIN(i64x2_add, u64, u64, 2, x + y)
THAW_BIN(i64x2_sub, u64, u64, 2, x - y)
THAW_SHIFT(i64x2_shl, u64, 2, 64, x << s)
THAW_SHIFT(i64x2_shr_u, u64, 2, 64, x >> s)

/* The lane operations SSE2 (every x86-64) has an instruction for; the
 * loops above serve every other host. */
#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
static inline __m128i thaw_m(uint64_t lo, uint64_t hi) { return _mm_set_epi64x((long long)hi, (long long)lo); }
static inline struct wasm_multi_jj thaw_mr(__m128i v) {
  struct wasm_multi_jj r = {(uint64_t)_mm_cvtsi128_si64(v), (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v))};
  return r;
}
#define THAW_SSE(name, EXPR)                                    \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), THAW_V(b)) {       \
    __m128i x = thaw_m(al, ah), y = thaw_m(bl, bh);             \
    return thaw_mr(EXPR);                                       \
  }
THAW_SSE(i8x16_add, _mm_add_epi8(x, y))
THAW_SSE(i8x16_sub, _mm_sub_epi8(x, y))
THAW_SSE(i8x16_add_sat_s, _mm_adds_epi8(x, y))
THAW_SSE(i8x16_add_sat_u, _mm_adds_epu8(x, y))
THAW_SSE(i8x16_sub_sat_s, _mm_subs_epi8(x, y))
THAW_SSE(i8x16_sub_sat_u, _mm_subs_epu8(x, y))
THAW_SSE(i8x16_min_u, _mm_min_epu8(x, y))
THAW_SSE(i8x16_max_u, _mm_max_epu8(x, y))
THAW_SSE(i8x16_avgr_u, _mm_avg_epu8(x, y))
THAW_SSE(i8x16_eq, _mm_cmpeq_epi8(x, y))
THAW_SSE(i8x16_gt_s, _mm_cmpgt_epi8(x, y))
THAW_SSE(i8x16_lt_s, _mm_cmpgt_epi8(y, x))
THAW_SSE(i8x16_narrow_i16x8_s, _mm_packs_epi16(x, y))
THAW_SSE(i8x16_narrow_i16x8_u, _mm_packus_epi16(x, y))
THAW_SSE(i16x8_add, _mm_add_epi16(x, y))
THAW_SSE(i16x8_sub, _mm_sub_epi16(x, y))
THAW_SSE(i16x8_mul, _mm_mullo_epi16(x, y))
THAW_SSE(i16x8_add_sat_s, _mm_adds_epi16(x, y))
THAW_SSE(i16x8_add_sat_u, _mm_adds_epu16(x, y))
THAW_SSE(i16x8_sub_sat_s, _mm_subs_epi16(x, y))
THAW_SSE(i16x8_sub_sat_u, _mm_subs_epu16(x, y))
THAW_SSE(i16x8_min_s, _mm_min_epi16(x, y))
THAW_SSE(i16x8_max_s, _mm_max_epi16(x, y))
THAW_SSE(i16x8_avgr_u, _mm_avg_epu16(x, y))
THAW_SSE(i16x8_eq, _mm_cmpeq_epi16(x, y))
THAW_SSE(i16x8_gt_s, _mm_cmpgt_epi16(x, y))
THAW_SSE(i16x8_lt_s, _mm_cmpgt_epi16(y, x))
THAW_SSE(i16x8_narrow_i32x4_s, _mm_packs_epi32(x, y))
THAW_SSE(i32x4_add, _mm_add_epi32(x, y))
THAW_SSE(i32x4_sub, _mm_sub_epi32(x, y))
THAW_SSE(i32x4_eq, _mm_cmpeq_epi32(x, y))
THAW_SSE(i32x4_gt_s, _mm_cmpgt_epi32(x, y))
THAW_SSE(i32x4_lt_s, _mm_cmpgt_epi32(y, x))
THAW_SSE(f32x4_add, _mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(x), _mm_castsi128_ps(y))))
THAW_SSE(f32x4_sub, _mm_castps_si128(_mm_sub_ps(_mm_castsi128_ps(x), _mm_castsi128_ps(y))))
THAW_SSE(f32x4_mul, _mm_castps_si128(_mm_mul_ps(_mm_castsi128_ps(x), _mm_castsi128_ps(y))))
THAW_SSE(f32x4_div, _mm_castps_si128(_mm_div_ps(_mm_castsi128_ps(x), _mm_castsi128_ps(y))))
THAW_SSE(f64x2_add, _mm_castpd_si128(_mm_add_pd(_mm_castsi128_pd(x), _mm_castsi128_pd(y))))
THAW_SSE(f64x2_sub, _mm_castpd_si128(_mm_sub_pd(_mm_castsi128_pd(x), _mm_castsi128_pd(y))))
THAW_SSE(f64x2_mul, _mm_castpd_si128(_mm_mul_pd(_mm_castsi128_pd(x), _mm_castsi128_pd(y))))
THAW_SSE(f64x2_div, _mm_castpd_si128(_mm_div_pd(_mm_castsi128_pd(x), _mm_castsi128_pd(y))))
#define THAW_SSE_SHIFT(name, FN, BITS)                          \
  THAW_VR THAW_SIMD(name)(THAW_W, THAW_V(a), uint32_t s) {      \
    return thaw_mr(FN(thaw_m(al, ah), _mm_cvtsi32_si128((int)(s & ((BITS) - 1))))); \
  }
#define THAW_SSE_SPLAT(name, T, EXPR)                           \
  THAW_VR THAW_SIMD(name)(THAW_W, T x) { return thaw_mr(EXPR); }
THAW_SSE_SHIFT(i16x8_shl, _mm_sll_epi16, 16)
THAW_SSE_SHIFT(i16x8_shr_s, _mm_sra_epi16, 16)
THAW_SSE_SHIFT(i16x8_shr_u, _mm_srl_epi16, 16)
THAW_SSE_SHIFT(i32x4_shl, _mm_sll_epi32, 32)
THAW_SSE_SHIFT(i32x4_shr_s, _mm_sra_epi32, 32)
THAW_SSE_SHIFT(i32x4_shr_u, _mm_srl_epi32, 32)
THAW_SSE_SPLAT(i8x16_splat, uint32_t, _mm_set1_epi8((char)x))
THAW_SSE_SPLAT(i16x8_splat, uint32_t, _mm_set1_epi16((short)x))
THAW_SSE_SPLAT(i32x4_splat, uint32_t, _mm_set1_epi32((int)x))
THAW_SSE_SPLAT(i64x2_splat, uint64_t, _mm_set1_epi64x((long long)x))
static inline uint32_t THAW_SIMD(i8x16_bitmask)(THAW_W, THAW_V(a)) {
  return (uint32_t)_mm_movemask_epi8(thaw_m(al, ah));
}
#else
THAW_SPLAT(i8x16_splat, u8, 16, uint32_t)
THAW_SPLAT(i16x8_splat, u16, 8, uint32_t)
THAW_SPLAT(i32x4_splat, u32, 4, uint32_t)
THAW_SPLAT(i64x2_splat, u64, 2, uint64_t)
THAW_BITMASK(i8x16_bitmask, i8, 16)
THAW_SHIFT(i16x8_shl, u16, 8, 16, (uint16_t)((uint32_t)x << s))
THAW_SHIFT(i16x8_shr_s, i16, 8, 16, (int16_t)(x >> s))
THAW_SHIFT(i16x8_shr_u, u16, 8, 16, (uint16_t)(x >> s))
THAW_SHIFT(i32x4_shl, u32, 4, 32, x << s)
THAW_SHIFT(i32x4_shr_s, i32, 4, 32, x >> s)
THAW_SHIFT(i32x4_shr_u, u32, 4, 32, x >> s)
THAW_CMP(i8x16_eq, u8, i8, 16, ==)
THAW_CMP(i8x16_lt_s, i8, i8, 16, <)
THAW_CMP(i8x16_gt_s, i8, i8, 16, >)
THAW_CMP(i16x8_eq, u16, i16, 8, ==)
THAW_CMP(i16x8_lt_s, i16, i16, 8, <)
THAW_CMP(i16x8_gt_s, i16, i16, 8, >)
THAW_CMP(i32x4_eq, u32, i32, 4, ==)
THAW_CMP(i32x4_lt_s, i32, i32, 4, <)
THAW_CMP(i32x4_gt_s, i32, i32, 4, >)
THAW_NARROW(i8x16_narrow_i16x8_s, i16, i8, 8, -128, 127)
THAW_NARROW(i8x16_narrow_i16x8_u, i16, u8, 8, 0, 255)
THAW_BIN(i8x16_add, u8, u8, 16, (uint8_t)(x + y))
THAW_BIN(i8x16_add_sat_s, i8, i8, 16, (int8_t)THAW_SAT((int32_t)x + y, -128, 127))
THAW_BIN(i8x16_add_sat_u, u8, u8, 16, (uint8_t)THAW_SAT((int32_t)x + y, 0, 255))
THAW_BIN(i8x16_sub, u8, u8, 16, (uint8_t)(x - y))
THAW_BIN(i8x16_sub_sat_s, i8, i8, 16, (int8_t)THAW_SAT((int32_t)x - y, -128, 127))
THAW_BIN(i8x16_sub_sat_u, u8, u8, 16, (uint8_t)THAW_SAT((int32_t)x - y, 0, 255))
THAW_BIN(i8x16_min_u, u8, u8, 16, x < y ? x : y)
THAW_BIN(i8x16_max_u, u8, u8, 16, x > y ? x : y)
THAW_BIN(i8x16_avgr_u, u8, u8, 16, (uint8_t)(((uint32_t)x + y + 1) >> 1))
THAW_NARROW(i16x8_narrow_i32x4_s, i32, i16, 4, -32768, 32767)
THAW_BIN(i16x8_add, u16, u16, 8, (uint16_t)(x + y))
THAW_BIN(i16x8_add_sat_s, i16, i16, 8, (int16_t)THAW_SAT((int32_t)x + y, -32768, 32767))
THAW_BIN(i16x8_add_sat_u, u16, u16, 8, (uint16_t)THAW_SAT((int32_t)x + y, 0, 65535))
THAW_BIN(i16x8_sub, u16, u16, 8, (uint16_t)(x - y))
THAW_BIN(i16x8_sub_sat_s, i16, i16, 8, (int16_t)THAW_SAT((int32_t)x - y, -32768, 32767))
THAW_BIN(i16x8_sub_sat_u, u16, u16, 8, (uint16_t)THAW_SAT((int32_t)x - y, 0, 65535))
THAW_BIN(i16x8_mul, u16, u16, 8, (uint16_t)((uint32_t)x * y))
THAW_BIN(i16x8_min_s, i16, i16, 8, x < y ? x : y)
THAW_BIN(i16x8_max_s, i16, i16, 8, x > y ? x : y)
THAW_BIN(i16x8_avgr_u, u16, u16, 8, (uint16_t)(((uint32_t)x + y + 1) >> 1))
THAW_BIN(i32x4_add, u32, u32, 4, x + y)
THAW_BIN(i32x4_sub, u32, u32, 4, x - y)
THAW_BIN(f32x4_add, f32, f32, 4, x + y)
THAW_BIN(f32x4_sub, f32, f32, 4, x - y)
THAW_BIN(f32x4_mul, f32, f32, 4, x * y)
THAW_BIN(f32x4_div, f32, f32, 4, x / y)
THAW_BIN(f64x2_add, f64, f64, 2, x + y)
THAW_BIN(f64x2_sub, f64, f64, 2, x - y)
THAW_BIN(f64x2_mul, f64, f64, 2, x * y)
THAW_BIN(f64x2_div, f64, f64, 2, x / y)
#endif

/* Loads that widen: the 64 bits read by an i64.load, extended. */
#define THAW_LOAD_EXTEND(name, IN, OUT, N)                      \
  THAW_VR THAW_SIMD(name)(THAW_W, uint64_t x) {                 \
    thaw_v128 a = thaw_v(x, 0), r;                              \
    for (int i = 0; i < (N); i++) r.OUT[i] = a.IN[i];           \
    return thaw_r(r);                                           \
  }
THAW_LOAD_EXTEND(v128_load8x8_s, i8, i16, 8)
THAW_LOAD_EXTEND(v128_load8x8_u, u8, u16, 8)
THAW_LOAD_EXTEND(v128_load16x4_s, i16, i32, 4)
THAW_LOAD_EXTEND(v128_load16x4_u, u16, u32, 4)
THAW_LOAD_EXTEND(v128_load32x2_s, i32, i64, 2)
THAW_LOAD_EXTEND(v128_load32x2_u, u32, u64, 2)

#ifdef __cplusplus
}
#endif

#endif /* WASM_RT_H_ */
