/* rt.c -- libthaw's implementation of the wasm-rt API (see wasm-rt.h).
 *
 * wasm2c output calls these for traps, function types, memories and tables.
 * Function types are registered while a module loads (thaw_init_module, see
 * below); that cannot trap. Everything else runs only inside
 * thaw_guarded_run -- a call (_start) or the fresh instantiation that makes
 * a snapshot (instantiate, which runs the wasm start function, and
 * wizer.initialize) -- so thaw_current is set and a trap unwinds to call.c.
 * A trap outside of one would be a bug in libthaw, not something a module
 * can cause, and aborts.
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
  if (!c || !c->active) { /* unreachable: see the top of this file */
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
    case THAW_MOVED: return "moved";
    default: return "unknown";
  }
}

int thaw_abi_version(void) { return THAW_ABI_VERSION; }

/* ---- function types ---------------------------------------------------------
 * call_indirect compares a table entry's type id with the id its module
 * registered for the expected type (wasm2c keeps those in a static
 * func_types[] inside fn.so). Funcrefs never cross modules in thaw, so an id
 * only has to be unique within one module: thaw_init_module() runs the
 * module's init_module() -- wasm2c's only caller of
 * wasm_rt_register_func_type -- against a registry that lives for that call
 * alone, and a type's id is 1 + the index of its structurally distinct
 * signature in registration order. That is deterministic for a given fn.so,
 * which is what lets a snapshot store ids as they are; and nothing outlives
 * the load, so no number of deploys can fill anything up.
 *
 * Signatures are stored back to back in one growing buffer as params,
 * results (u32 each) and one byte per value type (wasm-rt's type codes are
 * below 256), so any arity wasm allows fits; an open-addressing table of
 * type indices, at most half full, finds equal ones. All of it is bounded
 * by the module's type section, where the signatures come from.
 *
 * Out of memory, registration cannot fail (wasm2c ignores the result), so
 * the registry hands out poison ids instead: fresh ones at POISON and above,
 * never equal to a real id nor to each other. The load then fails; until
 * then, call_indirect with such an id can only trap, never mistake one type
 * for another. */

#define POISON 0x80000000u

typedef struct type_registry {
  uint8_t* sigs; /* signatures back to back */
  size_t len, alloc;
  size_t* start; /* start[i]: offset in sigs of type i's signature */
  size_t start_alloc;
  uint32_t n;
  uint32_t* slots; /* type index + 1, 0 when empty */
  size_t n_slots;  /* a power of two, more than twice n */
  int failed;
} type_registry;

static __thread type_registry* t_types;
static _Atomic uint32_t g_poison;
/* Loads of one fn.so share its func_types[] (dlopen hands out one handle),
 * so two of them never register at the same time. */
static pthread_mutex_t g_types_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t sig_hash(const uint8_t* s, size_t len) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 1099511628211ull;
  return h;
}

static size_t sig_len(const uint8_t* s) {
  uint32_t params, results;
  memcpy(&params, s, 4);
  memcpy(&results, s + 4, 4);
  return 8 + (size_t)params + results;
}

/* Returns buf grown to hold `need` elements (capacity in *alloc), or NULL. */
static void* grow(void* buf, size_t* alloc, size_t need, size_t elem) {
  if (need <= *alloc) return buf;
  size_t n = *alloc ? *alloc : 64;
  while (n < need) n *= 2;
  void* p = realloc(buf, n * elem);
  if (p) *alloc = n;
  return p;
}

static int rehash(type_registry* r) {
  size_t n_slots = r->n_slots ? r->n_slots * 2 : 64;
  uint32_t* slots = calloc(n_slots, sizeof *slots);
  if (!slots) return -1;
  for (uint32_t i = 0; i < r->n; i++) {
    const uint8_t* s = r->sigs + r->start[i];
    size_t h = sig_hash(s, sig_len(s)) & (n_slots - 1);
    while (slots[h]) h = (h + 1) & (n_slots - 1);
    slots[h] = i + 1;
  }
  free(r->slots);
  r->slots = slots;
  r->n_slots = n_slots;
  return 0;
}

