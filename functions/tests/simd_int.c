/* simd_int: integer WebAssembly SIMD over bytes from stdin, printed as hex.
 * Built with -msimd128 (functions/Makefile); test/simd.test.ts compares
 * thaw's output with Bun's WebAssembly running the same module. */
#include <stdint.h>
#include <stdio.h>
#include <wasm_simd128.h>

static uint8_t buf[4096];

static void put(const char* name, v128_t v) {
  uint8_t b[16];
  wasm_v128_store(b, v);
  printf("%s ", name);
  for (int i = 0; i < 16; i++) printf("%02x", b[i]);
  printf("\n");
}

int main(void) {
  size_t n = fread(buf, 1, sizeof buf, stdin);
  for (size_t i = n; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 37 + 11);
  v128_t a = wasm_v128_load(buf), b = wasm_v128_load(buf + 16), c = wasm_v128_load(buf + 32);
  put("i8.add", wasm_i8x16_add(a, b));
  put("i8.sub", wasm_i8x16_sub(a, b));
  put("i8.add_sat_s", wasm_i8x16_add_sat(a, b));
  put("i8.add_sat_u", wasm_u8x16_add_sat(a, b));
  put("i8.sub_sat_s", wasm_i8x16_sub_sat(a, b));
  put("i8.sub_sat_u", wasm_u8x16_sub_sat(a, b));
  put("i8.min_s", wasm_i8x16_min(a, b));
  put("i8.max_u", wasm_u8x16_max(a, b));
  put("i8.avgr_u", wasm_u8x16_avgr(a, b));
  put("i8.abs", wasm_i8x16_abs(a));
  put("i8.neg", wasm_i8x16_neg(a));
  put("i8.popcnt", wasm_i8x16_popcnt(a));
  put("i8.shl", wasm_i8x16_shl(a, buf[48]));
  put("i8.shr_s", wasm_i8x16_shr(a, buf[49]));
  put("i8.shr_u", wasm_u8x16_shr(a, buf[50]));
  put("i8.eq", wasm_i8x16_eq(a, c));
  put("i8.lt_s", wasm_i8x16_lt(a, b));
  put("i8.ge_u", wasm_u8x16_ge(a, b));
  put("i8.swizzle", wasm_i8x16_swizzle(a, wasm_v128_and(b, wasm_i8x16_splat(0x1f))));
  put("i8.shuffle", wasm_i8x16_shuffle(a, b, 0, 31, 1, 30, 2, 29, 15, 16, 7, 8, 23, 24, 4, 4, 19, 11));
  put("i8.narrow_s", wasm_i8x16_narrow_i16x8(a, b));
  put("i8.narrow_u", wasm_u8x16_narrow_i16x8(a, b));
  put("i16.mul", wasm_i16x8_mul(a, b));
  put("i16.q15mulr", wasm_i16x8_q15mulr_sat(a, b));
  put("i16.extmul_lo_s", wasm_i16x8_extmul_low_i8x16(a, b));
  put("i16.extmul_hi_u", wasm_u16x8_extmul_high_u8x16(a, b));
  put("i16.extadd_s", wasm_i16x8_extadd_pairwise_i8x16(a));
  put("i16.extend_hi_u", wasm_u16x8_extend_high_u8x16(a));
  put("i16.narrow_u", wasm_u16x8_narrow_i32x4(a, b));
  put("i16.shr_s", wasm_i16x8_shr(a, buf[51]));
  put("i16.min_u", wasm_u16x8_min(a, b));
  put("i16.gt_s", wasm_i16x8_gt(a, b));
  put("i32.mul", wasm_i32x4_mul(a, b));
  put("i32.dot", wasm_i32x4_dot_i16x8(a, b));
  put("i32.extmul_hi_s", wasm_i32x4_extmul_high_i16x8(a, b));
  put("i32.extadd_u", wasm_u32x4_extadd_pairwise_u16x8(a));
  put("i32.shl", wasm_i32x4_shl(a, buf[52]));
  put("i32.max_s", wasm_i32x4_max(a, b));
  put("i32.le_u", wasm_u32x4_le(a, b));
  put("i32.abs", wasm_i32x4_abs(a));
  put("i64.mul", wasm_i64x2_mul(a, b));
  put("i64.add", wasm_i64x2_add(a, b));
  put("i64.shr_s", wasm_i64x2_shr(a, buf[53]));
  put("i64.shr_u", wasm_u64x2_shr(a, buf[54]));
  put("i64.lt_s", wasm_i64x2_lt(a, b));
  put("i64.extmul_lo_u", wasm_u64x2_extmul_low_u32x4(a, b));
  put("i64.extend_hi_s", wasm_i64x2_extend_high_i32x4(a));
  put("i64.abs", wasm_i64x2_abs(a));
  put("v.bitselect", wasm_v128_bitselect(a, b, c));
  put("v.andnot", wasm_v128_andnot(a, b));
  put("v.not", wasm_v128_not(a));
  printf("masks %x %x %x %x\n", wasm_i8x16_bitmask(a), wasm_i16x8_bitmask(b), wasm_i32x4_bitmask(c),
         wasm_i64x2_bitmask(a));
  printf("true %d %d %d %d %d\n", wasm_v128_any_true(a), wasm_i8x16_all_true(a), wasm_i16x8_all_true(b),
         wasm_i32x4_all_true(c), wasm_i64x2_all_true(a));
  printf("lanes %d %u %d %u %u %llu\n", wasm_i8x16_extract_lane(a, 3), wasm_u8x16_extract_lane(a, 15),
         wasm_i16x8_extract_lane(b, 2), wasm_u16x8_extract_lane(b, 7), wasm_i32x4_extract_lane(c, 1),
         (unsigned long long)wasm_i64x2_extract_lane(c, 1));
  put("replace", wasm_i64x2_replace_lane(wasm_i16x8_replace_lane(wasm_i8x16_replace_lane(a, 5, 0x7f), 6, 0x1234), 0, 42));
  /* A loop the compiler vectorizes by itself: a checksum over everything read. */
  uint32_t sum = 0;
  for (size_t i = 0; i < sizeof buf; i++) sum += buf[i] * (uint32_t)(i & 7);
  printf("sum %u\n", sum);
  return 0;
}
