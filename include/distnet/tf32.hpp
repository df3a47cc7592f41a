// TF32: FP32's sign and 8-bit exponent with a 10-bit mantissa (19 bits in all). Tensor cores in
// TF32 mode multiply TF32 operands exactly and accumulate in FP32; an FP32 operand is first
// rounded to TF32. NVIDIA's conversion is cvt.rna.tf32.f32 (PTX ISA: round to nearest, ties away
// from zero); a kernel that feeds FP32 bits to the tensor cores unconverted truncates instead
// (the low 13 bits are ignored). Either way the relative error of one operand is at most 2^-11
// (rounding) or 2^-10 (truncation). Used by the CPU backend's TF32 emulation (CpuOptions::math)
// and by the GPU tests' error model (docs/gpu-validation.md#the-error-model).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace distnet {

enum class Tf32Rounding { nearest_away, truncate };

inline float to_tf32(float x, Tf32Rounding r = Tf32Rounding::nearest_away) {
  if (!std::isfinite(x)) return x;
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  // Adding half of the dropped part's unit to the magnitude bits rounds ties away from zero (a
  // carry into the exponent is the correct result, also up to infinity).
  if (r == Tf32Rounding::nearest_away) u += 0x1000u;
  u &= 0xffffe000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

}  // namespace distnet
