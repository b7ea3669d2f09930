/* simd_float: f32x4 / f64x2 WebAssembly SIMD over numbers derived from
 * stdin, printed with %a (exact), NaN-free so every engine must agree.
 * Built with -msimd128 (functions/Makefile); see test/simd.test.ts. */
#include <stdint.h>
#include <stdio.h>
#include <wasm_simd128.h>

static uint8_t buf[256];

static void f4(const char* name, v128_t v) {
  printf("%s %a %a %a %a\n", name, wasm_f32x4_extract_lane(v, 0), wasm_f32x4_extract_lane(v, 1),
         wasm_f32x4_extract_lane(v, 2), wasm_f32x4_extract_lane(v, 3));
}
static void f2(const char* name, v128_t v) {
  printf("%s %a %a\n", name, wasm_f64x2_extract_lane(v, 0), wasm_f64x2_extract_lane(v, 1));
}
static void i4(const char* name, v128_t v) {
  printf("%s %d %d %d %d\n", name, wasm_i32x4_extract_lane(v, 0), wasm_i32x4_extract_lane(v, 1),
         wasm_i32x4_extract_lane(v, 2), wasm_i32x4_extract_lane(v, 3));
}

int main(void) {
  size_t n = fread(buf, 1, sizeof buf, stdin);
  for (size_t i = n; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 53 + 7);
  float fa[8];
  double da[4];
  for (int i = 0; i < 8; i++) fa[i] = ((int)buf[i] - 128) * 0.37f + (i & 1 ? -0.5f : 0.5f);
  for (int i = 0; i < 4; i++) da[i] = ((int)buf[8 + i] - 100) * 1.7e9 + 0.25;
  v128_t a = wasm_v128_load(fa), b = wasm_v128_load(fa + 4);
  v128_t d = wasm_v128_load(da), e = wasm_v128_load(da + 2);
  f4("add", wasm_f32x4_add(a, b));
  f4("sub", wasm_f32x4_sub(a, b));
  f4("mul", wasm_f32x4_mul(a, b));
  f4("div", wasm_f32x4_div(a, b));
  f4("min", wasm_f32x4_min(a, b));
  f4("max", wasm_f32x4_max(a, wasm_f32x4_neg(a)));
  f4("pmin", wasm_f32x4_pmin(a, b));
  f4("pmax", wasm_f32x4_pmax(a, b));
  f4("abs", wasm_f32x4_abs(a));
  f4("sqrt", wasm_f32x4_sqrt(wasm_f32x4_abs(a)));
  f4("ceil", wasm_f32x4_ceil(a));
  f4("floor", wasm_f32x4_floor(a));
  f4("trunc", wasm_f32x4_trunc(a));
  f4("nearest", wasm_f32x4_nearest(a));
  f4("convert_s", wasm_f32x4_convert_i32x4(wasm_v128_load(buf)));
  f4("convert_u", wasm_f32x4_convert_u32x4(wasm_v128_load(buf + 16)));
  f4("demote", wasm_f32x4_demote_f64x2_zero(d));
  i4("trunc_sat_s", wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_mul(a, wasm_f32x4_splat(1e8f))));
  i4("trunc_sat_u", wasm_u32x4_trunc_sat_f32x4(wasm_f32x4_mul(a, wasm_f32x4_splat(1e8f))));
  i4("trunc_sat_zero_s", wasm_i32x4_trunc_sat_f64x2_zero(d));
  i4("trunc_sat_zero_u", wasm_u32x4_trunc_sat_f64x2_zero(e));
  i4("lt", wasm_f32x4_lt(a, b));
  i4("ge", wasm_f32x4_ge(a, b));
  f2("add", wasm_f64x2_add(d, e));
  f2("mul", wasm_f64x2_mul(d, e));
  f2("div", wasm_f64x2_div(d, e));
  f2("min", wasm_f64x2_min(d, e));
  f2("max", wasm_f64x2_max(d, e));
  f2("sqrt", wasm_f64x2_sqrt(wasm_f64x2_abs(d)));
  f2("nearest", wasm_f64x2_nearest(wasm_f64x2_div(d, wasm_f64x2_splat(1e9))));
  f2("floor", wasm_f64x2_floor(wasm_f64x2_div(e, wasm_f64x2_splat(3e9))));
  f2("promote", wasm_f64x2_promote_low_f32x4(a));
  f2("convert_lo_s", wasm_f64x2_convert_low_i32x4(wasm_v128_load(buf + 32)));
  f2("convert_lo_u", wasm_f64x2_convert_low_u32x4(wasm_v128_load(buf + 48)));
  f4("replace", wasm_f32x4_replace_lane(a, 2, 1.5f));
  f2("splat", wasm_f64x2_splat(da[3]));
  /* A loop the compiler vectorizes by itself. */
  float acc = 0;
  for (int i = 0; i < 64; i++) acc += (float)buf[i] * (float)buf[i + 64];
  printf("dot %a\n", acc);
  return 0;
}