/* Room for one more type whose signature takes len bytes. */
static int make_room(type_registry* r, size_t len) {
  if (r->failed || r->n == POISON - 1) return -1;
  size_t* start = grow(r->start, &r->start_alloc, (size_t)r->n + 1, sizeof *start);
  if (!start) return -1;
  r->start = start;
  uint8_t* sigs = grow(r->sigs, &r->alloc, r->len + len, 1);
  if (!sigs) return -1;
  r->sigs = sigs;
  return (size_t)r->n + 1 > r->n_slots / 2 ? rehash(r) : 0;
}

static uint32_t poison(type_registry* r) {
  if (r) r->failed = 1;
  return POISON | (atomic_fetch_add(&g_poison, 1) & (POISON - 1));
}

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  type_registry* r = t_types;
  size_t len = 8 + (size_t)params + results;
  if (!r || make_room(r, len) != 0) return poison(r);
  /* The candidate is written where it would be stored; it stays if new. */
  uint8_t* s = r->sigs + r->len;
  memcpy(s, &params, 4);
  memcpy(s + 4, &results, 4);
  va_list ap;
  va_start(ap, results);
  for (size_t i = 8; i < len; i++) s[i] = (uint8_t)va_arg(ap, int);
  va_end(ap);
  size_t mask = r->n_slots - 1;
  size_t h = sig_hash(s, len) & mask;
  for (; r->slots[h]; h = (h + 1) & mask) {
    const uint8_t* old = r->sigs + r->start[r->slots[h] - 1];
    if (sig_len(old) == len && memcmp(old, s, len) == 0) return r->slots[h];
  }
  r->start[r->n] = r->len;
  r->len += len;
  r->slots[h] = ++r->n;
  return r->n;
}

