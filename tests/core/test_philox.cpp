#include <gtest/gtest.h>

#include <cmath>

#include "distnet/philox.hpp"

using namespace distnet;

// Known-answer vectors published with Random123 (Salmon et al.) for Philox4x32-10.
TEST(Philox, KnownAnswerVectors) {
  struct Kat {
    Philox4 ctr;
    std::uint32_t k0, k1;
    Philox4 out;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const auto& k : kats) {
    const Philox4 r = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(r.v[j], k.out.v[j]) << "word " << j;
  }
}

TEST(Philox, UniformIsInUnitIntervalWithTheRightMean) {
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float u = philox_uniform(philox_block(42, RngPurpose::init, 0, 0, 0, i / 4).v[i % 4]);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
}

TEST(Philox, DropoutKeepIsAPureFunctionOfItsCounter) {
  const auto thr = dropout_threshold(0.5f);
  int differ_step = 0, differ_layer = 0, differ_item = 0;
  for (std::uint32_t e = 0; e < 1000; ++e) {
    const bool k = dropout_keep(9, 1, 5, 77, e, thr);
    EXPECT_EQ(k, dropout_keep(9, 1, 5, 77, e, thr));
    differ_step += k != dropout_keep(9, 1, 6, 77, e, thr);
    differ_layer += k != dropout_keep(9, 2, 5, 77, e, thr);
    differ_item += k != dropout_keep(9, 1, 5, 78, e, thr);
  }
  // Independent streams disagree about half the time.
  for (int d : {differ_step, differ_layer, differ_item}) {
    EXPECT_GT(d, 400);
    EXPECT_LT(d, 600);
  }
}
