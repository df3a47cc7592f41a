// The GPU tests' bounds (tests/cuda/error_model.hpp) shown on the CPU, in both directions, for
// every product shape the GPU tests use: the TF32 emulation of a correct op (operands rounded to
// TF32 by nearest-away, as cvt.rna.tf32.f32, and by truncation) passes the TF32 bounds with
// margin, FP32 computed another way (another summation order; FFT for the stride-1 layers;
// Winograd F(4x4, 3x3) for the 3x3 ones) passes the FP32 bounds, and deliberately wrong ops --
// padding off by one, a transposed weight, a dropped bias, and TF32 rounding under --math fp32 --
// fail them. Each figure is printed with its bound, so docs/gpu-validation.md's margins can be
// checked against a run.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <complex>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/error_model.hpp"
#include "distnet/tf32.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace {

std::unique_ptr<Backend> reference(CpuOptions::Math m = CpuOptions::Math::fp32,
                                   Tf32Rounding r = Tf32Rounding::nearest_away) {
  return cpu_reference(m, r);
}

struct ConvCase {
  Conv2dGeom g;
  int n;
};
// The GPU tests' shapes: CudaVsCpu.Conv2dForwardAndAllGradients (batch 3) and
// ConvBatchSizes (batches 6, 7, 8).
const ConvCase kConvCases[] = {{{3, 35, 35, 8, 11, 4, 0}, 3},  {{8, 13, 13, 16, 5, 1, 2}, 3},
                               {{16, 7, 7, 12, 3, 1, 1}, 3},   {{16, 13, 13, 24, 3, 1, 1}, 6},
                               {{16, 13, 13, 24, 3, 1, 1}, 7}, {{16, 13, 13, 24, 3, 1, 1}, 8}};
// CudaVsCpu.DenseForwardAndAllGradients.
constexpr int kDenseN = 5, kDenseIn = 300, kDenseOut = 70;

std::string conv_name(const ConvCase& c) {
  const Conv2dGeom& g = c.g;
  return "conv " + std::to_string(g.kernel) + "x" + std::to_string(g.kernel) + " s" +
         std::to_string(g.stride) + " p" + std::to_string(g.pad) + " " + std::to_string(g.c_in) +
         "->" + std::to_string(g.c_out) + " n" + std::to_string(c.n);
}

// A figure against its bound, and which way it must go.
struct Verdict {
  double figure_pe, bound_pe, figure_nw, bound_nw;
  bool pass() const { return figure_pe <= bound_pe && figure_nw <= bound_nw; }
};
Verdict judge(double per_element_bound, const std::vector<float>& got,
              const std::vector<float>& ref, const std::vector<float>& mag) {
  const Figures f = product_figures(got, ref, mag);
  const Bounds b = product_bounds(per_element_bound, ref, mag);
  return {f.per_element, b.per_element, f.normwise, b.normwise};
}
void report(const std::string& what, const Verdict& v, bool should_pass) {
  std::printf("  %-46s per element %9.3g / bound %9.3g = %7.3g   norm-wise %9.3g / %9.3g  %s\n",
              what.c_str(), v.figure_pe, v.bound_pe, v.figure_pe / v.bound_pe, v.figure_nw,
              v.bound_nw, should_pass ? "(must pass)" : "(must fail)");
  if (should_pass)
    EXPECT_TRUE(v.pass()) << what;
  else
    EXPECT_FALSE(v.pass()) << what;
}

struct ConvData {
  std::vector<float> x, w, b, dy;
};
ConvData conv_data(const ConvCase& c) {
  const Conv2dGeom& g = c.g;
  ConvData d;
  d.x = random_vector(std::int64_t(c.n) * g.c_in * g.h_in * g.w_in, 1);
  d.w = random_vector(std::int64_t(g.c_out) * g.c_in * g.kernel * g.kernel, 2);
  d.b = random_vector(g.c_out, 3);
  d.dy = random_vector(std::int64_t(c.n) * g.c_out * g.h_out() * g.w_out(), 4);
  return d;
}

