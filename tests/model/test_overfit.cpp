// The whole AlexNet at 224x224 on the CPU backend learns a fixed batch of 4: the loss must fall
// tenfold within a bounded number of SGD steps (dropout active, as in training).
// The four images are faint noise plus a bright square in a different corner each: distinct
// enough to be memorised quickly. (Pure noise images are learnt too, but slowly: PyTorch with the
// same network, initialiser and SGD needs well over 80 steps for them, and so does distnet.)
#include <gtest/gtest.h>

#include "distnet/model.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;

namespace {
double train_step(Model& m, Backend& be, const std::vector<float>& x,
                  const std::vector<std::int32_t>& labels, const std::vector<std::uint32_t>& ids,
                  std::uint32_t step, const SgdParams& sgd) {
  const int n = static_cast<int>(labels.size());
  StepContext ctx{true, 3, step, ids.data()};
  const float* logits = m.forward(ctx, n, x.data());
  double stats[3] = {0, 0, 0};
  be.softmax_xent(n, m.config().classes, logits, labels.data(), 1.0f / n, m.dlogits(), stats);
  m.backward(ctx, n, x.data());
  be.sgd_update(m.flat_size(), m.param_data(), m.grad_data(), m.momentum_data(), sgd);
  return stats[0] / n;
}
}  // namespace

TEST(Overfit, AlexNetLearnsAFixedBatchOfFour) {
  auto be = make_cpu_backend();
  ModelConfig c;  // alexnet, 1x224x224, 10 classes
  Model m(c, *be, 4);
  m.initialize({});
  auto x = testkit::random_vector(4 * c.input.numel(), 21, -0.1f, 0.1f);
  for (int i = 0; i < 4; ++i) {
    const int oy = (i / 2) * 160, ox = (i % 2) * 160;
    for (int h = oy; h < oy + 64; ++h)
      for (int w = ox; w < ox + 64; ++w) x[std::size_t(i * 224 * 224 + h * 224 + w)] += 1.0f;
  }
  const std::vector<std::int32_t> labels{3, 7, 1, 9};
  const std::vector<std::uint32_t> ids{0, 1, 2, 3};
  const SgdParams sgd{0.01f, 0.9f, 0.0f};
  const double first = train_step(m, *be, x, labels, ids, 0, sgd);
  double loss = first;
  int steps = 1;
  const int max_steps = 60;
  while (steps < max_steps && loss > first / 10)
    loss = train_step(m, *be, x, labels, ids, std::uint32_t(steps++), sgd);
  std::printf("overfit: loss %.4f -> %.4f after %d steps\n", first, loss, steps);
  EXPECT_LE(loss, first / 10) << "after " << steps << " steps";
}

// An empty slice (a rank with no samples in a small batch) runs and yields zero gradients.
TEST(Overfit, EmptySliceGivesZeroGradients) {
  auto be = make_cpu_backend();
  ModelConfig c;
  c.name = "lenet", c.input = Shape{1, 28, 28};
  Model m(c, *be, 4);
  m.initialize({});
  for (std::int64_t i = 0; i < m.flat_size(); ++i) m.grad_data()[i] = 1.0f;
  StepContext ctx{true, 0, 0, nullptr};
  m.forward(ctx, 0, nullptr);
  int calls = 0;
  m.backward(ctx, 0, nullptr, [&](int) { ++calls; });
  EXPECT_EQ(calls, static_cast<int>(m.layers().size()));
  for (std::int64_t i = 0; i < m.flat_size(); ++i) ASSERT_EQ(m.grad_data()[i], 0.0f);
}
