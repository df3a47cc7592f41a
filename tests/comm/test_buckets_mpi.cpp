// Gradient buckets on the CPU path with MPI (2 and 3 ranks): boundaries, release in backward
// order exactly once per step, everything summed before the update, and the same parameters for
// any bucket size -- including one bucket larger than the whole model and buckets smaller than
// a single tensor.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/mpi_util.hpp"

#include <cmath>
#include <cstring>

#include "distnet/grad_sync.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {
ModelConfig lenet() {
  ModelConfig c;
  c.name = "lenet", c.input = Shape{1, 28, 28};
  return c;
}
}  // namespace

TEST(Buckets, PlanCoversTheBufferInOrder) {
  const auto b = plan_buckets(1000, 400.0 * 4);  // 400 floats per bucket
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].begin, 0);
  EXPECT_EQ(b[0].end, 400);
  EXPECT_EQ(b[2].begin, 800);
  EXPECT_EQ(b[2].end, 1000);
  EXPECT_EQ(plan_buckets(1000, 1e12).size(), 1u);  // larger than the model: one bucket
  EXPECT_EQ(plan_buckets(10, 1).size(), 10u);      // smaller than a float: one float each
}

TEST(Buckets, ReleasedInBackwardOrderOnceAndSummedBeforeTheUpdate) {
  auto be = make_cpu_backend();
  Model m(lenet(), *be, 2);
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  // 64 KiB buckets: smaller than dense1.weight (1.6 MB), so that tensor spans many buckets.
  GradSync sync(m, *comm, GradSyncOptions{64.0 / 1024});
  ASSERT_GT(sync.buckets().size(), 10u);
  std::vector<std::size_t> released;
  sync.set_release_hook([&](std::size_t i) { released.push_back(i); });
  for (int step = 0; step < 2; ++step) {
    released.clear();
    // Each rank's gradient is rank + 1 everywhere: the sum is n(n+1)/2.
    for (std::int64_t i = 0; i < m.flat_size(); ++i) m.grad_data()[i] = float(world_rank() + 1);
    sync.begin_step();
    std::int64_t done_prefix = 0;
    for (int layer = int(m.layers().size()) - 1; layer >= 0; --layer) {
      sync.on_layer_done(layer);
      // Everything released so far lies within the gradients that are final.
      for (const ParamEntry& e : m.params())
        if (e.layer >= layer) done_prefix = std::max(done_prefix, e.offset + e.spec.shape.numel());
      if (!released.empty()) EXPECT_LE(sync.buckets()[released.back()].end, done_prefix);
    }
    sync.finish();
    ASSERT_EQ(released.size(), sync.buckets().size());
    for (std::size_t i = 0; i < released.size(); ++i) EXPECT_EQ(released[i], i);  // in order, once
    const float want = float(world_size() * (world_size() + 1) / 2);
    for (std::int64_t i = 0; i < m.flat_size(); ++i) ASSERT_EQ(m.grad_data()[i], want) << i;
  }
}

namespace {
// Three SGD steps of LeNet on this rank's 8 samples, gradients synchronised with `o`.
std::vector<float> train_three_steps(const GradSyncOptions& o) {
  auto be = make_cpu_backend();
  Model m(lenet(), *be, 8);
  m.initialize({});
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  GradSync sync(m, *comm, o);
  std::vector<float> x(8 * 784);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = float((i * 7 + std::size_t(world_rank()) * 13) % 255) / 255;
  std::vector<std::int32_t> labels(8);
  std::vector<std::uint32_t> ids(8);
  for (int i = 0; i < 8; ++i)
    labels[std::size_t(i)] = (i + world_rank()) % 10,
    ids[std::size_t(i)] = std::uint32_t(8 * world_rank() + i);
  for (std::uint32_t step = 0; step < 3; ++step) {
    const StepContext ctx{true, 1, step, ids.data()};
    double stats[3] = {0, 0, 0};
    be->softmax_xent(8, 10, m.forward(ctx, 8, x.data()), labels.data(),
                     1.0f / float(8 * world_size()), m.dlogits(), stats);
    sync.begin_step();
    m.backward(ctx, 8, x.data(), [&](int l) { sync.on_layer_done(l); });
    sync.finish();
    be->sgd_update(m.flat_size(), m.param_data(), m.grad_data(), m.momentum_data(),
                   {0.05f, 0.9f, 0.0f});
  }
  return {m.param_data(), m.param_data() + m.flat_size()};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::abs(a[i] - b[i])));
  return diff;
}
}  // namespace

