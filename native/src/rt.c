/* rt.c -- libthaw's implementation of the wasm-rt API (see wasm-rt.h).
 *
 * wasm2c output calls these for traps, function types, memories and tables.
 * They run in two situations only: while a call runs on an executor thread
 * (thaw_current is set, traps unwind to call.c), and while the snapshot is
 * being made (the same call machinery is used). A trap outside a call is a
 * bug in libthaw and aborts.
 *
 * Memories are reserved at their capped maximum up front (memory.c) so that
 * memory.grow never moves them: growing only raises `size`, which is what the
 * bounds checks compare against. The cap is the smaller of the module's
 * declared maximum and the function's configured limit.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

__thread uint32_t wasm_rt_call_stack_depth
    __attribute__((tls_model("initial-exec")));
__thread thaw_call_state* thaw_current
    __attribute__((tls_model("initial-exec")));

void thaw_unwind(int status) {
  thaw_call_state* c = thaw_current;
  if (!c || !c->active) {
    fprintf(stderr, "libthaw: trap %d outside of a call\n", status);
    abort();
  }
  c->active = 0;
  siglongjmp(c->unwind, status);
}

void wasm_rt_init(void) {}
bool wasm_rt_is_initialized(void) { return true; }
void wasm_rt_free(void) {}

/* wasm-rt's trap numbers are THAW_TRAP_* by construction (see thaw.h). */
void wasm_rt_trap(wasm_rt_trap_t trap) { thaw_unwind((int)trap); }

const char* wasm_rt_strerror(wasm_rt_trap_t trap) {
  return thaw_status_name((int64_t)trap);
}

const char* thaw_status_name(int64_t status) {
  switch (status) {
    case THAW_OK: return "ok";
    case THAW_TRAP_OOB: return "out_of_bounds";
    case THAW_TRAP_INT_OVERFLOW: return "integer_overflow";
    case THAW_TRAP_DIV_BY_ZERO: return "divide_by_zero";
    case THAW_TRAP_INVALID_CONVERSION: return "invalid_conversion";
    case THAW_TRAP_UNREACHABLE: return "unreachable";
    case THAW_TRAP_CALL_INDIRECT: return "indirect_call";
    case THAW_TRAP_UNCAUGHT_EXCEPTION: return "uncaught_exception";
    case THAW_TRAP_STACK_EXHAUSTION: return "stack_exhaustion";
    case THAW_TRAP_TIMEOUT: return "timeout";
    case THAW_TRAP_MEMORY_LIMIT: return "memory_limit";
    case THAW_TRAP_HOST: return "host_error";
    default: return "unknown";
  }
}

int thaw_abi_version(void) { return THAW_ABI_VERSION; }

/* ---- function types -------------------------------------------------------
 * Ids are indices+1 into an append-only table of interned signatures, so two
 * modules with the same signature share an id and an id never changes once
 * handed out. Registration happens at module load only; a lock is enough. */

#define MAX_FUNC_SIGS 65536
static thaw_func_sig* g_sigs;
static uint32_t g_nsigs;
static pthread_mutex_t g_sig_lock = PTHREAD_MUTEX_INITIALIZER;

static int sig_equal(const thaw_func_sig* a, const thaw_func_sig* b) {
  uint32_t n = a->params + a->results;
  return a->params == b->params && a->results == b->results &&
         memcmp(a->types, b->types, n) == 0;
}

uint32_t thaw_func_sig_intern(const thaw_func_sig* sig) {
  uint32_t id = 0;
  pthread_mutex_lock(&g_sig_lock);
  for (uint32_t i = 0; i < g_nsigs; i++)
    if (sig_equal(&g_sigs[i], sig)) { id = i + 1; break; }
  if (!id) {
    if (!g_sigs) g_sigs = calloc(MAX_FUNC_SIGS, sizeof *g_sigs);
    if (!g_sigs || g_nsigs == MAX_FUNC_SIGS) abort();
    g_sigs[g_nsigs++] = *sig;
    id = g_nsigs;
  }
  pthread_mutex_unlock(&g_sig_lock);
  return id;
}

int thaw_func_sig_get(uint32_t id, thaw_func_sig* out) {
  int ok = 0;
  pthread_mutex_lock(&g_sig_lock);
  if (id >= 1 && id <= g_nsigs) { *out = g_sigs[id - 1]; ok = 1; }
  pthread_mutex_unlock(&g_sig_lock);
  return ok ? 0 : THAW_EINVAL;
}

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  thaw_func_sig sig = {.params = params, .results = results};
  if (params + results > sizeof sig.types) abort();
  va_list ap;
  va_start(ap, results);
  for (uint32_t i = 0; i < params + results; i++)
    sig.types[i] = (uint8_t)va_arg(ap, int);
  va_end(ap);
  return thaw_func_sig_intern(&sig);
}

