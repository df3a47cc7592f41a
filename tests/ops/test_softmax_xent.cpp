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
  double stats[2] = {0, 0};
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
  double stats[2] = {10.0, 3.0};  // adds to what is there
  be->softmax_xent(2, 3, logits, labels, 0.5f, d, stats);
  EXPECT_NEAR(stats[0], 10.0 + 0.0 + 1000.0, 1e-3);
  EXPECT_EQ(stats[1], 3.0 + 1.0);
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(d[0], 0.0, 1e-6);
  EXPECT_NEAR(d[3], 0.5, 1e-6);   // (1 - 0) * 0.5
  EXPECT_NEAR(d[4], -0.5, 1e-6);  // (0 - 1) * 0.5
}

TEST(SoftmaxXent, RejectsLabelOutOfRange) {
  auto be = make_cpu_backend();
  const float logits[3] = {0, 0, 0};
  const std::int32_t label = 3;
  double stats[2] = {0, 0};
  EXPECT_THROW(be->softmax_xent(1, 3, logits, &label, 1.0f, nullptr, stats), Error);
}
