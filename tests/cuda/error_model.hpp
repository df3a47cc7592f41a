// The GPU tests' error model: the bounds a correct GPU result must meet against the CPU
// reference, derived from how TF32 and FP32 round (docs/gpu-validation.md#the-error-model). One
// header for the GPU tests (tests/cuda/test_cuda_ops.cpp) and the CPU test that shows every bound
// is met by a correct op with margin and missed by a wrong one (tests/ops/test_error_model.cpp),
// so the two cannot drift apart.
//
// Products (convolution, dense; forward and both gradients). Element i of the result is a sum of
// K terms a_k b_k (plus a bias). Its magnitude m_i = sum_k |a_k||b_k| (+ |bias|) is the same op
// run on absolute values, and every rounding error in computing element i is proportional to it,
// not to |result_i|, which cancellation can make arbitrarily small. So the per-element figure is
//   max_i |got_i - ref_i| / m_i
// and its bound is the sum of:
//   - TF32 only: each operand rounded to TF32 has relative error <= 2^-10 (truncation; 2^-11 when
//     rounded to nearest as cvt.rna.tf32.f32 does), so each product <= 2^-9 + 2^-20 relative,
//     whatever the summation does: a worst-case bound that holds for either rounding;
//   - FP32 accumulation, on the GPU and in the reference: the probabilistic bound of Higham and
//     Mary, lambda * sqrt(K) * 2^-24 for each side, which fails with probability below
//     2 exp(-lambda^2 / 2) per element (lambda = 8: 3e-14; the worst-case K * 2^-24 is far too
//     loose for K in the thousands);
//   - where cuDNN may pick a Winograd- or FFT-class algorithm (stride 1): an allowance, since
//     these round in a transformed domain whose values exceed m_i by the transforms' norms
//     (FP32: 2^8 units; TF32: 8 times the operand term), sized on a Winograd F(4x4, 3x3)
//     emulation with margin (test_error_model.cpp).
// The norm-wise figure max |got - ref| / max |ref| (the one earlier runs printed) is bounded by
// what the per-element bound implies: per-element bound * max m / max |ref|.
//
// Other ops (pooling, batch norm, softmax cross-entropy, SGD) run in FP32 in both math modes and
// keep the older figures: norm-wise, and per element |got - ref| / (|ref| + 1e-3 max |ref|).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "distnet/backend.hpp"

namespace distnet::testkit {

// The CPU reference the GPU results are held to: direct convolution (the tightest rounding), in
// FP32 or with TF32 emulated (CpuOptions::math).
inline std::unique_ptr<Backend> cpu_reference(CpuOptions::Math m = CpuOptions::Math::fp32,
                                              Tf32Rounding r = Tf32Rounding::nearest_away) {
  CpuOptions o;
  o.conv = CpuOptions::ConvAlgorithm::direct;
  o.math = m;
  o.tf32_rounding = r;
  return make_cpu_backend(o);
}

enum class Arith { fp32, tf32 };
inline const char* arith_name(Arith a) {
  return a == Arith::fp32 ? "fp32" : "tf32";
}

inline constexpr double kFp32Unit = 0x1p-24;     // FP32 unit roundoff
inline constexpr double kTf32Operand = 0x1p-10;  // one operand's relative error, worst case
inline constexpr double kLambda = 8;             // probabilistic accumulation bound's lambda
// Allowances where cuDNN may pick a Winograd or FFT algorithm (stride 1, kernel > 1): FP32, in
// units of kFp32Unit; TF32, as a factor on the operand term (the transformed operands are what
// TF32 rounds). Sized on the Winograd F(4x4, 3x3) emulation in test_error_model.cpp.
inline constexpr double kTransformUnits = 0x1p8;
inline constexpr double kTf32TransformFactor = 8;

// Whether cuDNN's Winograd/FFT algorithms apply to a convolution: they need stride 1.
inline bool transforms_possible(const Conv2dGeom& g) {
  return g.stride == 1 && g.kernel > 1;
}

// Per-element bound for sums of `terms` products computed with `a` against the FP32 reference.
inline double accumulation_bound(std::int64_t terms) {
  return 2 * kLambda * std::sqrt(double(std::max<std::int64_t>(terms, 1))) * kFp32Unit;
}
inline double product_bound(Arith a, std::int64_t terms, bool transforms = false) {
  double operands = 0;
  if (a == Arith::tf32)
    operands = (2 * kTf32Operand + kTf32Operand * kTf32Operand) *
               (transforms ? kTf32TransformFactor : 1.0);
  else if (transforms)
    operands = kTransformUnits * kFp32Unit;
  return operands + accumulation_bound(terms);
}
// A sum without products (the bias gradient): FP32 in both modes, summed in any order.
inline double sum_bound(std::int64_t terms) {
  return accumulation_bound(terms);
}

struct Figures {
  double normwise = 0, per_element = 0;
};
struct Bounds {
  double normwise = 0, per_element = 0;
};

inline std::vector<float> abs_of(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::abs(x); });
  return a;
}

inline double max_abs(const std::vector<float>& v) {
  double m = 1e-30;
  for (float x : v) m = std::max(m, double(std::abs(x)));
  return m;
}

inline double normwise_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double diff = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    diff = std::max(diff, std::abs(double(got[i]) - ref[i]));
  return diff / max_abs(ref);
}