/* ---- exceptions (the proposal wasm2c supports behind a flag) -------------- */

static uint32_t g_ntags;
static __thread WASM_RT_UNWIND_TARGET* t_unwind_target;
static __thread uint32_t t_exc_tag, t_exc_size;
static __thread uint8_t t_exc_data[256];

uint32_t wasm_rt_register_tag(uint32_t size) {
  (void)size;
  return __atomic_fetch_add(&g_ntags, 1, __ATOMIC_RELAXED);
}

void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void* values) {
  if (size > sizeof t_exc_data) thaw_unwind(THAW_TRAP_HOST);
  t_exc_tag = tag;
  t_exc_size = size;
  if (size) memcpy(t_exc_data, values, size);
}

void wasm_rt_throw(void) {
  if (!t_unwind_target) thaw_unwind(THAW_TRAP_UNCAUGHT_EXCEPTION);
  longjmp(*t_unwind_target, 1);
}

WASM_RT_UNWIND_TARGET* wasm_rt_get_unwind_target(void) {
  return t_unwind_target;
}
void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET* target) {
  t_unwind_target = target;
}
uint32_t wasm_rt_exception_tag(void) { return t_exc_tag; }
uint32_t wasm_rt_exception_size(void) { return t_exc_size; }
void* wasm_rt_exception(void) { return t_exc_data; }

/* ---- memories ---------------------------------------------------------------
 * Only a fresh instantiation (while making a snapshot) allocates through
 * here; restored instances get their region from instance.c. */

void wasm_rt_allocate_memory(wasm_rt_memory_t* mem, uint32_t initial_pages,
                             uint32_t max_pages) {
  uint32_t cap = thaw_current ? thaw_current->max_pages : max_pages;
  if (max_pages > cap) max_pages = cap;
  if (initial_pages > max_pages) {
    thaw_current->grow_refused = 1;
    thaw_unwind(THAW_TRAP_MEMORY_LIMIT);
  }
  thaw_region r;
  if (thaw_region_reserve(&r, max_pages, 0) != 0) thaw_unwind(THAW_TRAP_HOST);
  mem->data = r.base;
  mem->pages = initial_pages;
  mem->max_pages = max_pages;
  mem->size = (uint64_t)initial_pages * THAW_PAGE_SIZE;
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* mem, uint32_t delta) {
  uint32_t old = mem->pages;
  if ((uint64_t)old + delta > mem->max_pages) {
    if (thaw_current) thaw_current->grow_refused = 1;
    return UINT32_MAX;
  }
  mem->pages = old + delta;
  mem->size = (uint64_t)mem->pages * THAW_PAGE_SIZE;
  return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t* mem) {
  thaw_region r = {mem->data, thaw_region_size(mem->max_pages)};
  thaw_region_release(&r);
  mem->data = NULL;
}

/* ---- tables -----------------------------------------------------------------
 * Table storage is malloc'd; a grow may reallocate, so it is marked as host
 * code: a timeout must not unwind out of realloc while it holds a lock. */

#define DEFINE_TABLE_OPS(kind, elem_t)                                         \
  void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t* t,            \
                                       uint32_t elements, uint32_t max) {      \
    t->size = elements;                                                        \
    t->max_size = max;                                                         \
    t->data = calloc(elements ? elements : 1, sizeof(elem_t));                 \
    if (!t->data) thaw_unwind(THAW_TRAP_HOST);                                 \
  }                                                                            \
  void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t* t) {              \
    free(t->data);                                                             \
    t->data = NULL;                                                            \
  }                                                                            \
  uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t* t,            \
                                       uint32_t delta, elem_t init) {          \
    uint32_t old = t->size;                                                    \
    uint64_t n = (uint64_t)old + delta;                                        \
    if (n > t->max_size || n > (1u << 24)) return UINT32_MAX;                  \
    thaw_host_enter();                                                         \
    elem_t* data = realloc(t->data, (n ? n : 1) * sizeof(elem_t));             \
    if (data) {                                                                \
      for (uint64_t i = old; i < n; i++) data[i] = init;                       \
      t->data = data;                                                          \
      t->size = (uint32_t)n;                                                   \
    }                                                                          \
    thaw_host_leave();                                                         \
    return data ? old : UINT32_MAX;                                            \
  }

DEFINE_TABLE_OPS(funcref, wasm_rt_funcref_t)
DEFINE_TABLE_OPS(externref, wasm_rt_externref_t)