// Moves every plane of an NCHW tensor by (dh, dw) pixels, zero-filling what comes in.
std::vector<float> shifted(const std::vector<float>& t, int planes, int h, int w, int dh, int dw) {
  std::vector<float> s(t.size(), 0.0f);
  for (int p = 0; p < planes; ++p)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        const int si = i - dh, sj = j - dw;
        if (si >= 0 && si < h && sj >= 0 && sj < w)
          s[(std::size_t(p) * h + i) * w + j] = t[(std::size_t(p) * h + si) * w + sj];
      }
  return s;
}

// Swaps the two spatial axes of every k x k kernel (OIHW -> OIWH).
std::vector<float> kernels_transposed(const std::vector<float>& w, int k) {
  std::vector<float> t(w.size());
  for (std::size_t p = 0; p < w.size() / std::size_t(k * k); ++p)
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) t[p * k * k + std::size_t(j * k + i)] = w[p * k * k + i * k + j];
  return t;
}

// Deliberately wrong convolutions, each as a plausible bug would compute it.
// Padding off by one: one more row/column of zeros at the top/left than the geometry says, one
// fewer at the bottom/right -- the input seen shifted by a pixel. dx comes back shifted too.
ProductResults conv_pad_off_by_one(Backend& cpu, const ConvCase& c, const ConvData& d) {
  const Conv2dGeom& g = c.g;
  const int planes = c.n * g.c_in;
  ProductResults r =
      run_conv(cpu, g, c.n, shifted(d.x, planes, g.h_in, g.w_in, 1, 1), d.w, d.b, d.dy);
  r.dx = shifted(r.dx, planes, g.h_in, g.w_in, -1, -1);
  return r;
}
// A transposed weight: kernels read with rows and columns swapped (and the gradient stored so).
ProductResults conv_weight_transposed(Backend& cpu, const ConvCase& c, const ConvData& d) {
  ProductResults r = run_conv(cpu, c.g, c.n, d.x, kernels_transposed(d.w, c.g.kernel), d.b, d.dy);
  r.dw = kernels_transposed(r.dw, c.g.kernel);
  return r;
}
// A dropped bias: never added, and its gradient never written (left zero).
ProductResults conv_bias_dropped(Backend& cpu, const ConvCase& c, const ConvData& d) {
  ProductResults r = run_conv(cpu, c.g, c.n, d.x, d.w, std::vector<float>(d.b.size(), 0.0f), d.dy);
  std::fill(r.db.begin(), r.db.end(), 0.0f);
  return r;
}

// FP32 convolution forward by another summation order than oneDNN's: plain loops over the
// kernel taps last-to-first, channels last-to-first, the bias added at the end.
std::vector<float> conv_forward_reversed(const Conv2dGeom& g, int n, const ConvData& d) {
  std::vector<float> y(std::size_t(n) * g.c_out * g.h_out() * g.w_out());
  std::size_t at = 0;
  for (int s = 0; s < n; ++s)
    for (int o = 0; o < g.c_out; ++o)
      for (int i = 0; i < g.h_out(); ++i)
        for (int j = 0; j < g.w_out(); ++j) {
          float acc = 0;
          for (int c = g.c_in - 1; c >= 0; --c)
            for (int ki = g.kernel - 1; ki >= 0; --ki)
              for (int kj = g.kernel - 1; kj >= 0; --kj) {
                const int hi = i * g.stride - g.pad + ki, wj = j * g.stride - g.pad + kj;
                if (hi < 0 || hi >= g.h_in || wj < 0 || wj >= g.w_in) continue;
                acc += d.x[((std::size_t(s) * g.c_in + c) * g.h_in + hi) * g.w_in + wj] *
                       d.w[((std::size_t(o) * g.c_in + c) * g.kernel + ki) * g.kernel + kj];
              }
          y[at++] = acc + d.b[std::size_t(o)];
        }
  return y;
}

