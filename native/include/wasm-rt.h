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

#ifdef __cplusplus
}
#endif

#endif /* WASM_RT_H_ */
