#include <gtest/gtest.h>

#include <vector>

#include "distnet/backend.hpp"

using namespace distnet;

// Two steps by hand: v = mu*v + g + wd*w; w -= lr*v.
TEST(Sgd, MomentumAndWeightDecayByHand) {
  auto be = make_cpu_backend();
  std::vector<float> w{1.0f, -2.0f}, v{0.0f, 0.0f};
  const std::vector<float> g{0.5f, 0.25f};
  const SgdParams p{0.1f, 0.9f, 0.01f};
  be->sgd_update(2, w.data(), g.data(), v.data(), p);
  // v = (0.5 + 0.01, 0.25 - 0.02) = (0.51, 0.23); w = (1 - 0.051, -2 - 0.023)
  EXPECT_FLOAT_EQ(v[0], 0.51f);
  EXPECT_FLOAT_EQ(w[0], 0.949f);
  EXPECT_FLOAT_EQ(v[1], 0.23f);
  EXPECT_FLOAT_EQ(w[1], -2.023f);
  be->sgd_update(2, w.data(), g.data(), v.data(), p);
  // v0 = 0.9*0.51 + 0.5 + 0.01*0.949 = 0.96849; w0 = 0.949 - 0.096849
  EXPECT_NEAR(v[0], 0.96849f, 1e-6);
  EXPECT_NEAR(w[0], 0.852151f, 1e-6);
}

TEST(Sgd, PlainSgdLeavesMomentumUntouched) {
  auto be = make_cpu_backend();
  std::vector<float> w{1.0f}, v{7.0f};
  const std::vector<float> g{2.0f};
  be->sgd_update(1, w.data(), g.data(), v.data(), {0.5f, 0.0f, 0.0f});
  EXPECT_FLOAT_EQ(w[0], 0.0f);
  EXPECT_FLOAT_EQ(v[0], 7.0f);
}
