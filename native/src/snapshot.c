/* snapshot.c -- the initialized state of a function, on disk and in memory.
 *
 * A snapshot is made once per artifact: the function is instantiated fresh
 * (data segments copied, tables filled, the wasm start function run), its
 * `wizer.initialize` export runs if it has one, and the result is written
 * to a file:
 *
 *   header | instance struct bytes | tables | pad | image
 *
 * Instantiation and initialization are module code like any call: they run
 * under one deadline (the limits' timeout), the memory cap and the call
 * depth limit, and a trap, a timeout or proc_exit fails the snapshot.
 *
 * The image (linear memory) starts on a page boundary so instances can map
 * it directly. Only pages the initialization gave memory to (present or
 * swapped out, by /proc/self/pagemap) are read, and all-zero ones are left
 * as holes: a 4 GiB memory the module never wrote costs nothing to scan or
 * store. Pointers inside the instance bytes are meaningless in another
 * process and are overwritten on restore. A table entry is saved as its
 * function type id and the offset of the function in the shared object:
 * type ids are per module and deterministic for a given fn.so (rt.c), and
 * a snapshot only ever goes with the fn.so it was made from (the artifact
 * key covers both), so ids are stored as they are and only checked against
 * the module's type count on load. Tables are read and written in bulk.
 *
 * Loading a module reads everything but the image into memory once; the
 * image stays in the page cache and is shared by all instances. A module
 * whose snapshot's memory and tables together exceed the memory limit it is
 * loaded with does not load (see the budget in rt.c).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SNAP_MAGIC THAW_SNAPSHOT_MAGIC
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
/* Table entries go through a buffer of this many at a time. */
#define TABLE_IO_ENTRIES 65536u
/* wasm32's largest memory, in pages. */
#define MAX_WASM_PAGES 65536u

typedef struct snap_header {
  char magic[8];
  uint32_t abi;
  uint32_t instance_size;
  uint32_t mem_pages;
  uint32_t mem_max_pages;
  uint32_t n_types;
  uint32_t n_ftables;
  uint32_t n_etables;
  uint32_t reserved;
  uint64_t image_offset;
  uint64_t image_len;
} snap_header;

typedef struct snap_entry {
  uint32_t func_type; /* 0: a null entry */
  uint32_t reserved;
  uint64_t func_offset; /* from the shared object's base */
} snap_entry;

typedef struct snap_table {
  uint32_t size;
  uint32_t max_size;
} snap_table;

static int fail(char* err, size_t len, int code, const char* fmt, const char* a) {
  if (err && len) snprintf(err, len, fmt, a ? a : "");
  return code;
}

/* ---- loading the code --------------------------------------------------------
 * Function objects leave the WASI imports and the wasm-rt API undefined and
 * expect to find them in libthaw. Bun loads libthaw RTLD_LOCAL, so before the
 * first function is loaded libthaw re-opens itself RTLD_GLOBAL (the same
 * handle, now visible to later dlopen calls). */

static pthread_once_t g_global_once = PTHREAD_ONCE_INIT;

static void make_symbols_global(void) {
  Dl_info self;
  if (dladdr((void*)thaw_module_load, &self) && self.dli_fname)
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
}

static int open_code(const char* so_path, void** dl, const thaw_module_info** info,
                     uint32_t* n_types, char* err, size_t err_len) {
  pthread_once(&g_global_once, make_symbols_global);
  *dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
  if (!*dl) return fail(err, err_len, THAW_ELOAD, "%s", dlerror());
  *info = dlsym(*dl, "thaw_function_info");
  if (!*info) {
    dlclose(*dl);
    return fail(err, err_len, THAW_ELOAD, "%s: no thaw_function_info", so_path);
  }
  if ((*info)->abi != THAW_MODULE_ABI || (*info)->memory_offset < 0 ||
      (*info)->n_funcref_tables > THAW_MAX_TABLES ||
      (*info)->n_externref_tables > THAW_MAX_TABLES) {
    dlclose(*dl);
    return fail(err, err_len, THAW_EABI, "%s: artifact built for another ABI",
                so_path);
  }
  int64_t n = thaw_init_module((*info)->init_module);
  if (n < 0) {
    dlclose(*dl);
    return fail(err, err_len, THAW_ENOMEM, "%s: out of memory registering function types",
                so_path);
  }
  *n_types = (uint32_t)n;
  return 0;
}

