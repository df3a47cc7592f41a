// The ops that ResNet and GoogLeNet add -- padded max pooling, average pooling (padding counted
// or not), convolution without a bias and in groups -- on the CPU backend against plain loops
// written from PyTorch's definitions (MaxPool2d, AvgPool2d, Conv2d with ceil_mode=False): every
// output, the windows that reach into the padding included, and the input gradients. The
// finite-difference checks (test_gradcheck.cpp) show backward is forward's derivative; these show
// forward is the right function.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/gradcheck.hpp"

using namespace distnet;
using testkit::random_vector;

namespace {

std::size_t at(const PoolGeom& g, int i, int c, int y, int x) {
  return ((std::size_t(i) * g.c + c) * g.h_in + y) * g.w_in + x;
}

// Calls f(input index) for the input positions of window (oy, ox), padding left out.
template <typename F>
void window(const PoolGeom& g, int i, int c, int oy, int ox, F f) {
  for (int ky = 0; ky < g.kernel; ++ky)
    for (int kx = 0; kx < g.kernel; ++kx) {
      const int y = oy * g.stride - g.pad + ky, x = ox * g.stride - g.pad + kx;
      if (y >= 0 && y < g.h_in && x >= 0 && x < g.w_in) f(at(g, i, c, y, x));
    }
}

struct PoolResult {
  std::vector<float> y, dx;
};

// Max pooling: the largest input of each window (a padded position is not a candidate); the
// gradient goes to that input.
PoolResult reference_max_pool(const PoolGeom& g, int n, const std::vector<float>& x,
                              const std::vector<float>& dy) {
  PoolResult r{std::vector<float>(std::size_t(n) * g.c * g.h_out() * g.w_out()),
               std::vector<float>(x.size(), 0.0f)};
  std::size_t o = 0;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < g.c; ++c)
      for (int oy = 0; oy < g.h_out(); ++oy)
        for (int ox = 0; ox < g.w_out(); ++ox, ++o) {
          std::size_t best = x.size();
          window(g, i, c, oy, ox, [&](std::size_t k) {
            if (best == x.size() || x[k] > x[best]) best = k;
          });
          r.y[o] = x[best];
          r.dx[best] += dy[o];
        }
  return r;
}

// Average pooling: the window's sum over kernel^2 (padding counted as zeros) or over its input
// positions; each input gets dy / divisor from every window it is in.
PoolResult reference_avg_pool(const PoolGeom& g, bool count_padding, int n,
                              const std::vector<float>& x, const std::vector<float>& dy) {
  PoolResult r{std::vector<float>(std::size_t(n) * g.c * g.h_out() * g.w_out()),
               std::vector<float>(x.size(), 0.0f)};
  std::vector<double> dx(x.size(), 0.0);
  std::size_t o = 0;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < g.c; ++c)
      for (int oy = 0; oy < g.h_out(); ++oy)
        for (int ox = 0; ox < g.w_out(); ++ox, ++o) {
          double sum = 0;
          int inside = 0;
          window(g, i, c, oy, ox, [&](std::size_t k) { sum += x[k], ++inside; });
          const double divisor = count_padding ? g.kernel * g.kernel : inside;
          r.y[o] = float(sum / divisor);
          window(g, i, c, oy, ox, [&](std::size_t k) { dx[k] += dy[o] / divisor; });
        }
  std::transform(dx.begin(), dx.end(), r.dx.begin(), [](double v) { return float(v); });
  return r;
}

// Convolution in groups: output channel o sees input channels [gi * cpg, (gi + 1) * cpg) of its
// group gi, weight (c_out, c_in / groups, k, k); b null: no bias.
std::vector<float> reference_conv(const Conv2dGeom& g, int n, const std::vector<float>& x,
                                  const std::vector<float>& w, const float* b) {
  const int cpg = g.c_in / g.groups, opg = g.c_out / g.groups;
  std::vector<float> y(std::size_t(n) * g.c_out * g.h_out() * g.w_out());
  std::size_t o = 0;
  for (int i = 0; i < n; ++i)
    for (int oc = 0; oc < g.c_out; ++oc)
      for (int oy = 0; oy < g.h_out(); ++oy)
        for (int ox = 0; ox < g.w_out(); ++ox, ++o) {
          double s = b ? b[oc] : 0.0;
          const int first = (oc / opg) * cpg;
          for (int ic = 0; ic < cpg; ++ic)
            for (int ky = 0; ky < g.kernel; ++ky)
              for (int kx = 0; kx < g.kernel; ++kx) {
                const int yy = oy * g.stride - g.pad + ky, xx = ox * g.stride - g.pad + kx;
                if (yy < 0 || yy >= g.h_in || xx < 0 || xx >= g.w_in) continue;
                s += double(
                         x[((std::size_t(i) * g.c_in + first + ic) * g.h_in + yy) * g.w_in + xx]) *
                     w[((std::size_t(oc) * cpg + ic) * g.kernel + ky) * g.kernel + kx];
              }
          y[o] = float(s);
        }
  return y;
}

