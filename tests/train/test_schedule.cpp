#include <gtest/gtest.h>

#include <cmath>

#include "distnet/error.hpp"
#include "distnet/schedule.hpp"

using namespace distnet;

namespace {
LrSchedule base(LrSchedule::Kind k) {
  LrSchedule s;
  s.kind = k;
  s.base_lr = 0.1;
  s.steps_per_epoch = 10;
  s.total_steps = 100;  // 10 epochs
  return s;
}
}  // namespace

TEST(Schedule, Constant) {
  const auto s = base(LrSchedule::Kind::constant);
  EXPECT_DOUBLE_EQ(lr_at(s, 0), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 99), 0.1);
}

TEST(Schedule, StepMultipliesAtEachMilestone) {
  auto s = base(LrSchedule::Kind::step);
  s.milestones = {3, 6};
  EXPECT_DOUBLE_EQ(lr_at(s, 29), 0.1);      // epoch 2.9
  EXPECT_NEAR(lr_at(s, 30), 0.01, 1e-15);   // epoch 3
  EXPECT_NEAR(lr_at(s, 60), 0.001, 1e-15);  // epoch 6
}

TEST(Schedule, CosineFromBaseToMin) {
  auto s = base(LrSchedule::Kind::cosine);
  s.min_lr = 0.001;
  EXPECT_DOUBLE_EQ(lr_at(s, 0), 0.1);
  EXPECT_NEAR(lr_at(s, 99), 0.001, 1e-12);
  EXPECT_NEAR(lr_at(s, 49), 0.001 + (0.1 - 0.001) * 0.5 * (1 + std::cos(M_PI * 49 / 99.0)), 1e-12);
}

TEST(Schedule, PolyAfterTheWarmupDownToMin) {
  auto s = base(LrSchedule::Kind::poly);
  s.min_lr = 0.001;
  s.power = 2;
  s.warmup_epochs = 1;  // 10 steps, then t from 0 (step 10) to 1 (step 99)
  EXPECT_NEAR(lr_at(s, 4), 0.1 * 5 / 10, 1e-15);
  EXPECT_DOUBLE_EQ(lr_at(s, 10), 0.1);
  const double t = (40.0 - 10.0) / 89.0;
  EXPECT_NEAR(lr_at(s, 40), 0.001 + (0.1 - 0.001) * (1 - t) * (1 - t), 1e-15);
  EXPECT_NEAR(lr_at(s, 99), 0.001, 1e-15);
  s.power = 1;  // linear
  EXPECT_NEAR(lr_at(s, 40), 0.001 + (0.1 - 0.001) * (1 - t), 1e-15);
  for (std::int64_t k = 11; k < 100; ++k) EXPECT_LT(lr_at(s, k), lr_at(s, k - 1));
  EXPECT_EQ(parse_schedule_kind("poly"), LrSchedule::Kind::poly);
}

TEST(Schedule, LinearWarmupThenTheSchedule) {
  auto s = base(LrSchedule::Kind::constant);
  s.warmup_epochs = 2;  // 20 steps
  EXPECT_NEAR(lr_at(s, 0), 0.1 / 20, 1e-15);
  EXPECT_NEAR(lr_at(s, 9), 0.1 * 10 / 20, 1e-15);
  EXPECT_DOUBLE_EQ(lr_at(s, 19), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 20), 0.1);
}

TEST(Schedule, UnknownKindIsAUsageError) {
  EXPECT_THROW(parse_schedule_kind("exponential"), UsageError);
  EXPECT_EQ(parse_schedule_kind("cosine"), LrSchedule::Kind::cosine);
}