// Winograd F(4x4, 3x3) forward in FP32 (Lavin and Gray's transforms, interpolation points 0,
// +-1, +-2 and infinity), as cuDNN's WINOGRAD_NONFUSED computes 3x3 stride-1 layers: the input
// tile transformed by B, the kernel by G, an element-wise product summed over input channels (a
// GEMM per transformed position, whose operands TF32 mode would round), the result transformed
// back by A. With TF32 the transformed operands are rounded to TF32 before the product.
enum class Transformed { fp32, tf32_nearest, tf32_truncated };
std::vector<float> conv_forward_winograd(const Conv2dGeom& g, int n, const ConvData& d,
                                         Transformed t) {
  constexpr int kM = 4, kT = 6;  // output tile, input tile
  static const float BT[kT][kT] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                   {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static const float G[kT][3] = {{1.f / 4, 0, 0},
                                 {-1.f / 6, -1.f / 6, -1.f / 6},
                                 {-1.f / 6, 1.f / 6, -1.f / 6},
                                 {1.f / 24, 1.f / 12, 1.f / 6},
                                 {1.f / 24, -1.f / 12, 1.f / 6},
                                 {0, 0, 1}};
  static const float AT[kM][kT] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  using Tile = std::array<std::array<float, kT>, kT>;
  const auto round = [t](float v) {
    return t == Transformed::fp32
               ? v
               : to_tf32(v, t == Transformed::tf32_nearest ? Tf32Rounding::nearest_away
                                                           : Tf32Rounding::truncate);
  };
  // U = G w G^T per (o, c).
  std::vector<Tile> U(std::size_t(g.c_out) * g.c_in);
  for (int o = 0; o < g.c_out; ++o)
    for (int c = 0; c < g.c_in; ++c) {
      const float* k = &d.w[(std::size_t(o) * g.c_in + c) * 9];
      float gk[kT][3] = {};
      for (int a = 0; a < kT; ++a)
        for (int j = 0; j < 3; ++j)
          for (int i = 0; i < 3; ++i) gk[a][j] += G[a][i] * k[i * 3 + j];
      Tile& u = U[std::size_t(o) * g.c_in + c];
      for (int a = 0; a < kT; ++a)
        for (int b = 0; b < kT; ++b) {
          float s = 0;
          for (int j = 0; j < 3; ++j) s += gk[a][j] * G[b][j];
          u[a][b] = round(s);
        }
    }
  const int ho = g.h_out(), wo = g.w_out();
  std::vector<float> y(std::size_t(n) * g.c_out * ho * wo);
  std::vector<Tile> V(std::size_t(g.c_in));
  for (int s = 0; s < n; ++s)
    for (int ti = 0; ti < ho; ti += kM)
      for (int tj = 0; tj < wo; tj += kM) {
        for (int c = 0; c < g.c_in; ++c) {  // V = B^T x B
          float xt[kT][kT], bx[kT][kT] = {};
          for (int a = 0; a < kT; ++a)
            for (int b = 0; b < kT; ++b) {
              const int hi = ti - g.pad + a, wj = tj - g.pad + b;
              xt[a][b] = hi < 0 || hi >= g.h_in || wj < 0 || wj >= g.w_in
                             ? 0.0f
                             : d.x[((std::size_t(s) * g.c_in + c) * g.h_in + hi) * g.w_in + wj];
            }
          for (int a = 0; a < kT; ++a)
            for (int b = 0; b < kT; ++b)
              for (int i = 0; i < kT; ++i) bx[a][b] += BT[a][i] * xt[i][b];
          for (int a = 0; a < kT; ++a)
            for (int b = 0; b < kT; ++b) {
              float v = 0;
              for (int i = 0; i < kT; ++i) v += bx[a][i] * BT[b][i];
              V[std::size_t(c)][a][b] = round(v);
            }
        }
        for (int o = 0; o < g.c_out; ++o) {
          float m[kT][kT] = {}, am[kM][kT] = {};
          for (int c = 0; c < g.c_in; ++c)
            for (int a = 0; a < kT; ++a)
              for (int b = 0; b < kT; ++b)
                m[a][b] += U[std::size_t(o) * g.c_in + c][a][b] * V[std::size_t(c)][a][b];
          for (int a = 0; a < kM; ++a)
            for (int b = 0; b < kT; ++b)
              for (int i = 0; i < kT; ++i) am[a][b] += AT[a][i] * m[i][b];
          for (int a = 0; a < kM && ti + a < ho; ++a)
            for (int b = 0; b < kM && tj + b < wo; ++b) {
              float v = 0;
              for (int i = 0; i < kT; ++i) v += am[a][i] * AT[b][i];
              y[((std::size_t(s) * g.c_out + o) * ho + ti + a) * wo + tj + b] =
                  v + d.b[std::size_t(o)];
            }
        }
      }
  return y;
}

// 2-D FFT of a P x P complex array in place (radix 2, row-column, FP32 arithmetic as cuFFT's
// single precision); inverse without the 1/P^2 scale.
void fft2(std::vector<std::complex<float>>& a, int p, bool inverse) {
  const auto fft1 = [&](std::complex<float>* v, int stride) {
    for (int i = 1, j = 0; i < p; ++i) {  // bit reversal
      int bit = p >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(v[i * stride], v[j * stride]);
    }
    for (int len = 2; len <= p; len <<= 1) {
      const double ang = 2 * M_PI / len * (inverse ? 1 : -1);
      for (int i = 0; i < p; i += len)
        for (int k = 0; k < len / 2; ++k) {
          const std::complex<float> w(float(std::cos(ang * k)), float(std::sin(ang * k)));
          const std::complex<float> u = v[(i + k) * stride], t = w * v[(i + k + len / 2) * stride];
          v[(i + k) * stride] = u + t;
          v[(i + k + len / 2) * stride] = u - t;
        }
    }
  };
  for (int r = 0; r < p; ++r) fft1(&a[std::size_t(r) * p], 1);
  for (int c = 0; c < p; ++c) fft1(&a[std::size_t(c)], p);
}

// Convolution forward through FFTs in FP32, as cuDNN's FFT algorithms compute stride-1 layers:
// the zero-padded input plane and the kernel transformed, multiplied (the kernel conjugated, for
// cross-correlation) and summed over input channels in the frequency domain, transformed back.
std::vector<float> conv_forward_fft(const Conv2dGeom& g, int n, const ConvData& d) {
  int p = 1;
  while (p < std::max(g.h_in, g.w_in) + 2 * g.pad) p <<= 1;
  const std::size_t plane = std::size_t(p) * p;
  std::vector<std::vector<std::complex<float>>> wf(std::size_t(g.c_out) * g.c_in);
  for (int o = 0; o < g.c_out; ++o)
    for (int c = 0; c < g.c_in; ++c) {
      auto& f = wf[std::size_t(o) * g.c_in + c];
      f.assign(plane, 0.0f);
      for (int i = 0; i < g.kernel; ++i)
        for (int j = 0; j < g.kernel; ++j)
          f[std::size_t(i) * p + j] =
              d.w[((std::size_t(o) * g.c_in + c) * g.kernel + i) * g.kernel + j];
      fft2(f, p, false);
    }
  const int ho = g.h_out(), wo = g.w_out();
  std::vector<float> y(std::size_t(n) * g.c_out * ho * wo);
  std::vector<std::vector<std::complex<float>>> xf(std::size_t(g.c_in));
  for (int s = 0; s < n; ++s) {
    for (int c = 0; c < g.c_in; ++c) {
      auto& f = xf[std::size_t(c)];
      f.assign(plane, 0.0f);
      for (int i = 0; i < g.h_in; ++i)
        for (int j = 0; j < g.w_in; ++j)
          f[std::size_t(i + g.pad) * p + j + g.pad] =
              d.x[((std::size_t(s) * g.c_in + c) * g.h_in + i) * g.w_in + j];
      fft2(f, p, false);
    }
    for (int o = 0; o < g.c_out; ++o) {
      std::vector<std::complex<float>> acc(plane, 0.0f);
      for (int c = 0; c < g.c_in; ++c) {
        const auto& wc = wf[std::size_t(o) * g.c_in + c];
        for (std::size_t k = 0; k < plane; ++k) acc[k] += xf[std::size_t(c)][k] * std::conj(wc[k]);
      }
      fft2(acc, p, true);
      for (int i = 0; i < ho; ++i)
        for (int j = 0; j < wo; ++j)
          y[((std::size_t(s) * g.c_out + o) * ho + i) * wo + j] =
              acc[std::size_t(i) * p + j].real() / float(plane) + d.b[std::size_t(o)];
    }
  }
  return y;
}

TEST(ErrorModel, Tf32RoundingIsNearestTiesAwayOrTruncation) {
  // 1 + 2^-11 is halfway between two TF32 values: away from zero gives 1 + 2^-10.
  EXPECT_EQ(to_tf32(1.0f + 0x1p-11f), 1.0f + 0x1p-10f);
  EXPECT_EQ(to_tf32(-(1.0f + 0x1p-11f)), -(1.0f + 0x1p-10f));
  EXPECT_EQ(to_tf32(1.0f + 0x1p-11f - 0x1p-23f), 1.0f);
  EXPECT_EQ(to_tf32(1.0f + 0x1p-10f + 0x1p-23f, Tf32Rounding::truncate), 1.0f + 0x1p-10f);
  EXPECT_EQ(to_tf32(1.0f + 0x1p-10f - 0x1p-23f, Tf32Rounding::truncate), 1.0f);
  // Each operand's relative error within the model's 2^-11 (nearest) and 2^-10 (truncation).
  for (float v : random_vector(10000, 77, -1e3f, 1e3f)) {
    ASSERT_LE(std::abs(to_tf32(v) - v), 0x1p-11 * std::abs(v)) << v;
    ASSERT_LE(std::abs(to_tf32(v, Tf32Rounding::truncate) - v), 0x1p-10 * std::abs(v)) << v;
  }
  EXPECT_TRUE(std::isinf(to_tf32(3.4028235e38f)));  // rounds up past the largest TF32 value
}

TEST(ErrorModel, ConvolutionBoundsPassCorrectTf32AndFailWrongOps) {
  auto ref = reference();
  auto near = reference(CpuOptions::Math::tf32, Tf32Rounding::nearest_away);
  auto trunc = reference(CpuOptions::Math::tf32, Tf32Rounding::truncate);
  for (const ConvCase& c : kConvCases) {
    const ConvData d = conv_data(c);
    const ProductResults r = run_conv(*ref, c.g, c.n, d.x, d.w, d.b, d.dy);
    const ProductResults m =
        run_conv(*ref, c.g, c.n, abs_of(d.x), abs_of(d.w), abs_of(d.b), abs_of(d.dy));
    const ConvTerms k = conv_terms(c.g, c.n);
    const bool tx = transforms_possible(c.g);
    const double by = product_bound(Arith::tf32, k.y, tx),
                 bdx = product_bound(Arith::tf32, k.dx, tx),
                 bdw = product_bound(Arith::tf32, k.dw, tx), bdb = sum_bound(k.db);
    std::printf("%s (terms: y %lld, dx %lld, dw %lld):\n", conv_name(c).c_str(),
                static_cast<long long>(k.y), static_cast<long long>(k.dx),
                static_cast<long long>(k.dw));
    for (auto* be : {near.get(), trunc.get()}) {
      const std::string how = be == near.get() ? "tf32 nearest " : "tf32 truncated ";
      const ProductResults t = run_conv(*be, c.g, c.n, d.x, d.w, d.b, d.dy);
      report(how + "y", judge(by, t.y, r.y, m.y), true);
      report(how + "dx", judge(bdx, t.dx, r.dx, m.dx), true);
      report(how + "dw", judge(bdw, t.dw, r.dw, m.dw), true);
      report(how + "db", judge(bdb, t.db, r.db, m.db), true);
    }
    const ProductResults pad = conv_pad_off_by_one(*ref, c, d);
    report("padding off by one: y", judge(by, pad.y, r.y, m.y), false);
    report("padding off by one: dx", judge(bdx, pad.dx, r.dx, m.dx), false);
    report("padding off by one: dw", judge(bdw, pad.dw, r.dw, m.dw), false);
    const ProductResults tr = conv_weight_transposed(*ref, c, d);
    report("weight transposed: y", judge(by, tr.y, r.y, m.y), false);
    report("weight transposed: dx", judge(bdx, tr.dx, r.dx, m.dx), false);
    report("weight transposed: dw", judge(bdw, tr.dw, r.dw, m.dw), false);
    const ProductResults nb = conv_bias_dropped(*ref, c, d);
    report("bias dropped: y", judge(by, nb.y, r.y, m.y), false);
    report("bias dropped: db", judge(bdb, nb.db, r.db, m.db), false);
  }
}

TEST(ErrorModel, DenseBoundsPassCorrectTf32AndFailWrongOps) {
  auto ref = reference();
  const int n = kDenseN, in = kDenseIn, out = kDenseOut;
  const auto x = random_vector(std::int64_t(n) * in, 7);
  const auto w = random_vector(std::int64_t(out) * in, 8);
  const auto b = random_vector(out, 9);
  const auto dy = random_vector(std::int64_t(n) * out, 10);
  const ProductResults r = run_dense(*ref, in, out, n, x, w, b, dy);
  const ProductResults m = run_dense(*ref, in, out, n, abs_of(x), abs_of(w), abs_of(b), abs_of(dy));
  const ConvTerms k = dense_terms(in, out, n);
  const double by = product_bound(Arith::tf32, k.y), bdx = product_bound(Arith::tf32, k.dx),
               bdw = product_bound(Arith::tf32, k.dw), bdb = sum_bound(k.db);
  std::printf("dense %d -> %d, batch %d:\n", in, out, n);
  for (Tf32Rounding rounding : {Tf32Rounding::nearest_away, Tf32Rounding::truncate}) {
    auto be = reference(CpuOptions::Math::tf32, rounding);
    const std::string how =
        rounding == Tf32Rounding::nearest_away ? "tf32 nearest " : "tf32 truncated ";
    const ProductResults t = run_dense(*be, in, out, n, x, w, b, dy);
    report(how + "y", judge(by, t.y, r.y, m.y), true);
    report(how + "dx", judge(bdx, t.dx, r.dx, m.dx), true);
    report(how + "dw", judge(bdw, t.dw, r.dw, m.dw), true);
    report(how + "db", judge(bdb, t.db, r.db, m.db), true);
  }
  // A transposed weight: the (out, in) buffer read as (in, out), the usual cuBLAS layout slip;
  // the gradient is stored the same way.
  std::vector<float> wt(w.size());
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) wt[std::size_t(o) * in + i] = w[std::size_t(i) * out + o];
  ProductResults tr = run_dense(*ref, in, out, n, x, wt, b, dy);
  std::vector<float> dwt(w.size());
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) dwt[std::size_t(i) * out + o] = tr.dw[std::size_t(o) * in + i];
  report("weight transposed: y", judge(by, tr.y, r.y, m.y), false);
  report("weight transposed: dx", judge(bdx, tr.dx, r.dx, m.dx), false);
  report("weight transposed: dw", judge(bdw, dwt, r.dw, m.dw), false);
  ProductResults nb = run_dense(*ref, in, out, n, x, w, std::vector<float>(b.size(), 0.0f), dy);
  std::fill(nb.db.begin(), nb.db.end(), 0.0f);
  report("bias dropped: y", judge(by, nb.y, r.y, m.y), false);
  report("bias dropped: db", judge(bdb, nb.db, r.db, m.db), false);
  // An off-by-one in the input: each row read one feature late (a stride or offset slip).
  std::vector<float> xs(x.size(), 0.0f);
  for (std::size_t i = 1; i < x.size(); ++i) xs[i] = x[i - 1];
  const ProductResults off = run_dense(*ref, in, out, n, xs, w, b, dy);
  report("input off by one: y", judge(by, off.y, r.y, m.y), false);
  report("input off by one: dw", judge(bdw, off.dw, r.dw, m.dw), false);
}