/* Where the shared object's code is: table entries must point into it. */
typedef struct code_range {
  uintptr_t base;
  uint64_t lo, hi; /* offsets from base spanning the executable segments */
  uint64_t bytes;  /* their total size */
} code_range;

static int find_text(struct dl_phdr_info* pi, size_t size, void* data) {
  (void)size;
  code_range* c = data;
  if (pi->dlpi_addr != c->base) return 0;
  c->lo = UINT64_MAX;
  for (int i = 0; i < pi->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &pi->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    if (ph->p_vaddr < c->lo) c->lo = ph->p_vaddr;
    if (ph->p_vaddr + ph->p_memsz > c->hi) c->hi = ph->p_vaddr + ph->p_memsz;
    c->bytes += ph->p_memsz;
  }
  if (c->lo > c->hi) c->lo = c->hi;
  return 1;
}

static code_range code_of(const thaw_module_info* info) {
  code_range c = {0};
  Dl_info d;
  if (!dladdr(info, &d)) return c;
  c.base = (uintptr_t)d.dli_fbase;
  dl_iterate_phdr(find_text, &c);
  return c;
}

void thaw_code_bounds(const thaw_module_info* info, uintptr_t* lo, uintptr_t* hi) {
  code_range c = code_of(info);
  *lo = c.base + c.lo;
  *hi = c.base + c.hi;
}

/* ---- making a snapshot --------------------------------------------------------- */

struct create_job {
  const char* so_path;
  const char* snapshot_path;
  const thaw_limits* limits;
  thaw_result* result;
  char* err;
  size_t err_len;
  int rc;
};

/* An instance built the way a runtime without snapshots builds one:
 * instantiate (data segments, tables, start function), then
 * wizer.initialize if exported. */
struct fresh {
  const thaw_module_info* info;
  uint8_t* wasm;
  thaw_wasi wasi;
  thaw_call_state st;
};

static void run_instantiate(void* arg) {
  struct fresh* f = arg;
  f->info->instantiate(f->wasm, &f->wasi);
}

static void run_initialize(void* arg) {
  struct fresh* f = arg;
  f->info->initialize(f->wasm);
}

/* A memory limit in pages, as a wasm32 memory can use it (0: no limit). */
static uint32_t cap_pages(uint64_t pages) {
  return pages && pages < MAX_WASM_PAGES ? (uint32_t)pages : MAX_WASM_PAGES;
}

/* Returns 0, THAW_ENOMEM, or the unwind status of the step that failed.
 * The WASI context points at the instance's memory struct from the start:
 * its fields are zero until instantiate allocates the memory, so a host
 * call before that sees an empty memory, and the start function, which
 * runs after, sees the real one. */
static int fresh_build(struct fresh* f, const thaw_module_info* info,
                       const thaw_limits* limits, uint32_t max_pages) {
  memset(f, 0, sizeof *f);
  f->info = info;
  f->wasm = calloc(1, info->instance_size);
  wasm_rt_memory_t* mem = f->wasm ? (void*)(f->wasm + info->memory_offset) : NULL;
  thaw_wasi_init(&f->wasi, mem, limits->stdout_cap, limits->stderr_cap);
  if (!f->wasm) return THAW_ENOMEM;
  f->st.max_pages = max_pages;
  f->st.memory = mem;
  f->st.guarded = (info->flags & THAW_MODULE_GUARDED) != 0;
  thaw_code_bounds(info, &f->st.code_lo, &f->st.code_hi);
  uint64_t deadline = limits->timeout_ms ? thaw_now_ns() + limits->timeout_ms * 1000000u : 0;
  thaw_wasi_begin_call(&f->wasi, NULL, deadline);
  uint32_t depth = (uint32_t)limits->max_call_depth;
  int rc = thaw_guarded_run(&f->st, run_instantiate, f, deadline, depth, 0);
  if (rc == 0 && info->initialize)
    rc = thaw_guarded_run(&f->st, run_initialize, f, deadline, depth, 0);
  return rc;
}

static void fresh_free(struct fresh* f) {
  if (f->wasm) f->info->free_instance(f->wasm);
  free(f->wasm);
  thaw_wasi_free(&f->wasi);
}

static int write_all(int fd, const void* p, size_t n) {
  const uint8_t* b = p;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w <= 0) return THAW_EIO;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int page_is_zero(const uint8_t* p) {
  static const uint8_t zero[THAW_OS_PAGE];
  return memcmp(p, zero, THAW_OS_PAGE) == 0;
}

