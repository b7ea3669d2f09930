/* guard.c -- guarded linear memories: out-of-bounds accesses fault.
 *
 * The memory model (the choice between this and explicit checks is made
 * per artifact, by wasm-rt.h's THAW_EXPLICIT_BOUNDS_CHECKS, and recorded
 * in thaw_module_info.flags):
 *
 *  - explicit checks: every load and store compares its address with the
 *    memory's size first. An instance reserves only its memory limit (a
 *    block of the buddy pool, memory.c), so a process holds as many
 *    instances as vm.max_map_count allows (~32k), but the checks, and the
 *    size and base reloads they bring after every store, cost the compute
 *    kernel (scripts/bench/engine.ts) ~10 % of its time and force spills.
 *
 *  - guard pages (the default on x86-64 Linux): the compiled code does no
 *    checks. wasm2c computes an access as base + (u64)addr + offset with a
 *    32-bit addr and a 32-bit offset, so no access reaches 8 GiB past the
 *    base. Each instance's memory therefore sits at the start of its own
 *    8 GiB slot of address space: [0, size) is readable and writable, the
 *    rest PROT_NONE, and an access past `size` faults. The fault handler
 *    below turns it into an OOB trap. memory.grow maps the new pages;
 *    reset maps the grown part away again (memory.c). An access that
 *    straddles the last slot boundary faults as a whole on x86-64 (a
 *    faulting instruction writes nothing), which is why the mode is only
 *    the default there.
 *    Cost: 8 GiB of address space per live instance. The slot arena is one
 *    PROT_NONE reservation (THAW_GUARD_ARENA_BYTES, default 64 TiB, halved
 *    until the kernel grants it): 8192 guarded instances per process at
 *    most, against ~32k with explicit checks. An instance needs 3 VMAs
 *    (image, anonymous rest, and the arena split around it) instead of 2.
 *    Deployments that need more live instances per process than that build
 *    with THAW_BOUNDS_CHECKS=explicit (src/compiler/flags.ts).
 *
 * Budget: a slot is address space only. The tenant is charged exactly as
 * for an unguarded region: a block of its memory limit is taken from the
 * buddy pool (its partition, else the overflow) and held for the slot's
 * lifetime as its claim on the tenant's budget; that block is never
 * touched, so it costs address space and pool metadata, not memory. The
 * partition thus keeps meaning what it meant, and limits, stats and
 * fragmentation figures are unchanged.
 *
 * The fault handler (SIGSEGV and SIGBUS, installed once with the first
 * slot) turns a fault into a trap only when all of these hold, else it
 * passes the signal on to the handler that was installed before it (Bun's,
 * ASan's, or the default action, which then crashes loudly):
 *   - the faulting thread is running a call (thaw_current, active, not in
 *     host code) of a guarded module;
 *   - the program counter lies in that module's executable segment;
 *   - the address lies in that call's slot, past the memory's size.
 * Compiled code never overflows the native stack (wasm-rt.h's floor
 * check), so the handler needs no alternate stack; a real overflow in host
 * code has none to run on and kills the process, as it should.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "internal.h"

#define SLOT_ALIGN (2ull << 20) /* transparent huge pages need 2 MiB alignment */
#define ARENA_DEFAULT (64ull << 40)
#define ARENA_MIN (64ull << 30)

