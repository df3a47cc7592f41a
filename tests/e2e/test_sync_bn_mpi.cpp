// --sync-bn under mpiexec -n 3 (DESIGN.md invariant 1 for batch-norm): with the global batch's
// statistics, 1, 2 and 3 ranks take the same steps -- alexnet-bn (batch-norm after every
// convolution) and a network with batch-norm after dense layers (1-D), with uneven slices and a
// rank whose slice is empty -- and every rank ends with the same running statistics, to the bit.
// Without --sync-bn the same runs differ (per-rank statistics), which shows that the comparison
// can see the difference. On the hybrid grid (--model-parallel) the batch-norm layers outside
// the split dense layers sum over the whole world and the steps are again those of one process.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "distnet/trainer.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

struct Outcome {
  std::map<std::string, std::vector<float>> tensors;  // whole parameters and state, by name
  bool state_same_on_every_rank = false;
  std::vector<EpochMetrics> history;
  EvalResult eval;
};

// Trains `cfg` (with --sync-bn as cfg.sync_bn) on the first k ranks of the world, in groups of m
// (the hybrid grid when m > 1); world rank 0 gets the outcome.
Outcome run_on_first(int k, int m, const RunConfig& cfg, std::int64_t train_size,
                     std::int64_t test_size) {
  Outcome out;
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < k ? 0 : MPI_UNDEFINED, world_rank(), &sub);
  if (sub != MPI_COMM_NULL) {
    World world(sub);
    auto comm = make_mpi_communicator(sub);
    Grid grid(sub, *comm, m, [](MPI_Comm c) { return make_mpi_communicator(c); });
    auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
    data::DatasetOptions d = cfg.data;
    d.synthetic_train_size = train_size, d.synthetic_test_size = test_size;
    auto train = data::open_dataset(d, data::Split::train);
    auto test = data::open_dataset(d, data::Split::test);
    ModelConfig mc;
    mc.name = cfg.model, mc.input = d.synthetic_shape, mc.classes = d.synthetic_classes;
    mc.sync_bn = cfg.sync_bn, mc.sync_bn_ranks = comm.get();
    const data::ImageTransform transform(d.synthetic_shape, {});
    LayerSplit split;
    if (grid.hybrid()) split = {grid.group_comm(), m, grid.shard()};
    Model model(mc, *be, int(cfg.batch), split);
    InitConfig init;
    init.seed = cfg.seed;
    model.initialize(init);
    Reporter quiet(false, "", "off");
    Trainer trainer(cfg, {world, *comm, *be, model, *train, test.get(), transform, quiet, nullptr,
                          nullptr, nullptr, &grid});
    out.history = trainer.fit().history;
    out.eval = trainer.evaluate();
    const Snapshot s = take_whole_snapshot(model, CheckpointMeta{});
    for (const ParamEntry& e : s.params) {
      const float* v = s.param_data() + e.offset;
      out.tensors[e.spec.name].assign(v, v + e.spec.shape.numel());
    }
    for (const ParamEntry& e : s.state) {
      const float* v = s.state_data() + e.offset;
      out.tensors[e.spec.name].assign(v, v + e.spec.shape.numel());
    }
    // Rank 0's running statistics against every other rank's, bit for bit.
    const std::size_t count = std::size_t(model.state_size());
    std::vector<float> all(count * std::size_t(world.size()));
    MPI_Gather(model.state_data(), int(count), MPI_FLOAT, all.data(), int(count), MPI_FLOAT, 0,
               sub);
    out.state_same_on_every_rank = true;
    for (std::size_t i = count; i < all.size(); ++i)
      out.state_same_on_every_rank = out.state_same_on_every_rank && all[i] == all[i % count];
    MPI_Comm_free(&sub);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

// Summation order alone: the sums over ranks and over each rank's rows are added in another
// order than one process adds them. The largest figure seen (2-vCPU AMD EPYC) is 5e-6, in a
// batch-norm's beta, whose gradient is a sum of terms that largely cancel; per-rank statistics
// differ by more than 1 (the control below).
constexpr double kTolerance = 5e-5;

// The largest difference of any tensor relative to that tensor's largest magnitude.
double max_relative_difference(const Outcome& a, const Outcome& b, std::string* worst) {
  double most = 0;
  for (const auto& [name, x] : b.tensors) {
    const auto& y = a.tensors.at(name);
    if (x.size() != y.size()) {
      *worst = name + " (size)";
      return 1e9;
    }
    double diff = 0, scale = 1e-30;
    for (std::size_t i = 0; i < x.size(); ++i) {
      diff = std::max(diff, std::abs(double(x[i]) - y[i]));
      scale = std::max(scale, std::abs(double(y[i])));
    }
    // The bias of a layer whose output a batch-norm normalises has an exact gradient of zero
    // (the normalisation removes any per-channel shift): it holds only rounding noise (1e-10 to
    // 1e-7 here, from weight decay and sums that cancel), which is compared on the scale of the
    // model's parameters, 1, not on its own.
    if (scale < 1e-6) scale = 1.0;
    if (diff / scale > most) most = diff / scale, *worst = name;
  }
  return most;
}

RunConfig base_config(const std::string& model, const Shape& input, std::int64_t batch) {
  RunConfig c;
  c.model = model;
  c.data.name = "synthetic";
  c.data.synthetic_shape = input;
  c.data.synthetic_classes = 10;
  c.data.seed = c.seed = 17;
  c.batch = batch;
  c.epochs = 1;
  c.lr = 0.02;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.workers = 1;
  c.bucket_mb = 4;  // several buckets, released between the batch-norm layers' sums
  c.sync_bn = true;
  return c;
}

// Batch-norm after a convolution and after a dense layer; between the first two dense layers
// only what the hybrid grid can split (relu, dropout), so the same file serves both. bn2's eps
// is large: 1-D batch-norm over a global batch of 2 is otherwise ill-conditioned (x_hat = +-1 up
// to eps / var, and dx is what is left of a cancellation), so rounding alone would make two
// runs of one process differ by 1e-3 -- not what this test is about.
std::string dense_bn_model() {
  const std::string path =
      ::testing::TempDir() + "sync_bn_dense_rank" + std::to_string(world_rank()) + ".yaml";
  std::ofstream f(path);
  f << "name: dense-bn\n"
       "layers:\n"
       "  - conv:       {name: conv1, channels: 4, kernel: 3}\n"
       "  - batch_norm: {name: bn1, act: relu}\n"
       "  - max_pool:   {name: pool1, kernel: 2}\n"
       "  - dense:      {name: dense1, units: 16, act: relu}\n"
       "  - dropout:    {name: drop1, p: 0.25}\n"
       "  - dense:      {name: dense2, units: 12}\n"
       "  - batch_norm: {name: bn2, act: relu, eps: 0.1}\n"
       "  - dense:      {name: dense3, units: classes}\n";
  return path;
}

// The runs on 2 and 3 ranks against the one on 1; returns the largest difference seen.
double compare(const Outcome& one, const Outcome& many, int ranks, const char* what) {
  if (world_rank() != 0) return 0;
  std::string worst;
  const double d = max_relative_difference(one, many, &worst);
  std::printf("%s, %d ranks vs 1: max relative difference %.3g (%s)\n", what, ranks, d,
              worst.c_str());
  EXPECT_TRUE(many.state_same_on_every_rank) << what << " on " << ranks << " ranks";
  EXPECT_EQ(many.history.at(0).steps, one.history.at(0).steps);
  EXPECT_NEAR(many.history.at(0).loss, one.history.at(0).loss, 1e-5 * one.history.at(0).loss);
  EXPECT_EQ(many.eval.samples, one.eval.samples);
  EXPECT_NEAR(many.eval.loss, one.eval.loss, 1e-4 * std::abs(one.eval.loss));
  return d;
}

}  // namespace

