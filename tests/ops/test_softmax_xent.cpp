#include <gtest/gtest.h>

#include <cmath>

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