// The same training steps with different bucket sizes give the same parameters.
TEST(Buckets, BucketSizeDoesNotChangeTheResult) {
  const auto ref = train_three_steps(GradSyncOptions{0.0001});
  for (double mb : {0.25, 1000.0})
    EXPECT_LT(max_abs_diff(train_three_steps({mb}), ref), 1e-6) << mb;
}

// Overlap only moves the all-reduces earlier: the sums, and so the parameters, are identical.
TEST(Buckets, OverlapOnAndOffGiveIdenticalParameters) {
  GradSyncOptions on{0.25}, off{0.25};
  off.overlap = false;
  EXPECT_EQ(max_abs_diff(train_three_steps(on), train_three_steps(off)), 0.0);
}

TEST(Buckets, WithOverlapOffNothingIsReleasedBeforeFinish) {
  auto be = make_cpu_backend();
  Model m(lenet(), *be, 2);
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  GradSyncOptions o{64.0 / 1024};
  o.overlap = false;
  GradSync sync(m, *comm, o);
  std::size_t released = 0;
  sync.set_release_hook([&](std::size_t) { ++released; });
  sync.begin_step();
  for (int layer = int(m.layers().size()) - 1; layer >= 0; --layer) sync.on_layer_done(layer);
  EXPECT_EQ(released, 0u);
  sync.finish();
  EXPECT_EQ(released, sync.buckets().size());
}

// bf16 on the wire: every rank gets the same sums, within bf16's rounding of the exact ones.
TEST(Buckets, Bf16WireSumsAgreeOnEveryRankWithinRounding) {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  const std::size_t n = 100000;
  std::vector<float> exact(n), wire(n);
  for (std::size_t i = 0; i < n; ++i) {
    wire[i] = std::sin(0.001f * float(i) + float(world_rank())) * float(1 + i % 7);
    exact[i] = wire[i];
  }
  comm->allreduce_sum(exact.data(), n);
  comm->allreduce_sum_async(wire.data(), n, Wire::bf16);
  comm->wait_pending();
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    // Each of the <= 3 inputs and each partial sum is rounded to 8 significant bits.
    const double bound = 2.0 * world_size() * std::ldexp(1.0, -8) * 7.0 + 1e-6;
    worst = std::max(worst, std::abs(double(wire[i]) - exact[i]) / bound);
  }
  EXPECT_LE(worst, 1.0);
  // Identical on all ranks: rank 0's copy broadcast and compared.
  std::vector<float> root = wire;
  comm->broadcast(root.data(), n * sizeof(float), 0);
  EXPECT_EQ(max_abs_diff(root, wire), 0.0);
  // And it is really bf16: the low 16 bits of every value are zero.
  std::size_t low_bits = 0;
  for (float v : wire) {
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    low_bits += (u & 0xFFFFu) != 0;
  }
  EXPECT_EQ(low_bits, 0u);
}

// With bf16 the training still follows the fp32 run closely (three steps of LeNet).
TEST(Buckets, Bf16WireTrainsCloseToFp32) {
  GradSyncOptions fp32{0.25}, bf16{0.25};
  bf16.wire = Wire::bf16;
  const auto a = train_three_steps(fp32), b = train_three_steps(bf16);
  const double diff = max_abs_diff(a, b);
  if (world_rank() == 0) std::printf("bf16 vs fp32 wire after 3 steps: max |dw| %.3g\n", diff);
  EXPECT_GT(diff, 0.0);   // really compressed
  EXPECT_LT(diff, 1e-3);  // parameters are O(0.1); lr 0.05
}
