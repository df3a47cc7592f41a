#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "distnet/backend.hpp"

using namespace distnet;

// logits (1, 2, 3), label 2: loss = log(e + e^2 + e^3) - 3, softmax = (0.0900, 0.2447, 0.6652).
TEST(SoftmaxXent, HandComputedCase) {
  auto be = make_cpu_backend();
  const float logits[3] = {1, 2, 3};
  const std::int32_t label = 2;
  float d[3];
  double stats[3] = {0, 0, 0};
  be->softmax_xent(1, 3, logits, &label, 1.0f, d, stats);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(stats[0], std::log(z) - 3.0, 1e-6);
  EXPECT_NEAR(stats[0], 0.4076059644, 1e-6);
  EXPECT_NEAR(d[0], std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(d[1], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(d[2], std::exp(3.0) / z - 1.0, 1e-6);
  EXPECT_EQ(stats[1], 1.0);  // argmax is the label
}

TEST(SoftmaxXent, StableForHugeLogitsAndAccumulates) {
  auto be = make_cpu_backend();
  const float logits[6] = {1000, 0, -1000, 1000, 0, -1000};
  const std::int32_t labels[2] = {0, 1};
  float d[6];
  double stats[3] = {10.0, 3.0, 2.0};  // adds to what is there
  be->softmax_xent(2, 3, logits, labels, 0.5f, d, stats);
  EXPECT_NEAR(stats[0], 10.0 + 0.0 + 1000.0, 1e-3);
  EXPECT_EQ(stats[1], 3.0 + 1.0);
  EXPECT_EQ(stats[2], 2.0 + 2.0);  // 3 classes: every label is in the top 5
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(d[0], 0.0, 1e-6);
  EXPECT_NEAR(d[3], 0.5, 1e-6);   // (1 - 0) * 0.5
  EXPECT_NEAR(d[4], -0.5, 1e-6);  // (0 - 1) * 0.5
}

// Top-5 counts a label when fewer than 5 classes rank above it; ties rank the lower class first,
// as argmax breaks them, so top-1 and top-5 agree on what "above" means.
TEST(SoftmaxXent, TopFiveWithTies) {
  auto be = make_cpu_backend();
  // Row 0: label 3 (logit 5) has 4 classes above it: in the top 5 but not the top 1.
  // Row 1: label 6 has 6 above: out. Row 2: label 9 ties with classes 0..4 (all 1): 5 lower
  // classes rank first: out. Row 3: label 2 ties with 0..1 and 3..9: 2 rank first: in.
  float logits[40] = {};
  const float r0[10] = {9, 8, 7, 5, 6, 0, 0, 0, 0, 0};
  const float r1[10] = {9, 8, 7, 6, 5, 4, 3, 0, 0, 0};
  const float r2[10] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 1};
  const float r3[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  for (int c = 0; c < 10; ++c)
    logits[c] = r0[c], logits[10 + c] = r1[c], logits[20 + c] = r2[c], logits[30 + c] = r3[c];
  const std::int32_t labels[4] = {3, 6, 9, 2};
  double stats[3] = {0, 0, 0};
  be->softmax_xent(4, 10, logits, labels, 1.0f, nullptr, stats);
  EXPECT_EQ(stats[1], 0.0);
  EXPECT_EQ(stats[2], 2.0);  // rows 0 and 3
}

TEST(SoftmaxXent, RejectsLabelOutOfRange) {
  auto be = make_cpu_backend();
  const float logits[3] = {0, 0, 0};
  const std::int32_t label = 3;
  double stats[3] = {0, 0, 0};
  EXPECT_THROW(be->softmax_xent(1, 3, logits, &label, 1.0f, nullptr, stats), Error);
}

namespace {

// The one-hot arithmetic of the op before label smoothing existed, written out: eps = 0 must give
// these bits exactly.
void one_hot_reference(int n, int classes, const std::vector<float>& logits,
                       const std::vector<std::int32_t>& labels, float scale, std::vector<float>& d,
                       double& loss) {
  loss = 0;
  for (int i = 0; i < n; ++i) {
    const float* z = logits.data() + i * classes;
    int arg = 0;
    for (int c = 1; c < classes; ++c) arg = z[c] > z[arg] ? c : arg;
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(z[c] - z[arg]));
    const double lse = static_cast<double>(z[arg]) + std::log(sum);
    loss += lse - z[labels[i]];
    for (int c = 0; c < classes; ++c) {
      const double p = std::exp(static_cast<double>(z[c]) - lse);
      d[i * classes + c] = static_cast<float>((p - (c == labels[i] ? 1.0 : 0.0)) * scale);
    }
  }
}

struct Rows {
  int n = 7, classes = 11;
  std::vector<float> logits;
  std::vector<std::int32_t> labels;
};

Rows random_rows() {
  Rows r;
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(-6.f, 6.f);
  for (int k = 0; k < r.n * r.classes; ++k) r.logits.push_back(u(gen));
  for (int i = 0; i < r.n; ++i) r.labels.push_back(std::int32_t(gen() % unsigned(r.classes)));
  return r;
}

}  // namespace

TEST(SoftmaxXent, NoSmoothingIsTheOneHotLossBitForBit) {
  auto be = make_cpu_backend();
  const Rows r = random_rows();
  std::vector<float> want(r.logits.size()), got(r.logits.size()), dflt(r.logits.size());
  double loss = 0;
  one_hot_reference(r.n, r.classes, r.logits, r.labels, 0.25f, want, loss);
  double s[3] = {0, 0, 0}, t[3] = {0, 0, 0};
  be->softmax_xent(r.n, r.classes, r.logits.data(), r.labels.data(), 0.25f, got.data(), s, 0.0f);
  be->softmax_xent(r.n, r.classes, r.logits.data(), r.labels.data(), 0.25f, dflt.data(), t);
  EXPECT_EQ(got, want);
  EXPECT_EQ(dflt, want);
  // The op sums the rows' losses in its own order (threads); each row is the reference's.
  EXPECT_NEAR(s[0], loss, 1e-12 * std::abs(loss));
  EXPECT_EQ(s[0], t[0]);
}

// Against a loop that builds the smoothed target q and takes -sum_c q_c log_softmax_c, in long
// double: the loss to 1e-9 relative (the op subtracts the maximum in float), dlogits = (softmax -
// q) * scale to float rounding.
TEST(SoftmaxXent, LabelSmoothingMatchesTheTargetDistribution) {
  auto be = make_cpu_backend();
  const Rows r = random_rows();
  for (float eps : {0.1f, 0.5f, 0.9f}) {
    std::vector<float> d(r.logits.size());
    double s[3] = {0, 0, 0};
    const float scale = 1.0f / 3;
    be->softmax_xent(r.n, r.classes, r.logits.data(), r.labels.data(), scale, d.data(), s, eps);
    long double loss = 0;
    for (int i = 0; i < r.n; ++i) {
      const float* z = r.logits.data() + i * r.classes;
      long double m = z[0], sum = 0;
      for (int c = 1; c < r.classes; ++c) m = std::max<long double>(m, z[c]);
      for (int c = 0; c < r.classes; ++c) sum += std::exp(static_cast<long double>(z[c]) - m);
      const long double lse = m + std::log(sum);
      for (int c = 0; c < r.classes; ++c) {
        const long double q = (c == r.labels[i] ? 1.0L - eps : 0.0L) + (long double)eps / r.classes;
        loss -= q * (z[c] - lse);
        const long double want = (std::exp(z[c] - lse) - q) * scale;
        EXPECT_NEAR(d[i * r.classes + c], double(want), 1e-7) << "eps " << eps;
      }
    }
    EXPECT_NEAR(s[0], double(loss), 1e-9 * double(loss)) << "eps " << eps;
    // Each row's gradient sums to zero: softmax and q are both distributions.
    for (int i = 0; i < r.n; ++i) {
      double row = 0;
      for (int c = 0; c < r.classes; ++c) row += d[i * r.classes + c];
      EXPECT_NEAR(row, 0.0, 1e-7);
    }
  }
}

TEST(SoftmaxXent, LabelSmoothingLeavesAccuracyAlone) {
  auto be = make_cpu_backend();
  const Rows r = random_rows();
  double plain[3] = {0, 0, 0}, smooth[3] = {0, 0, 0};
  be->softmax_xent(r.n, r.classes, r.logits.data(), r.labels.data(), 1.0f, nullptr, plain);
  be->softmax_xent(r.n, r.classes, r.logits.data(), r.labels.data(), 1.0f, nullptr, smooth, 0.3f);
  EXPECT_EQ(smooth[1], plain[1]);
  EXPECT_EQ(smooth[2], plain[2]);
  EXPECT_NE(smooth[0], plain[0]);
}

TEST(SoftmaxXent, RejectsSmoothingOutsideZeroToOne) {
  auto be = make_cpu_backend();
  const float logits[3] = {0, 1, 2};
  const std::int32_t label = 1;
  for (float eps : {-0.1f, 1.0f, std::nanf("")}) {
    double stats[3] = {0, 0, 0};
    EXPECT_THROW(be->softmax_xent(1, 3, logits, &label, 1.0f, nullptr, stats, eps), Error) << eps;
  }
}

TEST(Scale, MultipliesInPlace) {
  auto be = make_cpu_backend();
  std::vector<float> x{1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
  be->scale(std::int64_t(x.size()), 0.25f, x.data());
  EXPECT_EQ(x, (std::vector<float>{0.25f, -0.5f, 0.125f, 0.0f, 0.75f}));
  be->scale(0, 2.0f, nullptr);  // nothing to do
}