// 18 samples in batches of 8: 8, 8, 2 -- on 3 ranks slices of 3/3/2 and then 1/1/0; and a
// global batch of 2, where every step has an empty slice on 3 ranks.
TEST(SyncBatchNorm, AlexNetBnOnOneTwoAndThreeRanksTakesTheSameSteps) {
  ASSERT_EQ(world_size(), 3) << "run under mpiexec -n 3";
  for (const auto& [batch, samples] : {std::pair{8, 18}, std::pair{2, 6}}) {
    const RunConfig cfg = base_config("alexnet-bn", Shape{1, 67, 67}, batch);
    const Outcome one = run_on_first(1, 1, cfg, samples, 11);
    const std::string what = "alexnet-bn --sync-bn, batch " + std::to_string(batch);
    for (int k : {2, 3}) {
      const Outcome many = run_on_first(k, 1, cfg, samples, 11);
      EXPECT_LT(compare(one, many, k, what.c_str()), kTolerance);
    }
  }
}

// The control: per-rank statistics (the default) on 2 ranks do not take one process's steps,
// and one process takes the same steps with either kind of batch-norm.
TEST(SyncBatchNorm, PerRankStatisticsDifferAndOneRankAgrees) {
  RunConfig cfg = base_config("alexnet-bn", Shape{1, 67, 67}, 8);
  const Outcome sync_one = run_on_first(1, 1, cfg, 18, 11);
  cfg.sync_bn = false;
  const Outcome plain_one = run_on_first(1, 1, cfg, 18, 11);
  const Outcome plain_two = run_on_first(2, 1, cfg, 18, 11);
  if (world_rank() != 0) return;
  std::string worst;
  const double same = max_relative_difference(plain_one, sync_one, &worst);
  std::printf("one rank, --sync-bn vs per-rank batch-norm: %.3g (%s)\n", same, worst.c_str());
  EXPECT_LT(same, kTolerance);
  const double apart = max_relative_difference(plain_one, plain_two, &worst);
  std::printf("per-rank batch-norm, 2 ranks vs 1: %.3g (%s)\n", apart, worst.c_str());
  EXPECT_GT(apart, 1e-3);
  EXPECT_FALSE(plain_two.state_same_on_every_rank);
}