static int write_page(int fd, const uint8_t* p, uint64_t off) {
  if (page_is_zero(p)) return 0;
  if (lseek(fd, (off_t)off, SEEK_SET) < 0) return THAW_EIO;
  return write_all(fd, p, THAW_OS_PAGE);
}

/* Pages the process never gave memory to read as zero and are skipped
 * without being touched. Reading one faults it in: the shared (huge) zero
 * page where the kernel maps one, else a freshly allocated page, so a scan
 * of a large untouched memory cost page faults at best and up to its whole
 * size in RSS. Without pagemap every page is read. */
static int write_image(int fd, const uint8_t* data, uint64_t len, uint64_t off) {
  uint64_t pages = len / THAW_OS_PAGE;
  int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uint64_t entries[512];
  int rc = 0;
  for (uint64_t done = 0; !rc && done < pages;) {
    uint64_t batch = pages - done < 512 ? pages - done : 512;
    uint64_t first = (uintptr_t)(data + done * THAW_OS_PAGE) / THAW_OS_PAGE;
    ssize_t got = pagemap < 0 ? -1 : pread(pagemap, entries, batch * 8, (off_t)(first * 8));
    if (got < 8) {
      for (uint64_t i = 0; !rc && i < batch; i++)
        rc = write_page(fd, data + (done + i) * THAW_OS_PAGE, off + (done + i) * THAW_OS_PAGE);
      done += batch;
      continue;
    }
    for (uint64_t i = 0; !rc && i < (uint64_t)got / 8; i++)
      if (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))
        rc = write_page(fd, data + (done + i) * THAW_OS_PAGE, off + (done + i) * THAW_OS_PAGE);
    done += (uint64_t)got / 8;
  }
  if (pagemap >= 0) close(pagemap);
  if (rc) return rc;
  return ftruncate(fd, (off_t)(off + len)) == 0 ? 0 : THAW_EIO;
}

static int write_tables(int fd, const struct fresh* f, const code_range* code,
                        char* err, size_t err_len) {
  const thaw_module_info* info = f->info;
  snap_entry* buf = malloc(TABLE_IO_ENTRIES * sizeof *buf);
  if (!buf) return THAW_ENOMEM;
  int rc = 0;
  for (uint32_t t = 0; !rc && t < info->n_funcref_tables; t++) {
    const wasm_rt_funcref_table_t* tab =
        (void*)(f->wasm + info->funcref_table_offsets[t]);
    snap_table h = {tab->size, tab->max_size};
    rc = write_all(fd, &h, sizeof h);
    for (uint32_t at = 0; !rc && at < tab->size;) {
      uint32_t n = tab->size - at < TABLE_IO_ENTRIES ? tab->size - at : TABLE_IO_ENTRIES;
      for (uint32_t i = 0; !rc && i < n; i++) {
        const wasm_rt_funcref_t* e = &tab->data[at + i];
        buf[i] = (snap_entry){0, 0, 0};
        if (!e->func) continue;
        uint64_t off = (uintptr_t)e->func - code->base;
        if ((uintptr_t)e->func < code->base || off < code->lo || off >= code->hi)
          rc = fail(err, err_len, THAW_ESNAPSHOT,
                    "a table refers to an imported function%s", NULL);
        else if (e->module_instance != f->wasm)
          rc = fail(err, err_len, THAW_ESNAPSHOT,
                    "a table refers to another instance%s", NULL);
        buf[i] = (snap_entry){e->func_type, 0, off};
      }
      if (!rc) rc = write_all(fd, buf, n * sizeof *buf);
      at += n;
    }
  }
  free(buf);
  for (uint32_t t = 0; !rc && t < info->n_externref_tables; t++) {
    const wasm_rt_externref_table_t* tab =
        (void*)(f->wasm + info->externref_table_offsets[t]);
    snap_table h = {tab->size, tab->max_size};
    rc = write_all(fd, &h, sizeof h);
  }
  return rc;
}

