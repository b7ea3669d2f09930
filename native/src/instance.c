/* instance.c -- restoring, resetting and freeing instances.
 *
 * Restore = reserve a region, map the snapshot image into it copy-on-write,
 * copy the saved instance bytes, and point the few pointer fields (WASI
 * context, memory, tables) at this instance's own objects. Nothing of the
 * function's initialization runs again, so the cost is a handful of system
 * calls and a copy of the instance struct and tables.
 *
 * Reset puts an instance back into exactly the restored state: the written
 * pages are restored (memory.c) and the struct and tables are copied again.
 * Output buffers are left alone; the next call clears them, so a result's
 * output stays readable after a reset done on the executor thread.
 * Invariant: an instance handed to a call is byte-for-byte its snapshot, so
 * no call can observe another call's data.
 *
 * Tables are charged to the memory limit together with linear memory (see
 * rt.c): a module whose snapshot does not fit does not load, so restoring
 * one never allocates past it, and each call starts counting from the
 * tables the instance holds (thaw_instance_prepare_call).
 */
#include <stdlib.h>

#include "internal.h"

wasm_rt_memory_t* thaw_instance_memory(thaw_instance* inst) {
  return (wasm_rt_memory_t*)(inst->wasm + inst->module->info->memory_offset);
}

static int restore_funcref_table(thaw_instance* inst, uint32_t t) {
  const thaw_table_template* tt = &inst->module->ftables[t];
  wasm_rt_funcref_table_t* tab =
      (void*)(inst->wasm + inst->module->info->funcref_table_offsets[t]);
  size_t bytes = (tt->size ? tt->size : 1) * sizeof(wasm_rt_funcref_t);
  wasm_rt_funcref_t* data = malloc(bytes);
  if (!data) return THAW_ENOMEM;
  memcpy(data, tt->entries, bytes);
  for (uint32_t i = 0; i < tt->size; i++)
    if (data[i].func) data[i].module_instance = inst->wasm;
  tab->data = data;
  tab->size = tt->size;
  tab->max_size = tt->max_size;
  return 0;
}

static int restore_externref_table(thaw_instance* inst, uint32_t t) {
  const thaw_module* m = inst->module;
  wasm_rt_externref_table_t* tab =
      (void*)(inst->wasm + m->info->externref_table_offsets[t]);
  tab->data = calloc(m->etable_size[t] ? m->etable_size[t] : 1,
                     sizeof(wasm_rt_externref_t));
  tab->size = m->etable_size[t];
  tab->max_size = m->etable_max[t];
  return tab->data ? 0 : THAW_ENOMEM;
}

static void free_tables(thaw_instance* inst) {
  const thaw_module_info* info = inst->module->info;
  for (uint32_t t = 0; t < info->n_funcref_tables; t++) {
    wasm_rt_funcref_table_t* tab = (void*)(inst->wasm + info->funcref_table_offsets[t]);
    free(tab->data);
    tab->data = NULL;
  }
  for (uint32_t t = 0; t < info->n_externref_tables; t++) {
    wasm_rt_externref_table_t* tab = (void*)(inst->wasm + info->externref_table_offsets[t]);
    free(tab->data);
    tab->data = NULL;
  }
}

/* Copy the saved struct and re-point its pointer fields at this instance. */
static int load_state(thaw_instance* inst) {
  const thaw_module* m = inst->module;
  const thaw_module_info* info = m->info;
  memcpy(inst->wasm, m->instance_bytes, info->instance_size);
  if (info->wasi_offset >= 0) {
    thaw_wasi* w = &inst->wasi;
    memcpy(inst->wasm + info->wasi_offset, &w, sizeof w);
  }
  wasm_rt_memory_t* mem = thaw_instance_memory(inst);
  mem->data = inst->region.base;
  mem->pages = m->mem_pages;
  mem->max_pages = m->max_pages;
  mem->size = (uint64_t)m->mem_pages * THAW_PAGE_SIZE;
  int rc = 0;
  for (uint32_t t = 0; !rc && t < info->n_funcref_tables; t++)
    rc = restore_funcref_table(inst, t);
  for (uint32_t t = 0; !rc && t < info->n_externref_tables; t++)
    rc = restore_externref_table(inst, t);
  return rc;
}

/* Tables are reset with the rest of the instance, but a call on an instance
 * that was not reset starts with whatever the previous call grew them to. */
void thaw_instance_prepare_call(thaw_instance* inst, thaw_call_state* st) {
  const thaw_module_info* info = inst->module->info;
  st->max_pages = inst->module->limit_pages;
  st->memory = thaw_instance_memory(inst);
  st->guarded = inst->module->guarded;
  st->code_lo = inst->module->code_lo;
  st->code_hi = inst->module->code_hi;
  st->table_bytes = 0;
  for (uint32_t t = 0; t < info->n_funcref_tables; t++) {
    const wasm_rt_funcref_table_t* tab = (void*)(inst->wasm + info->funcref_table_offsets[t]);
    st->table_bytes += (uint64_t)tab->size * sizeof(wasm_rt_funcref_t);
  }
  for (uint32_t t = 0; t < info->n_externref_tables; t++) {
    const wasm_rt_externref_table_t* tab = (void*)(inst->wasm + info->externref_table_offsets[t]);
    st->table_bytes += (uint64_t)tab->size * sizeof(wasm_rt_externref_t);
  }
}

/* After a call on this thread: what it may have written. A page fault of
 * this thread since its previous check may have made a page private that
 * the region's list lacks (memory.c), so the next reset scans. */
void thaw_instance_end_call(thaw_instance* inst) {
  wasm_rt_memory_t* mem = thaw_instance_memory(inst);
  if (mem->size > inst->touched) inst->touched = mem->size;
  if (thaw_thread_faulted()) thaw_region_forget(&inst->region);
}