// Batch-norm on 1-D features after dense layers: 12 samples in batches of 5 (5, 5, 2), and a
// global batch of 2 on 3 ranks (every step has an empty slice).
TEST(SyncBatchNorm, AfterDenseLayersWithEmptySlices) {
  const std::string model = dense_bn_model();
  for (const std::int64_t batch : {5, 2}) {
    const RunConfig cfg = base_config(model, Shape{1, 12, 12}, batch);
    const Outcome one = run_on_first(1, 1, cfg, 12, 7);
    for (int k : {2, 3}) {
      const Outcome many = run_on_first(k, 1, cfg, 12, 7);
      EXPECT_LT(compare(one, many, k, batch == 5 ? "dense-bn, batch 5" : "dense-bn, batch 2"),
                kTolerance);
    }
  }
}

// The hybrid grid: the batch-norm layers before and after the split dense layers hold each
// rank's own rows, and sum over the whole world (2 ranks in one group, 3 in one group, and 3
// groups of 1), uneven and empty slices included.
TEST(SyncBatchNorm, HybridGridSumsOverTheWholeWorld) {
  const RunConfig cfg = base_config(dense_bn_model(), Shape{1, 12, 12}, 5);
  const Outcome one = run_on_first(1, 1, cfg, 12, 7);
  for (const auto& [n, m] : {std::pair{2, 2}, std::pair{3, 3}, std::pair{3, 1}}) {
    const Outcome grid = run_on_first(n, m, cfg, 12, 7);
    char what[64];
    std::snprintf(what, sizeof what, "dense-bn on the grid %dx%d", n / m, m);
    EXPECT_LT(compare(one, grid, n, what), kTolerance);
  }
}