static struct {
  pthread_mutex_t lock;
  uint8_t* arena;
  uint64_t slots;
  uint32_t* free; /* stack of free slot indices */
  uint64_t nfree;
  void** claim;   /* per slot: the tenant's pool block */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct sigaction g_prev_segv, g_prev_bus;

static void* reserve(uint64_t bytes) {
  void* p = mmap(NULL, bytes + SLOT_ALIGN, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void create_arena(void) {
  const char* env = getenv("THAW_GUARD_ARENA_BYTES");
  uint64_t bytes = env ? strtoull(env, NULL, 10) : ARENA_DEFAULT;
  uint8_t* p = NULL;
  for (; !p && bytes >= ARENA_MIN; bytes /= 2) p = reserve(bytes);
  if (!p) return;
  bytes *= 2; /* undo the loop's last halving */
  uint64_t slots = bytes / THAW_GUARD_SPAN;
  g.free = malloc(slots * sizeof *g.free);
  g.claim = calloc(slots, sizeof *g.claim);
  if (!g.free || !g.claim) {
    free(g.free);
    free(g.claim);
    munmap(p, bytes + SLOT_ALIGN);
    return;
  }
  g.arena = (uint8_t*)(((uintptr_t)p + SLOT_ALIGN - 1) & ~(uintptr_t)(SLOT_ALIGN - 1));
  g.slots = slots;
  for (uint64_t i = 0; i < slots; i++) g.free[i] = (uint32_t)(slots - 1 - i);
  g.nfree = slots;
}

/* ---- the fault handler ------------------------------------------------------- */

static uintptr_t fault_pc(const void* uc) {
#if defined(__x86_64__) && defined(__linux__)
  return (uintptr_t)((const ucontext_t*)uc)->uc_mcontext.gregs[REG_RIP];
#else
  (void)uc;
  return 0; /* no guarded modules here: every fault is passed on */
#endif
}

static int64_t slot_index(const uint8_t* base);

/* Only reads thread-locals, the faulting call's own fields and the arena's
 * bounds (set once, before any slot exists): async-signal-safe. */
static int is_wasm_oob(const siginfo_t* si, const void* uc) {
  thaw_call_state* c = thaw_current;
  if (!c || !c->active || c->in_host || !c->guarded || !c->memory) return 0;
  uintptr_t pc = fault_pc(uc);
  if (pc < c->code_lo || pc >= c->code_hi) return 0;
  const uint8_t* base = c->memory->data;
  if (!base || slot_index(base) < 0) return 0;
  uintptr_t off = (uintptr_t)si->si_addr - (uintptr_t)base;
  return off >= c->memory->size && off < THAW_GUARD_SPAN;
}

static void pass_on(int sig, siginfo_t* si, void* uc) {
  const struct sigaction* prev = sig == SIGBUS ? &g_prev_bus : &g_prev_segv;
  if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
    prev->sa_sigaction(sig, si, uc);
    return;
  }
  if (!(prev->sa_flags & SA_SIGINFO) && prev->sa_handler != SIG_DFL &&
      prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
    return;
  }
  /* Default action: returning re-runs the faulting instruction, which now
   * kills the process with this signal (and a core dump). */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, NULL);
}

static void on_fault(int sig, siginfo_t* si, void* uc) {
  if (!is_wasm_oob(si, uc)) {
    pass_on(sig, si, uc);
    return;
  }
  /* SA_NODEFER: the signal is not blocked in here, so leaving without
   * restoring a mask (call.c's sigsetjmp saves none) leaves it unblocked. */
  thaw_current->active = 0;
  siglongjmp(thaw_current->unwind, THAW_TRAP_OOB);
}

static void install_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}

static pthread_once_t g_handler_once = PTHREAD_ONCE_INIT;

/* ---- slots ---------------------------------------------------------------------- */

static uint8_t* slot_addr(uint64_t i) { return g.arena + i * THAW_GUARD_SPAN; }

static int64_t slot_index(const uint8_t* base) {
  /* A slot's base: inside the arena, at a multiple of the span. */
  if (!g.arena || base < g.arena) return -1;
  uint64_t off = (uint64_t)(base - g.arena);
  if (off % THAW_GUARD_SPAN || off / THAW_GUARD_SPAN >= g.slots) return -1;
  return (int64_t)(off / THAW_GUARD_SPAN);
}

uint8_t* thaw_guard_take(uint32_t tenant, uint64_t charge, uint64_t size) {
  pthread_once(&g_once, create_arena);
  pthread_once(&g_handler_once, install_handler);
  thaw_pool* pool = thaw_memory_pool();
  void* claim = pool ? thaw_pool_alloc(pool, tenant, charge) : NULL;
  if (!claim) return NULL;
  pthread_mutex_lock(&g.lock);
  int64_t i = g.nfree ? (int64_t)g.free[--g.nfree] : -1;
  if (i >= 0) g.claim[i] = claim;
  pthread_mutex_unlock(&g.lock);
  if (i < 0) {
    thaw_pool_free(pool, claim);
    return NULL;
  }
  uint8_t* base = slot_addr((uint64_t)i);
  if (thaw_guard_resize(base, 0, size) != 0) {
    thaw_guard_put(base);
    return NULL;
  }
  return base;
}

int thaw_guard_resize(uint8_t* base, uint64_t old_size, uint64_t new_size) {
  if (new_size > THAW_GUARD_SPAN / 2) return THAW_EINVAL;
  void* p = MAP_FAILED;
  if (new_size > old_size)
    p = mmap(base + old_size, new_size - old_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  else if (new_size < old_size)
    p = mmap(base + new_size, old_size - new_size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  else
    return 0;
  return p == MAP_FAILED ? THAW_ENOMEM : 0;
}

int thaw_guard_owns(const uint8_t* base) { return slot_index(base) >= 0; }

void thaw_guard_put(uint8_t* base) {
  int64_t i = slot_index(base);
  if (i < 0) return;
  /* The whole slot goes back to PROT_NONE: its pages are dropped and the
   * mapping merges with the arena again. */
  mmap(base, THAW_GUARD_SPAN, PROT_NONE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  pthread_mutex_lock(&g.lock);
  void* claim = g.claim[i];
  g.claim[i] = NULL;
  g.free[g.nfree++] = (uint32_t)i;
  pthread_mutex_unlock(&g.lock);
  thaw_pool_free(thaw_memory_pool(), claim);
}

uint64_t thaw_guard_slots_free(void) {
  pthread_once(&g_once, create_arena);
  pthread_mutex_lock(&g.lock);
  uint64_t n = g.nfree;
  pthread_mutex_unlock(&g.lock);
  return n;
}
