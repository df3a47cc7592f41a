#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "distnet/backend.hpp"

using namespace distnet;

namespace {
std::vector<float> run(Backend& be, int n, std::int64_t per, float p, DropoutKey key,
                       const std::vector<std::uint32_t>& ids) {
  std::vector<float> x(static_cast<std::size_t>(n * per), 1.0f), y(x.size());
  be.dropout_forward(n, per, p, key, ids.data(), x.data(), y.data());
  return y;
}
}  // namespace

TEST(Dropout, KeepRateAndInvertedScaling) {
  auto be = make_cpu_backend();
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const int n = 50;
    const std::int64_t per = 4096;
    std::vector<std::uint32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[std::size_t(i)] = std::uint32_t(i);
    const auto y = run(*be, n, per, p, {1, 2, 3}, ids);
    std::int64_t kept = 0;
    for (float v : y) {
      if (v != 0.0f) {
        ++kept;
        EXPECT_FLOAT_EQ(v, 1.0f / (1.0f - p));
      }
    }
    const double total = double(y.size()), keep = 1.0 - p;
    // Binomial: within 5 standard deviations.
    EXPECT_NEAR(kept / total, keep, 5 * std::sqrt(keep * (1 - keep) / total)) << "p=" << p;
  }
}

TEST(Dropout, ReproducibleAndKeyedByStepLayerAndSeed) {
  auto be = make_cpu_backend();
  const std::vector<std::uint32_t> ids{5, 6, 7};
  const auto a = run(*be, 3, 1000, 0.5f, {1, 2, 3}, ids);
  EXPECT_EQ(a, run(*be, 3, 1000, 0.5f, {1, 2, 3}, ids));
  EXPECT_NE(a, run(*be, 3, 1000, 0.5f, {1, 2, 4}, ids));  // next step
  EXPECT_NE(a, run(*be, 3, 1000, 0.5f, {1, 3, 3}, ids));  // other layer
  EXPECT_NE(a, run(*be, 3, 1000, 0.5f, {2, 2, 3}, ids));  // other seed
}

// A sample's mask depends on its global index only, not on its row or on the other samples of
// the slice, so any split of a batch over ranks draws the same masks.
TEST(Dropout, MaskFollowsTheGlobalSampleIndexNotTheRow) {
  auto be = make_cpu_backend();
  const std::int64_t per = 333;  // not a multiple of 4
  const auto whole = run(*be, 4, per, 0.5f, {9, 1, 7}, {10, 11, 12, 13});
  const auto slice = run(*be, 2, per, 0.5f, {9, 1, 7}, {13, 11});
  for (std::int64_t e = 0; e < per; ++e) {
    EXPECT_EQ(slice[std::size_t(e)], whole[std::size_t(3 * per + e)]);
    EXPECT_EQ(slice[std::size_t(per + e)], whole[std::size_t(per + e)]);
  }
}

TEST(Dropout, BackwardAppliesTheForwardMask) {
  auto be = make_cpu_backend();
  const std::vector<std::uint32_t> ids{3, 4};
  const auto y = run(*be, 2, 100, 0.3f, {4, 4, 4}, ids);
  std::vector<float> dy(200, 2.0f), dx(200);
  be->dropout_backward(2, 100, 0.3f, {4, 4, 4}, ids.data(), dy.data(), dx.data());
  for (std::size_t i = 0; i < dx.size(); ++i) EXPECT_FLOAT_EQ(dx[i], 2.0f * y[i]);
}

TEST(Dropout, ZeroProbabilityIsIdentityAndOneIsRejected) {
  auto be = make_cpu_backend();
  const std::vector<std::uint32_t> ids{0};
  const auto y = run(*be, 1, 64, 0.0f, {1, 1, 1}, ids);
  for (float v : y) EXPECT_EQ(v, 1.0f);
  EXPECT_THROW(run(*be, 1, 64, 1.0f, {1, 1, 1}, ids), Error);
}

// The hybrid grid splits a layer's row across ranks: each piece, drawn with its element offset,
// is exactly that piece of the full row's mask -- also for offsets that are not a multiple of
// the four elements one Philox call covers.
TEST(Dropout, APieceOfTheRowAtItsOffsetDrawsThatPieceOfTheFullMask) {
  auto be = make_cpu_backend();
  const int n = 3;
  const std::int64_t per = 103;
  const DropoutKey key{7, 2, 5};
  const auto full = run(*be, n, per, 0.5f, key, {11, 2, 40});
  for (std::int64_t begin : {0, 1, 34, 35, 69, 100}) {
    const std::int64_t len = std::min<std::int64_t>(34, per - begin);
    DropoutKey k = key;
    k.element_offset = std::uint32_t(begin);
    std::vector<float> x(std::size_t(n * len)), y(x.size());
    for (int i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < len; ++j) x[std::size_t(i * len + j)] = 1.0f;
    const std::vector<std::uint32_t> ids{11, 2, 40};
    be->dropout_forward(n, len, 0.5f, k, ids.data(), x.data(), y.data());
    for (int i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < len; ++j)
        ASSERT_EQ(y[std::size_t(i * len + j)], full[std::size_t(i * per + begin + j)])
            << "row " << i << ", element " << begin + j;
  }
}
