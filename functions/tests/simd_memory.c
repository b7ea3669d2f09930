/* simd_memory: WebAssembly SIMD loads and stores (lanes, splats, zero and
 * widening loads) at unaligned offsets of a buffer filled from stdin, and a
 * vector store that runs past the end of memory, which must trap.
 * Built with -msimd128 (functions/Makefile); see test/simd.test.ts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <wasm_simd128.h>

static uint8_t buf[512];

static void put(const char* name, v128_t v) {
  uint8_t b[16];
  wasm_v128_store(b, v);
  printf("%s ", name);
  for (int i = 0; i < 16; i++) printf("%02x", b[i]);
  printf("\n");
}

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  size_t n = fread(buf, 1, sizeof buf, stdin);
  for (size_t i = n; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 29 + 3);
  v128_t v = wasm_v128_load(buf + 3);
  put("load", v);
  put("load8x8_s", wasm_i16x8_load8x8(buf + 5));
  put("load8x8_u", wasm_u16x8_load8x8(buf + 6));
  put("load16x4_s", wasm_i32x4_load16x4(buf + 7));
  put("load32x2_u", wasm_u64x2_load32x2(buf + 9));
  put("load8_splat", wasm_v128_load8_splat(buf + 10));
  put("load16_splat", wasm_v128_load16_splat(buf + 11));
  put("load32_splat", wasm_v128_load32_splat(buf + 13));
  put("load64_splat", wasm_v128_load64_splat(buf + 17));
  put("load32_zero", wasm_v128_load32_zero(buf + 19));
  put("load64_zero", wasm_v128_load64_zero(buf + 23));
  put("load8_lane", wasm_v128_load8_lane(buf + 29, v, 9));
  put("load16_lane", wasm_v128_load16_lane(buf + 31, v, 3));
  put("load32_lane", wasm_v128_load32_lane(buf + 37, v, 2));
  put("load64_lane", wasm_v128_load64_lane(buf + 41, v, 1));
  wasm_v128_store8_lane(buf + 100, v, 7);
  wasm_v128_store16_lane(buf + 103, v, 5);
  wasm_v128_store32_lane(buf + 107, v, 3);
  wasm_v128_store64_lane(buf + 113, v, 0);
  wasm_v128_store(buf + 121, wasm_i8x16_add(v, wasm_v128_load(buf + 100)));
  put("stored", wasm_v128_load(buf + 100));
  put("stored2", wasm_v128_load(buf + 116));
  fflush(stdout);
  /* "trap" on stdin: a vector store across the end of linear memory. */
  if (n >= 4 && buf[0] == 't' && buf[1] == 'r' && buf[2] == 'a' && buf[3] == 'p') {
    uintptr_t end = __builtin_wasm_memory_size(0) * 65536;
    volatile v128_t* p = (v128_t*)(end - 8);
    *p = v;
    puts("not reached");
  }
  return 0;
}
