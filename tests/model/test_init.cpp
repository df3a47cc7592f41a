#include <gtest/gtest.h>

#include <cmath>

#include "distnet/model.hpp"

using namespace distnet;

namespace {
struct Stats {
  double mean = 0, sd = 0, max_abs = 0;
};
Stats stats_of(const float* v, std::int64_t n) {
  double s = 0, s2 = 0, m = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    s += v[i], s2 += double(v[i]) * v[i];
    m = std::max(m, std::abs(double(v[i])));
  }
  return {s / n, std::sqrt(s2 / n - (s / n) * (s / n)), m};
}
const ParamEntry& entry(const Model& m, const std::string& name) {
  for (const auto& e : m.params())
    if (e.spec.name == name) return e;
  throw std::runtime_error("no " + name);
}
ModelConfig lenet() {
  ModelConfig c;
  c.name = "lenet", c.input = Shape{1, 28, 28};
  return c;
}
}  // namespace

TEST(Init, XavierUniformAverageFanWithMagnitude) {
  auto be = make_cpu_backend();
  Model m(lenet(), *be, 1);
  InitConfig init;  // xavier, magnitude 2.24
  m.initialize(init);
  const auto& e = entry(m, "dense1.weight");  // fan_in 800, fan_out 500
  const double bound = std::sqrt(2.24 / ((800 + 500) / 2.0));
  const Stats s = stats_of(m.param_data() + e.offset, e.spec.shape.numel());
  EXPECT_LE(s.max_abs, bound);
  EXPECT_GT(s.max_abs, 0.99 * bound);
  EXPECT_NEAR(s.sd, bound / std::sqrt(3.0), 0.01 * bound);
  EXPECT_NEAR(s.mean, 0.0, 0.01 * bound);
  const auto& b = entry(m, "dense1.bias");
  EXPECT_EQ(stats_of(m.param_data() + b.offset, 500).max_abs, 0.0);
}

TEST(Init, NormalWithSigma) {
  auto be = make_cpu_backend();
  Model m(lenet(), *be, 1);
  InitConfig init;
  init.kind = InitConfig::Kind::normal;
  m.initialize(init);
  const auto& e = entry(m, "dense1.weight");
  const Stats s = stats_of(m.param_data() + e.offset, e.spec.shape.numel());
  EXPECT_NEAR(s.sd, 0.01, 0.0002);
  EXPECT_NEAR(s.mean, 0.0, 0.0002);
}

TEST(Init, DeterministicFromTheSeed) {
  auto be = make_cpu_backend();
  Model a(lenet(), *be, 1), b(lenet(), *be, 1), c(lenet(), *be, 1);
  InitConfig i1, i2;
  i2.seed = 1;
  a.initialize(i1), b.initialize(i1), c.initialize(i2);
  const auto n = std::size_t(a.flat_size());
  EXPECT_EQ(std::vector<float>(a.param_data(), a.param_data() + n),
            std::vector<float>(b.param_data(), b.param_data() + n));
  EXPECT_NE(std::vector<float>(a.param_data(), a.param_data() + n),
            std::vector<float>(c.param_data(), c.param_data() + n));
}

TEST(Init, BatchNormStartsAsIdentity) {
  auto be = make_cpu_backend();
  ModelConfig c;
  c.name = "alexnet-bn", c.input = Shape{1, 67, 67};
  Model m(c, *be, 1);
  m.initialize({});
  for (const auto& e : m.params()) {
    if (e.spec.role != ParamRole::gamma && e.spec.role != ParamRole::beta) continue;
    const float want = e.spec.role == ParamRole::gamma ? 1.0f : 0.0f;
    for (std::int64_t i = 0; i < e.spec.shape.numel(); ++i)
      ASSERT_EQ(m.param_data()[e.offset + i], want);
  }
  for (const auto& e : m.state()) {
    const float want = e.spec.role == ParamRole::running_var ? 1.0f : 0.0f;
    for (std::int64_t i = 0; i < e.spec.shape.numel(); ++i)
      ASSERT_EQ(m.state_data()[e.offset + i], want);
  }
}
