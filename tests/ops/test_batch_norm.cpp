#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "distnet/backend.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;

namespace {
struct Moments {
  double mean, var;
};
Moments channel_moments(const std::vector<float>& v, int n, int c, int spatial, int ch) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < spatial; ++k) {
      const double x = v[std::size_t((i * c + ch) * spatial + k)];
      s += x, s2 += x * x;
    }
  const double m = s / (n * spatial);
  return {m, s2 / (n * spatial) - m * m};
}
}  // namespace

TEST(BatchNorm, TrainingNormalisesWithBatchStatisticsAndUpdatesRunningOnes) {
  auto be = make_cpu_backend();
  const int n = 4, c = 3, spatial = 5;
  auto op = be->make_batch_norm(c, spatial, 1e-5f);
  auto x = testkit::random_vector(n * c * spatial, 1, 2.0f, 6.0f);  // mean about 4
  std::vector<float> y(x.size()), gamma(c, 1.0f), beta(c, 0.0f);
  std::vector<float> rmean(c, 0.0f), rvar(c, 1.0f);
  op->forward_train(n, x.data(), gamma.data(), beta.data(), y.data(), rmean.data(), rvar.data(),
                    0.9f);
  for (int ch = 0; ch < c; ++ch) {
    const auto my = channel_moments(y, n, c, spatial, ch);
    EXPECT_NEAR(my.mean, 0.0, 1e-5);
    EXPECT_NEAR(my.var, 1.0, 1e-3);
    const auto mx = channel_moments(x, n, c, spatial, ch);
    EXPECT_NEAR(rmean[std::size_t(ch)], 0.1 * mx.mean, 1e-5);            // 0.9*0 + 0.1*mean
    EXPECT_NEAR(rvar[std::size_t(ch)], 0.9 * 1.0 + 0.1 * mx.var, 1e-5);  // biased variance
  }
}

TEST(BatchNorm, InferenceUsesRunningStatisticsNotTheBatch) {
  auto be = make_cpu_backend();
  const int n = 2, c = 2, spatial = 3;
  auto op = be->make_batch_norm(c, spatial, 1e-5f);
  const auto x = testkit::random_vector(n * c * spatial, 2);
  const std::vector<float> gamma{2.0f, 0.5f}, beta{1.0f, -1.0f}, rmean{0.3f, -0.2f},
      rvar{4.0f, 0.25f};
  std::vector<float> y(x.size());
  op->forward_infer(n, x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), y.data());
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch)
      for (int k = 0; k < spatial; ++k) {
        const std::size_t at = std::size_t((i * c + ch) * spatial + k);
        const std::size_t u = std::size_t(ch);
        const double expect = (x[at] - rmean[u]) / std::sqrt(rvar[u] + 1e-5) * gamma[u] + beta[u];
        EXPECT_NEAR(y[at], expect, 1e-5);
      }
  // The same input in training mode gives a different output (batch statistics instead).
  std::vector<float> yt(x.size()), rm(rmean), rv(rvar);
  op->forward_train(n, x.data(), gamma.data(), beta.data(), yt.data(), rm.data(), rv.data(), 0.9f);
  EXPECT_NE(y, yt);
}