// FP32 bounds: FP32 computed another way passes them, TF32 rounding (tensor cores allowed under
// --math fp32) and wrong ops fail them.
TEST(ErrorModel, Fp32BoundsCoverOtherAlgorithmsAndCatchTf32) {
  auto ref = reference();
  auto tf32 = reference(CpuOptions::Math::tf32);
  for (const ConvCase& c : kConvCases) {
    const ConvData d = conv_data(c);
    const ProductResults r = run_conv(*ref, c.g, c.n, d.x, d.w, d.b, d.dy);
    const ProductResults m =
        run_conv(*ref, c.g, c.n, abs_of(d.x), abs_of(d.w), abs_of(d.b), abs_of(d.dy));
    const ConvTerms k = conv_terms(c.g, c.n);
    const bool tx = transforms_possible(c.g);
    const double by = product_bound(Arith::fp32, k.y, tx),
                 bdx = product_bound(Arith::fp32, k.dx, tx),
                 bdw = product_bound(Arith::fp32, k.dw, tx);
    std::printf("%s, FP32 bounds:\n", conv_name(c).c_str());
    report("fp32 reversed summation: y", judge(by, conv_forward_reversed(c.g, c.n, d), r.y, m.y),
           true);
    if (c.g.stride == 1)
      report("fp32 FFT: y", judge(by, conv_forward_fft(c.g, c.n, d), r.y, m.y), true);
    if (c.g.kernel == 3 && c.g.stride == 1) {
      report("fp32 Winograd F(4x4,3x3): y",
             judge(by, conv_forward_winograd(c.g, c.n, d, Transformed::fp32), r.y, m.y), true);
      // Winograd on TF32-rounded transformed operands, against the TF32 bound with its
      // allowance for transforms.
      const double b32 = product_bound(Arith::tf32, k.y, tx);
      report("tf32 nearest Winograd F(4x4,3x3): y (tf32 bound)",
             judge(b32, conv_forward_winograd(c.g, c.n, d, Transformed::tf32_nearest), r.y, m.y),
             true);
      report("tf32 truncated Winograd F(4x4,3x3): y (tf32 bound)",
             judge(b32, conv_forward_winograd(c.g, c.n, d, Transformed::tf32_truncated), r.y, m.y),
             true);
    }
    const ProductResults t = run_conv(*tf32, c.g, c.n, d.x, d.w, d.b, d.dy);
    report("tf32 under fp32: y", judge(by, t.y, r.y, m.y), false);
    report("tf32 under fp32: dx", judge(bdx, t.dx, r.dx, m.dx), false);
    // dw sums n * h_out * w_out products: at these counts the FP32 accumulation term alone is
    // at TF32's level, so TF32 rounding of dw cannot be told from FP32 here (printed only).
    const Verdict vdw = judge(bdw, t.dw, r.dw, m.dw);
    std::printf("  %-46s per element %9.3g / bound %9.3g = %7.3g   (not asserted)\n",
                "tf32 under fp32: dw", vdw.figure_pe, vdw.bound_pe, vdw.figure_pe / vdw.bound_pe);
    const ProductResults pad = conv_pad_off_by_one(*ref, c, d);
    report("padding off by one: y", judge(by, pad.y, r.y, m.y), false);
    const ProductResults nb = conv_bias_dropped(*ref, c, d);
    report("bias dropped: y", judge(by, nb.y, r.y, m.y), false);
  }
}

}  // namespace