void expect_close(const char* what, const std::vector<float>& got, const std::vector<float>& want,
                  double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " [" << i << "]";
}

// Distinct values, all negative: a padded position taken as 0 would win every border window.
std::vector<float> negative_distinct(std::size_t n, std::uint32_t stream) {
  auto v = random_vector(std::int64_t(n), stream);
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  for (std::size_t rank = 0; rank < n; ++rank) v[idx[rank]] = -10.0f + 0.01f * float(rank);
  return v;
}

}  // namespace

TEST(ReferenceLoops, PaddedMaxPoolNeverTakesThePadding) {
  auto be = make_cpu_backend();
  const int n = 2;
  // ResNet's stem pool (3/2 p1, odd and even sizes), GoogLeNet's 3/1 p1, a 2/2 p1 and 5/2 p2.
  for (const PoolGeom g : {PoolGeom{3, 9, 8, 3, 2, 1}, PoolGeom{2, 6, 7, 3, 1, 1},
                           PoolGeom{2, 5, 5, 2, 2, 1}, PoolGeom{2, 9, 9, 5, 2, 2}}) {
    SCOPED_TRACE("max_pool " + std::to_string(g.kernel) + "/" + std::to_string(g.stride) + " p" +
                 std::to_string(g.pad) + " on " + std::to_string(g.h_in) + "x" +
                 std::to_string(g.w_in));
    const auto x = negative_distinct(std::size_t(n) * g.c * g.h_in * g.w_in, 40);
    const auto dy = random_vector(std::int64_t(n) * g.c * g.h_out() * g.w_out(), 41);
    const PoolResult want = reference_max_pool(g, n, x, dy);
    PoolResult got{std::vector<float>(want.y.size()), std::vector<float>(x.size(), 7.0f)};
    auto op = be->make_max_pool(g);
    op->forward(n, x.data(), got.y.data(), true);
    op->backward(n, dy.data(), got.dx.data());
    EXPECT_EQ(got.y, want.y);  // a maximum is exact
    expect_close("dx", got.dx, want.dx, 1e-6);
    EXPECT_LT(*std::max_element(got.y.begin(), got.y.end()), 0.0f);
  }
}

TEST(ReferenceLoops, AveragePoolCountsThePaddingOrNot) {
  auto be = make_cpu_backend();
  const int n = 2;
  for (const bool count : {true, false})
    for (const PoolGeom g :
         {PoolGeom{3, 6, 6, 2, 2, 0}, PoolGeom{2, 7, 7, 3, 2, 0}, PoolGeom{2, 7, 6, 3, 1, 1},
          PoolGeom{2, 8, 9, 5, 3, 2}, PoolGeom{2, 5, 5, 2, 2, 1}}) {
      SCOPED_TRACE("avg_pool " + std::to_string(g.kernel) + "/" + std::to_string(g.stride) + " p" +
                   std::to_string(g.pad) + (count ? " counting" : " excluding") + " padding on " +
                   std::to_string(g.h_in) + "x" + std::to_string(g.w_in));
      const auto x = random_vector(std::int64_t(n) * g.c * g.h_in * g.w_in, 42);
      const auto dy = random_vector(std::int64_t(n) * g.c * g.h_out() * g.w_out(), 43);
      const PoolResult want = reference_avg_pool(g, count, n, x, dy);
      PoolResult got{std::vector<float>(want.y.size()), std::vector<float>(x.size(), 7.0f)};
      auto op = be->make_avg_pool(g, count);
      op->forward(n, x.data(), got.y.data());
      op->backward(n, x.data(), got.y.data(), dy.data(), got.dx.data());
      expect_close("y", got.y, want.y, 1e-6);
      expect_close("dx", got.dx, want.dx, 1e-6);
    }
}