/* A module with tables reserves its whole memory limit, which its memory
 * and tables share (rt.c), so the tenant is charged for both; one without
 * needs no more than its memory's maximum. */
static uint32_t region_pages(const thaw_module* m) {
  const thaw_module_info* info = m->info;
  return info->n_funcref_tables + info->n_externref_tables ? m->limit_pages : m->max_pages;
}

/* A page a call writes first reads (or lies next to a page it reads, which
 * the kernel maps with it): its first write is then a copy-on-write fault
 * on a page already mapped read-only, whose old mapping must be flushed
 * from every core running this process -- an interrupt to each, and on a
 * busy node that was most of a fresh instance's first call (7 us for a
 * call of 0.3). Written before anything reads it, the page is copied on
 * its first fault with nothing to flush. So the first call on a restored
 * (or released) instance first writes the pages the module's calls are
 * known to write -- a locked add of 0: a write access that changes
 * nothing -- and then finds them private. This is done at the call, not
 * at the restore: an idle pre-restored instance keeps sharing every page
 * with the image. A reset keeps the pages private, so later calls skip it. */
void thaw_instance_prefault(thaw_instance* inst) {
  if (!inst->cold) return;
  inst->cold = 0;
  thaw_module* m = inst->module;
  if (atomic_load_explicit(&m->hot_state, memory_order_acquire) != 2) return;
  for (uint32_t i = 0; i < m->hot_n; i++) {
    size_t off = (size_t)m->hot[i] * THAW_OS_PAGE;
    __atomic_fetch_add(inst->region.base + off, 0, __ATOMIC_RELAXED);
    if (off + THAW_OS_PAGE > inst->touched) inst->touched = off + THAW_OS_PAGE;
  }
}

/* The first reset of any instance of the module records the pages its
 * call wrote within the snapshot's memory (where every restore maps). */
static void learn_hot_pages(thaw_instance* inst, size_t len) {
  thaw_module* m = inst->module;
  int unknown = 0;
  if (atomic_load_explicit(&m->hot_state, memory_order_relaxed) != 0 ||
      !atomic_compare_exchange_strong(&m->hot_state, &unknown, 1))
    return;
  int64_t n = thaw_private_page_list(inst->region.base, len, m->hot, THAW_HOT_PAGES);
  if (n < 0 || n > (int64_t)THAW_HOT_PAGES) {
    atomic_store_explicit(&m->hot_state, 3, memory_order_release);
    return;
  }
  m->hot_n = (uint32_t)n;
  atomic_store_explicit(&m->hot_state, 2, memory_order_release);
}

thaw_instance* thaw_instance_restore(thaw_module* m) {
  if (!m) return NULL;
  thaw_instance* inst = calloc(1, sizeof *inst + m->info->instance_size + 16);
  if (!inst) return NULL;
  inst->module = m;
  inst->wasm = (uint8_t*)(((uintptr_t)(inst + 1) + 15) & ~(uintptr_t)15);
  uint32_t tenant = (uint32_t)m->limits.tenant;
  int reserved = m->guarded ? thaw_region_reserve_guarded(&inst->region, region_pages(m), tenant,
                                                          (uint64_t)m->mem_pages * THAW_PAGE_SIZE)
                            : thaw_region_reserve(&inst->region, region_pages(m), tenant);
  if (reserved != 0 ||
      thaw_region_map_image(&inst->region, m->image_fd, m->image_offset,
                            m->image_len) != 0) {
    thaw_region_release(&inst->region);
    free(inst);
    return NULL;
  }
  if (load_state(inst) != 0) {
    free_tables(inst);
    thaw_region_release(&inst->region);
    free(inst);
    return NULL;
  }
  inst->touched = m->image_len;
  inst->cold = 1;
  thaw_wasi_init(&inst->wasi, thaw_instance_memory(inst), m->limits.stdout_cap,
                 m->limits.stderr_cap);
  atomic_fetch_add(&m->refs, 1);
  atomic_fetch_add(&m->live, 1);
  return inst;
}

int thaw_instance_reset(thaw_instance* inst) {
  if (!inst || inst->lost) return THAW_EINVAL;
  const thaw_module* m = inst->module;
  wasm_rt_memory_t* mem = thaw_instance_memory(inst);
  /* A guarded region unmaps what the call grew (the next grow maps fresh
   * zero pages); an unguarded one zeroes it with the rest. */
  uint64_t snap = (uint64_t)m->mem_pages * THAW_PAGE_SIZE;
  uint64_t len = mem->size;
  int rc = 0;
  if (inst->region.guarded && len > snap) {
    rc = thaw_region_resize(&inst->region, len, snap);
    len = snap;
  }
  if (!rc) learn_hot_pages(inst, len < snap ? len : snap);
  if (!rc) rc = thaw_region_restore(&inst->region, len, m->image_view, m->image_len);
  free_tables(inst);
  if (!rc) rc = load_state(inst);
  if (rc) inst->lost = 1;
  return rc;
}

void thaw_instance_release_memory(thaw_instance* inst) {
  if (inst && !inst->lost && thaw_region_discard(&inst->region, inst->touched) == 0) inst->cold = 1;
}

void thaw_instance_free(thaw_instance* inst) {
  if (!inst) return;
  thaw_module* m = inst->module;
  free_tables(inst);
  thaw_region_release(&inst->region);
  thaw_wasi_free(&inst->wasi);
  free(inst);
  atomic_fetch_sub(&m->live, 1);
  thaw_module_unref(m);
}

uint64_t thaw_instance_private_bytes(const thaw_instance* inst) {
  return thaw_private_pages(inst->region.base, inst->touched) * THAW_OS_PAGE;
}