static int write_snapshot(const char* path, const struct fresh* f, uint32_t n_types,
                          char* err, size_t err_len) {
  const thaw_module_info* info = f->info;
  const wasm_rt_memory_t* mem = (void*)(f->wasm + info->memory_offset);
  code_range code = code_of(info);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(err, err_len, THAW_EIO, "cannot write snapshot %s", tmp);
  snap_header h = {.abi = THAW_MODULE_ABI,
                   .instance_size = info->instance_size,
                   .mem_pages = mem->pages,
                   .mem_max_pages = mem->max_pages,
                   .n_types = n_types,
                   .n_ftables = info->n_funcref_tables,
                   .n_etables = info->n_externref_tables,
                   .image_len = mem->size};
  memcpy(h.magic, SNAP_MAGIC, 8);
  int rc = write_all(fd, &h, sizeof h);
  if (!rc) rc = write_all(fd, f->wasm, info->instance_size);
  if (!rc) rc = write_tables(fd, f, &code, err, err_len);
  if (!rc) {
    off_t end = lseek(fd, 0, SEEK_CUR);
    h.image_offset = ((uint64_t)end + THAW_OS_PAGE - 1) & ~(uint64_t)(THAW_OS_PAGE - 1);
    rc = write_image(fd, mem->data, mem->size, h.image_offset);
  }
  if (!rc && pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) rc = THAW_EIO;
  if (!rc && fsync(fd) != 0) rc = THAW_EIO;
  close(fd);
  if (!rc && rename(tmp, path) != 0) rc = THAW_EIO;
  if (rc) {
    unlink(tmp);
    if (err && err_len && !err[0]) snprintf(err, err_len, "cannot write snapshot %s", path);
  }
  return rc;
}

/* A trap after a refused grow is the memory limit, as for a call (call.c). */
static int init_status(int rc, const thaw_call_state* st) {
  if (rc == THAW_UNWIND_EXIT) return THAW_OK;
  if (st->grow_refused && (rc == THAW_TRAP_UNREACHABLE || rc == THAW_TRAP_OOB))
    return THAW_TRAP_MEMORY_LIMIT;
  return rc;
}

static void fill_init_result(thaw_result* res, int rc, const thaw_call_state* st,
                             const thaw_wasi* w, uint64_t t0) {
  if (!res) return;
  memset(res, 0, sizeof *res);
  res->status = init_status(rc, st);
  res->exit_code = rc == THAW_UNWIND_EXIT ? st->exit_code : 0;
  res->duration_ns = thaw_now_ns() - t0;
  res->stdout_len = w->out.len;
  res->stderr_len = w->err.len;
  if (st->grow_refused) res->flags |= THAW_RESULT_GROW_REFUSED;
}

static void* create_on_thread(void* arg) {
  struct create_job* j = arg;
  void* dl;
  const thaw_module_info* info;
  uint32_t n_types;
  j->rc = open_code(j->so_path, &dl, &info, &n_types, j->err, j->err_len);
  if (j->rc) return NULL;
  struct fresh f;
  uint64_t t0 = thaw_now_ns();
  int rc = fresh_build(&f, info, j->limits, cap_pages(j->limits->max_memory_pages));
  fill_init_result(j->result, rc, &f.st, &f.wasi, t0);
  if (rc == THAW_UNWIND_EXIT) {
    j->rc = fail(j->err, j->err_len, THAW_EINIT,
                 "initialization called proc_exit%s", NULL);
  } else if (rc == THAW_TRAP_TIMEOUT) {
    j->rc = fail(j->err, j->err_len, THAW_EINIT, "initialization timed out%s", NULL);
  } else if (rc) {
    j->rc = fail(j->err, j->err_len, THAW_EINIT, "initialization failed: %s",
                 rc == THAW_ENOMEM ? "out of memory" : thaw_status_name(init_status(rc, &f.st)));
  } else {
    j->rc = write_snapshot(j->snapshot_path, &f, n_types, j->err, j->err_len);
  }
  fresh_free(&f);
  dlclose(dl);
  return NULL;
}

int thaw_snapshot_create(const char* so_path, const char* snapshot_path,
                         const thaw_limits* limits, thaw_result* init_result,
                         char* err, size_t err_len) {
  if (!so_path || !snapshot_path || !limits) return THAW_EINVAL;
  if (err && err_len) err[0] = 0;
  struct create_job j = {so_path, snapshot_path, limits, init_result, err, err_len, 0};
  int rc = thaw_run_on_big_stack(create_on_thread, &j);
  return rc ? rc : j.rc;
}

/* ---- loading a snapshot ----------------------------------------------------------- */