// The two divisors by hand: a 2x2 plane of ones under 3/1 p1 windows, each of which holds all
// four ones: 4/9 with the padding counted, 1 without.
TEST(ReferenceLoops, AveragePoolDivisorsByHand) {
  auto be = make_cpu_backend();
  const PoolGeom g{1, 2, 2, 3, 1, 1};
  const std::vector<float> x(4, 1.0f), dy(4, 1.0f);
  for (const bool count : {true, false}) {
    std::vector<float> y(4), dx(4);
    auto op = be->make_avg_pool(g, count);
    op->forward(1, x.data(), y.data());
    op->backward(1, x.data(), y.data(), dy.data(), dx.data());
    const float each = count ? 4.0f / 9.0f : 1.0f;
    for (int i = 0; i < 4; ++i) {
      EXPECT_FLOAT_EQ(y[i], each) << (count ? "counting" : "excluding") << " padding";
      // Every input is in all four windows, and gets 1 / divisor from each.
      EXPECT_FLOAT_EQ(dx[i], each) << (count ? "counting" : "excluding") << " padding";
    }
  }
}

TEST(ReferenceLoops, ConvolutionWithoutBiasAndInGroups) {
  auto be = make_cpu_backend();
  const int n = 2;
  struct Case {
    Conv2dGeom g;
    const char* what;
  };
  const Case cases[] = {
      {{3, 11, 10, 8, 7, 2, 3, 1, false}, "7x7 s2 p3, no bias (ResNet's stem)"},
      {{4, 8, 8, 6, 1, 2, 0, 1, false}, "1x1 s2, no bias (a projection shortcut)"},
      {{4, 7, 7, 6, 3, 1, 1, 2, true}, "3x3 p1 in 2 groups"},
      {{6, 7, 7, 6, 3, 2, 1, 6, false}, "depthwise 3x3 s2 p1, no bias"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Conv2dGeom& g = c.g;
    const auto x = random_vector(std::int64_t(n) * g.c_in * g.h_in * g.w_in, 44);
    const auto w =
        random_vector(std::int64_t(g.c_out) * g.c_in_per_group() * g.kernel * g.kernel, 45);
    const auto b = random_vector(g.c_out, 46);
    const float* bias = g.bias ? b.data() : nullptr;
    std::vector<float> y(std::size_t(n) * g.c_out * g.h_out() * g.w_out(), 7.0f);
    auto op = be->make_conv2d(g);
    op->forward(n, x.data(), w.data(), bias, y.data());
    expect_close("y", y, reference_conv(g, n, x, w, bias), 1e-5);
  }
}

// A bias-less op takes no bias pointers, and one with a bias needs them: a mix-up is a bug of
// the caller, said in one line rather than read through a null or ignored.
TEST(ReferenceLoops, ConvolutionRefusesAMismatchedBias) {
  for (const CpuOptions::Math m : {CpuOptions::Math::fp32, CpuOptions::Math::tf32}) {
    CpuOptions o;
    o.math = m;
    auto be = make_cpu_backend(o);
    const std::vector<float> x(2 * 2 * 5 * 5, 0.5f), w(4 * 2 * 9, 0.1f), b(4, 0.0f);
    std::vector<float> y(2 * 4 * 5 * 5), dy(y.size(), 1.0f), dx(x.size()), dw(w.size()),
        db(b.size());
    auto with = be->make_conv2d({2, 5, 5, 4, 3, 1, 1});
    auto without = be->make_conv2d({2, 5, 5, 4, 3, 1, 1, 1, false});
    EXPECT_THROW(with->forward(2, x.data(), w.data(), nullptr, y.data()), Error);
    EXPECT_THROW(without->forward(2, x.data(), w.data(), b.data(), y.data()), Error);
    EXPECT_THROW(
        without->backward(2, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data()),
        Error);
    // And the right calls run, TF32's wrapper included (it sums the bias gradient itself).
    without->forward(2, x.data(), w.data(), nullptr, y.data());
    without->backward(2, x.data(), w.data(), dy.data(), dx.data(), dw.data(), nullptr);
    EXPECT_NEAR(y[6], 0.5f * 0.1f * 18, 1e-2);  // an interior output: 2 x 9 taps, no bias
  }
}