int64_t thaw_init_module(void (*init_module)(void)) {
  type_registry r = {0};
  pthread_mutex_lock(&g_types_lock);
  t_types = &r;
  init_module();
  t_types = NULL;
  pthread_mutex_unlock(&g_types_lock);
  free(r.sigs);
  free(r.start);
  free(r.slots);
  return r.failed ? THAW_ENOMEM : (int64_t)r.n;
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

/* ---- memories and tables ---------------------------------------------------
 * An instance's linear memory and its tables share one budget: the
 * function's memory limit (thaw_call_state.max_pages * 64 KiB). memory.grow
 * and table.grow return -1, and instantiation traps with memory_limit, when
 * linear-memory bytes plus table bytes (elements * element size, all tables)
 * would pass it, and set grow_refused so that a trap the module then runs
 * into is reported as memory_limit too. A grow past the module's own
 * declared maximum is the module's business: -1, but not thaw's limit. An
 * instance of a module with tables reserves the whole limit as its region
 * (instance.c), and the memory pool charges the tenant's partition the
 * whole region, so tables, which live in malloc'd memory outside the pool,
 * are always within what the tenant is charged. The running table bytes are in the call state
 * (thaw_call_state.table_bytes), counted from the instance's tables when
 * the call starts.
 *
 * Only a fresh instantiation (while making a snapshot) allocates through
 * here; restored instances get their region and tables from instance.c.
 * Allocations are bracketed as host code: a timeout must not unwind out of
 * malloc or the pool while they hold a lock. */

static uint64_t budget(const thaw_call_state* c) {
  return thaw_region_size(c->max_pages);
}

static int tables_may_grow(const thaw_call_state* c, uint64_t bytes) {
  return c->memory->size + c->table_bytes + bytes <= budget(c);
}

void wasm_rt_allocate_memory(wasm_rt_memory_t* mem, uint32_t initial_pages,
                             uint32_t max_pages) {
  thaw_call_state* c = thaw_current;
  if (max_pages > c->max_pages) max_pages = c->max_pages;
  if (initial_pages > max_pages) {
    c->grow_refused = 1;
    thaw_unwind(THAW_TRAP_MEMORY_LIMIT);
  }
  thaw_region r;
  thaw_host_enter();
  uint64_t size = (uint64_t)initial_pages * THAW_PAGE_SIZE;
  int rc = c->guarded ? thaw_region_reserve_guarded(&r, max_pages, 0, size)
                      : thaw_region_reserve(&r, max_pages, 0);
  if (rc == 0) {
    mem->data = r.base;
    mem->pages = initial_pages;
    mem->max_pages = max_pages;
    mem->size = (uint64_t)initial_pages * THAW_PAGE_SIZE;
  }
  thaw_host_leave();
  if (rc) thaw_unwind(THAW_TRAP_HOST);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* mem, uint32_t delta) {
  thaw_call_state* c = thaw_current;
  uint32_t old = mem->pages;
  uint64_t pages = (uint64_t)old + delta;
  if (pages > mem->max_pages) {
    if (pages > c->max_pages) c->grow_refused = 1;
    return UINT32_MAX;
  }
  if (pages * THAW_PAGE_SIZE + c->table_bytes > budget(c)) {
    c->grow_refused = 1;
    return UINT32_MAX;
  }
  if (c->guarded) {
    /* Runs inside wasm code: a timeout waits for the mapping to finish. */
    thaw_region r = {.base = mem->data, .reserved = thaw_region_size(mem->max_pages), .guarded = 1};
    thaw_host_enter();
    int rc = thaw_region_resize(&r, mem->size, pages * THAW_PAGE_SIZE);
    thaw_host_leave();
    if (rc) return UINT32_MAX;
  }
  mem->pages = (uint32_t)pages;
  mem->size = pages * THAW_PAGE_SIZE;
  return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t* mem) {
  thaw_region r = {.base = mem->data, .reserved = thaw_region_size(mem->max_pages),
                   .guarded = thaw_guard_owns(mem->data)};
  thaw_region_release(&r);
  mem->data = NULL;
}

/* Sizes are u32 element counts, so every byte count below fits in 64 bits
 * and the budget (at most 4 GiB) is the only bound needed. */
#define DEFINE_TABLE_OPS(kind, elem_t)                                         \
  void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t* t,            \
                                       uint32_t elements, uint32_t max) {      \
    thaw_call_state* c = thaw_current;                                         \
    uint64_t bytes = (uint64_t)elements * sizeof(elem_t);                      \
    if (!tables_may_grow(c, bytes)) {                                          \
      c->grow_refused = 1;                                                     \
      thaw_unwind(THAW_TRAP_MEMORY_LIMIT);                                     \
    }                                                                          \
    thaw_host_enter();                                                         \
    t->data = calloc(elements ? elements : 1, sizeof(elem_t));                 \
    if (t->data) {                                                             \
      t->size = elements;                                                      \
      t->max_size = max;                                                       \
      c->table_bytes += bytes;                                                 \
    }                                                                          \
    thaw_host_leave();                                                         \
    if (!t->data) thaw_unwind(THAW_TRAP_HOST);                                 \
  }                                                                            \
  void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t* t) {              \
    free(t->data);                                                             \
    t->data = NULL;                                                            \
  }                                                                            \
  uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t* t,            \
                                       uint32_t delta, elem_t init) {          \
    thaw_call_state* c = thaw_current;                                         \
    uint32_t old = t->size;                                                    \
    uint64_t n = (uint64_t)old + delta;                                        \
    uint64_t bytes = (uint64_t)delta * sizeof(elem_t);                         \
    if (n > t->max_size) return UINT32_MAX;                                    \
    if (!tables_may_grow(c, bytes)) {                                          \
      c->grow_refused = 1;                                                     \
      return UINT32_MAX;                                                       \
    }                                                                          \
    thaw_host_enter();                                                         \
    elem_t* data = realloc(t->data, (n ? n : 1) * sizeof(elem_t));             \
    if (data) {                                                                \
      for (uint64_t i = old; i < n; i++) data[i] = init;                       \
      t->data = data;                                                          \
      t->size = (uint32_t)n;                                                   \
      c->table_bytes += bytes;                                                 \
    }                                                                          \
    thaw_host_leave();                                                         \
    return data ? old : UINT32_MAX;                                            \
  }

DEFINE_TABLE_OPS(funcref, wasm_rt_funcref_t)
DEFINE_TABLE_OPS(externref, wasm_rt_externref_t)