static int read_exact(int fd, void* p, size_t n) {
  uint8_t* b = p;
  while (n) {
    ssize_t r = read(fd, b, n);
    if (r <= 0) return THAW_ESNAPSHOT;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

static int read_entries(thaw_table_template* tt, int fd, snap_entry* buf,
                        uint32_t n_types, const code_range* code) {
  for (uint32_t at = 0; at < tt->size;) {
    uint32_t n = tt->size - at < TABLE_IO_ENTRIES ? tt->size - at : TABLE_IO_ENTRIES;
    if (read_exact(fd, buf, n * sizeof *buf)) return THAW_ESNAPSHOT;
    for (uint32_t i = 0; i < n; i++) {
      const snap_entry* s = &buf[i];
      if (!s->func_type) continue;
      if (s->func_type > n_types || s->func_offset < code->lo || s->func_offset >= code->hi)
        return THAW_ESNAPSHOT;
      tt->entries[at + i].func_type = s->func_type;
      tt->entries[at + i].func = (wasm_rt_function_ptr_t)(code->base + s->func_offset);
    }
    at += n;
  }
  return 0;
}

/* The memory budget (rt.c) is checked before each table is allocated, so
 * a snapshot cannot make a load allocate more than its instances may hold. */
#define OVER_BUDGET 1
static int read_tables(thaw_module* m, int fd, const snap_header* h, uint32_t n_types,
                       uint64_t budget, char* err, size_t err_len) {
  code_range code = code_of(m->info);
  uint64_t bytes = (uint64_t)h->mem_pages * THAW_PAGE_SIZE;
  snap_table st;
  snap_entry* buf = malloc(TABLE_IO_ENTRIES * sizeof *buf);
  int rc = buf ? 0 : THAW_ENOMEM;
  for (uint32_t t = 0; !rc && t < h->n_ftables; t++) {
    thaw_table_template* tt = &m->ftables[t];
    if (read_exact(fd, &st, sizeof st)) {
      rc = THAW_ESNAPSHOT;
    } else if ((bytes += (uint64_t)st.size * sizeof(wasm_rt_funcref_t)) > budget) {
      rc = OVER_BUDGET;
    } else {
      tt->size = st.size;
      tt->max_size = st.max_size;
      tt->entries = calloc(tt->size ? tt->size : 1, sizeof *tt->entries);
      rc = tt->entries ? read_entries(tt, fd, buf, n_types, &code) : THAW_ENOMEM;
    }
  }
  free(buf);
  for (uint32_t t = 0; !rc && t < h->n_etables; t++) {
    if (read_exact(fd, &st, sizeof st)) {
      rc = THAW_ESNAPSHOT;
    } else if ((bytes += (uint64_t)st.size * sizeof(wasm_rt_externref_t)) > budget) {
      rc = OVER_BUDGET;
    } else {
      m->etable_size[t] = st.size;
      m->etable_max[t] = st.max_size;
    }
  }
  if (rc == OVER_BUDGET)
    return fail(err, err_len, THAW_ENOMEM,
                "snapshot memory and tables exceed the memory limit%s", NULL);
  if (rc == THAW_ENOMEM) return fail(err, err_len, rc, "out of memory%s", NULL);
  if (rc) return fail(err, err_len, rc, "snapshot is truncated or corrupt%s", NULL);
  return 0;
}

static int read_snapshot(thaw_module* m, int fd, uint32_t n_types, char* err,
                         size_t err_len) {
  snap_header h;
  const thaw_module_info* info = m->info;
  if (read_exact(fd, &h, sizeof h) || memcmp(h.magic, SNAP_MAGIC, 8) != 0)
    return fail(err, err_len, THAW_ESNAPSHOT, "not a thaw snapshot%s", NULL);
  if (h.abi != THAW_MODULE_ABI || h.instance_size != info->instance_size ||
      h.n_ftables != info->n_funcref_tables ||
      h.n_etables != info->n_externref_tables || h.n_types != n_types ||
      h.mem_pages > h.mem_max_pages || h.mem_max_pages > MAX_WASM_PAGES ||
      h.image_len != (uint64_t)h.mem_pages * THAW_PAGE_SIZE)
    return fail(err, err_len, THAW_ESNAPSHOT,
                "snapshot does not match the compiled code%s", NULL);
  uint32_t limit = cap_pages(m->limits.max_memory_pages);
  uint32_t max = h.mem_max_pages < limit ? h.mem_max_pages : limit;
  if (h.mem_pages > max)
    return fail(err, err_len, THAW_ENOMEM,
                "snapshot memory exceeds the memory limit%s", NULL);
  m->instance_bytes = malloc(h.instance_size);
  if (!m->instance_bytes) return fail(err, err_len, THAW_ENOMEM, "out of memory%s", NULL);
  if (read_exact(fd, m->instance_bytes, h.instance_size))
    return fail(err, err_len, THAW_ESNAPSHOT, "snapshot is truncated or corrupt%s", NULL);
  int rc = read_tables(m, fd, &h, n_types, thaw_region_size(limit), err, err_len);
  if (rc) return rc;
  m->mem_pages = h.mem_pages;
  m->max_pages = max;
  m->limit_pages = limit;
  m->image_offset = h.image_offset;
  m->image_len = h.image_len;
  return 0;
}

static void module_free(thaw_module* m) {
  for (uint32_t t = 0; t < THAW_MAX_TABLES; t++) {
    free(m->ftables[t].entries);
  }
  free(m->instance_bytes);
  if (m->image_view) munmap((void*)m->image_view, m->image_len);
  if (m->image_fd >= 0) close(m->image_fd);
  if (m->dl) dlclose(m->dl);
  free(m);
}

thaw_module* thaw_module_load(const char* so_path, const char* snapshot_path,
                              const thaw_limits* limits, char* err,
                              size_t err_len) {
  if (err && err_len) err[0] = 0;
  if (!so_path || !snapshot_path || !limits) return NULL;
  thaw_module* m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->image_fd = -1;
  m->limits = *limits;
  uint32_t n_types;
  if (open_code(so_path, &m->dl, &m->info, &n_types, err, err_len)) {
    m->dl = NULL;
    module_free(m);
    return NULL;
  }
  m->image_fd = open(snapshot_path, O_RDONLY | O_CLOEXEC);
  if (m->image_fd < 0) {
    fail(err, err_len, THAW_EIO, "cannot open snapshot %s", snapshot_path);
    module_free(m);
    return NULL;
  }
  if (read_snapshot(m, m->image_fd, n_types, err, err_len)) {
    module_free(m);
    return NULL;
  }
  if (m->image_len) {
    void* view = mmap(NULL, m->image_len, PROT_READ, MAP_SHARED, m->image_fd, (off_t)m->image_offset);
    if (view == MAP_FAILED) {
      fail(err, err_len, THAW_ENOMEM, "cannot map snapshot image%s", NULL);
      module_free(m);
      return NULL;
    }
    m->image_view = view;
  }
  code_range code = code_of(m->info);
  m->code_bytes = code.bytes;
  m->code_lo = code.base + code.lo;
  m->code_hi = code.base + code.hi;
  m->guarded = (m->info->flags & THAW_MODULE_GUARDED) != 0;
  atomic_store(&m->refs, 1);
  return m;
}

int64_t thaw_module_fresh_instantiate_ns(thaw_module* m) {
  struct fresh f;
  uint64_t t0 = thaw_now_ns();
  int rc = fresh_build(&f, m->info, &m->limits, m->limit_pages);
  uint64_t elapsed = thaw_now_ns() - t0;
  fresh_free(&f);
  return rc ? THAW_EINIT : (int64_t)elapsed;
}

void thaw_module_stats_get(const thaw_module* m, thaw_module_stats* out) {
  memset(out, 0, sizeof *out);
  out->code_bytes = m->code_bytes;
  out->snapshot_bytes = m->image_len;
  out->memory_pages = m->mem_pages;
  out->max_memory_pages = m->max_pages;
  out->instance_bytes = sizeof(thaw_instance) + m->info->instance_size;
  for (uint32_t t = 0; t < m->info->n_funcref_tables; t++)
    out->instance_bytes += m->ftables[t].size * sizeof(wasm_rt_funcref_t);
  out->live_instances = (uint64_t)atomic_load(&m->live);
  out->has_start = m->info->start != NULL;
  out->has_initialize = m->info->initialize != NULL;
  out->guarded = (uint64_t)m->guarded;
}

void thaw_module_unref(thaw_module* m) {
  if (atomic_fetch_sub(&m->refs, 1) == 1) module_free(m);
}

void thaw_module_release(thaw_module* m) {
  if (m) thaw_module_unref(m);
}