// Figures of a product against its reference and magnitude (the op on absolute values). An
// element whose magnitude is 0 must come out exactly (its ratio is then 0 or infinite).
inline Figures product_figures(const std::vector<float>& got, const std::vector<float>& ref,
                               const std::vector<float>& mag) {
  Figures f;
  f.normwise = normwise_error(got, ref);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(got[i]) - ref[i]);
    if (d > 0) f.per_element = std::max(f.per_element, d / std::max(double(mag[i]), 1e-38));
  }
  return f;
}
inline Bounds product_bounds(double per_element, const std::vector<float>& ref,
                             const std::vector<float>& mag) {
  return {per_element * max_abs(mag) / max_abs(ref), per_element};
}

// The older figures, for the ops without long products.
inline constexpr double kFloorFraction = 1e-3;
inline constexpr Bounds kFp32OpBounds{1e-4, 1e-3};
inline Figures floor_figures(const std::vector<float>& got, const std::vector<float>& ref) {
  Figures f;
  f.normwise = normwise_error(got, ref);
  const double floor = kFloorFraction * max_abs(ref);
  for (std::size_t i = 0; i < ref.size(); ++i)
    f.per_element = std::max(
        f.per_element, std::abs(double(got[i]) - ref[i]) / (std::abs(double(ref[i])) + floor));
  return f;
}

inline bool within(const Figures& f, const Bounds& b) {
  return f.normwise <= b.normwise && f.per_element <= b.per_element;
}

// Prints both figures with their bounds and expects them met.
inline void expect_within(const std::string& what, const char* mode, const Figures& f,
                          const Bounds& b) {
  std::printf("  %-34s %s: norm-wise %.3g (bound %.3g), per element %.3g (bound %.3g)\n",
              what.c_str(), mode, f.normwise, b.normwise, f.per_element, b.per_element);
  EXPECT_LE(f.normwise, b.normwise) << what << " (norm-wise)";
  EXPECT_LE(f.per_element, b.per_element) << what << " (per element)";
}

// A product against its reference: `terms` products per element (see the counts below).
inline void expect_product_close(const std::string& what, Arith a, std::int64_t terms,
                                 const std::vector<float>& got, const std::vector<float>& ref,
                                 const std::vector<float>& mag, bool transforms = false) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_within(what, arith_name(a), product_figures(got, ref, mag),
                product_bounds(product_bound(a, terms, transforms), ref, mag));
}
inline void expect_sum_close(const std::string& what, std::int64_t terms,
                             const std::vector<float>& got, const std::vector<float>& ref,
                             const std::vector<float>& mag) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_within(what, "fp32", product_figures(got, ref, mag),
                product_bounds(sum_bound(terms), ref, mag));
}
inline void expect_fp32_op_close(const std::string& what, const std::vector<float>& got,
                                 const std::vector<float>& ref) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_within(what, "fp32", floor_figures(got, ref), kFp32OpBounds);
}

// Terms per element of each result (the largest count where it varies).
struct ConvTerms {
  std::int64_t y, dx, dw, db;
};
// A grouped convolution's output sees c_in / groups input channels, its input c_out / groups
// output channels.
inline ConvTerms conv_terms(const Conv2dGeom& g, int n) {
  const std::int64_t taps = (g.kernel + g.stride - 1) / g.stride;
  const std::int64_t out_plane = std::int64_t(n) * g.h_out() * g.w_out();
  return {std::int64_t(g.c_in / g.groups) * g.kernel * g.kernel,
          std::int64_t(g.c_out / g.groups) * taps * taps, out_plane, out_plane};
}
inline ConvTerms dense_terms(int in, int out, int n) {
  return {in, out, n, n};
}

// One op's results, and the same op run on the absolute values (its magnitudes).
struct ProductResults {
  std::vector<float> y, dx, dw, db;
};

inline ProductResults run_conv(Backend& cpu, const Conv2dGeom& g, int n,
                               const std::vector<float>& x, const std::vector<float>& w,
                               const std::vector<float>& b, const std::vector<float>& dy) {
  ProductResults r;
  r.y.resize(std::size_t(n) * g.c_out * g.h_out() * g.w_out());
  r.dx.resize(x.size());
  r.dw.resize(w.size());
  r.db.resize(g.bias ? b.size() : 0);
  auto op = cpu.make_conv2d(g);
  // Without a bias (g.bias false) the op takes null for b and db; r.db stays empty.
  op->forward(n, x.data(), w.data(), g.bias ? b.data() : nullptr, r.y.data());
  op->backward(n, x.data(), w.data(), dy.data(), r.dx.data(), r.dw.data(),
               g.bias ? r.db.data() : nullptr);
  return r;
}

inline ProductResults run_dense(Backend& cpu, int in, int out, int n, const std::vector<float>& x,
                                const std::vector<float>& w, const std::vector<float>& b,
                                const std::vector<float>& dy) {
  ProductResults r;
  r.y.resize(std::size_t(n) * out);
  r.dx.resize(x.size());
  r.dw.resize(w.size());
  r.db.resize(b.size());
  auto op = cpu.make_dense(in, out);
  op->forward(n, x.data(), w.data(), b.data(), r.y.data());
  op->backward(n, x.data(), w.data(), dy.data(), r.dx.data(), r.dw.data(), r.db.data());
  return r;
}

}  // namespace distnet::testkit
