// DESIGN.md invariant 1 on the process grid, under mpiexec -n 6: the hybrid split (--model-parallel
// M; docs/process-grid.md) on N in {1, 2, 3, 4, 6} ranks with M in {1, 2, 3} where M divides N
// takes the same steps as one process with the whole batch -- AlexNet with both dropout layers
// (masks drawn per global sample and global element of the full layer), an uneven last batch
// and ranks with empty slices -- and evaluates the same. Whole tensors are compared by name (a
// split rank holds pieces; take_whole_snapshot gathers them as a checkpoint does). And the
// gradient buckets of a split model.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <map>

#include "distnet/grad_sync.hpp"
#include "distnet/trainer.hpp"
#include "mpi/mpi_util.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

struct Outcome {
  std::map<std::string, std::vector<float>> tensors;  // whole parameters by name
  std::map<std::string, std::vector<float>> initial;  // the same before the first step
  std::vector<EpochMetrics> history;
  EvalResult eval;
  CommBytes bytes;  // of the last step, rank 0
};

RunConfig small_alexnet() {
  RunConfig c;
  c.model = "alexnet";
  c.data.name = "synthetic";
  c.data.synthetic_shape = Shape{1, 67, 67};  // the smallest input AlexNet accepts
  c.data.synthetic_classes = 10;
  c.data.seed = c.seed = 5;
  c.batch = 10;  // 23 samples: batches of 10, 10 and 3 (on 4 and 6 ranks some slices are empty)
  c.epochs = 1;
  c.lr = 0.05;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.workers = 1;
  c.eval_batch = 4;
  c.bucket_mb = 8;
  return c;
}

// Trains on the first k ranks of the world split into groups of m; world rank 0 gets the outcome.
Outcome run_on_grid(int k, int m, const RunConfig& cfg, std::int64_t train_size = 23) {
  Outcome out;
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < k ? 0 : MPI_UNDEFINED, world_rank(), &sub);
  if (sub != MPI_COMM_NULL) {
    World world(sub);
    auto comm = make_mpi_communicator(sub);
    Grid grid(sub, *comm, m, [](MPI_Comm c) { return make_mpi_communicator(c); });
    auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
    data::DatasetOptions d = cfg.data;
    d.synthetic_train_size = train_size, d.synthetic_test_size = 17;
    auto train = data::open_dataset(d, data::Split::train);
    auto test = data::open_dataset(d, data::Split::test);
    ModelConfig mc;
    mc.name = cfg.model, mc.input = d.synthetic_shape, mc.classes = d.synthetic_classes;
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
    const Snapshot s0 = take_whole_snapshot(model, CheckpointMeta{});
    for (const ParamEntry& e : s0.params) {
      const float* v = s0.param_data() + e.offset;
      out.initial[e.spec.name].assign(v, v + e.spec.shape.numel());
    }
    out.history = trainer.fit().history;
    out.bytes = trainer.last_step_bytes();
    out.eval = trainer.evaluate();
    const Snapshot s = take_whole_snapshot(model, CheckpointMeta{});
    for (const ParamEntry& e : s.params) {
      const float* v = s.param_data() + e.offset;
      out.tensors[e.spec.name].assign(v, v + e.spec.shape.numel());
    }
    MPI_Comm_free(&sub);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

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
    if (diff / scale > most) most = diff / scale, *worst = name;
  }
  return most;
}

}  // namespace

TEST(HybridEquivalence, EveryGridTakesTheStepsOfOneProcess) {
  ASSERT_EQ(world_size(), 6) << "run under mpiexec -n 6";
  const RunConfig cfg = small_alexnet();
  const Outcome one = run_on_grid(1, 1, cfg);
  const struct {
    int n, m;
  } grids[] = {{2, 2}, {3, 3}, {4, 2}, {6, 2}, {6, 3}, {4, 1}, {6, 1}, {2, 1}, {3, 1}};
  for (const auto& g : grids) {
    const Outcome o = run_on_grid(g.n, g.m, cfg);
    if (world_rank() != 0) continue;
    std::string worst;
    const double d = max_relative_difference(one, o, &worst);
    std::printf("N=%d M=%d: max relative difference from 1 process %.3g (%s)\n", g.n, g.m, d,
                worst.c_str());
    EXPECT_EQ(o.tensors.size(), one.tensors.size());
    EXPECT_LT(d, 2e-4) << "N=" << g.n << " M=" << g.m << " worst " << worst;
    ASSERT_EQ(o.history.size(), 1u);
    EXPECT_NEAR(o.history[0].loss, one.history[0].loss, 1e-4) << "N=" << g.n << " M=" << g.m;
    EXPECT_EQ(o.history[0].samples, 23);
    EXPECT_EQ(o.eval.samples, 17);
    EXPECT_NEAR(o.eval.loss, one.eval.loss, 1e-3) << "N=" << g.n << " M=" << g.m;
    EXPECT_NEAR(o.eval.accuracy, one.eval.accuracy, 1e-9) << "N=" << g.n << " M=" << g.m;
    // The hybrid grid moves activations inside groups; data parallelism only all-reduces.
    const bool hybrid = g.m > 1;
    EXPECT_EQ(o.bytes.of(CollectiveOp::allgather) > 0, hybrid) << "N=" << g.n << " M=" << g.m;
    EXPECT_EQ(o.bytes.of(CollectiveOp::reduce_scatter) > 0, hybrid);
  }
}

// LARS's norms of a split tensor are those of the whole tensor (its pieces' sums added over the
// group), and AdamW's state follows the pieces: a grid takes one process's steps.
TEST(HybridEquivalence, LarsAndAdamWOnTheGrid) {
  for (const std::string optimizer : {"lars", "adamw"}) {
    RunConfig cfg = small_alexnet();
    cfg.optimizer = optimizer;
    if (optimizer == "adamw") {
      cfg.momentum = 0, cfg.lr = 1e-3, cfg.weight_decay = 0.05, cfg.adam_eps = 1e-6;
    } else {
      cfg.lr = 2.0, cfg.lars_trust = 0.01, cfg.lr_schedule = "poly";
    }
    const Outcome one = run_on_grid(1, 1, cfg);
    for (const auto& [n, m] : {std::pair{2, 2}, std::pair{6, 3}}) {
      const Outcome o = run_on_grid(n, m, cfg);
      if (world_rank() != 0) continue;
      std::string worst;
      const double d = max_relative_difference(one, o, &worst);
      std::printf("%s N=%d M=%d: max relative difference from 1 process %.3g (%s)\n",
                  optimizer.c_str(), n, m, d, worst.c_str());
      EXPECT_LT(d, 2e-4) << optimizer << " N=" << n << " M=" << m << " worst " << worst;
      EXPECT_NEAR(o.history[0].loss, one.history[0].loss, 1e-4) << optimizer;
    }
  }
}

// The test must be able to fail: a wrong dropout offset in a split layer changes the steps.
TEST(HybridEquivalence, ADifferentSeedIsNoticed) {
  RunConfig cfg = small_alexnet();
  const Outcome one = run_on_grid(1, 1, cfg);
  cfg.seed = 6;  // other dropout masks (and initial values)
  const Outcome other = run_on_grid(2, 2, cfg);
  if (world_rank() != 0) return;
  std::string worst;
  EXPECT_GT(max_relative_difference(one, other, &worst), 1e-2);
}

// --label-smoothing and --clip-grad-norm on the grid: the clipping norm is that of the whole
// model -- a split layer's pieces counted once over a group, whole tensors once -- so every grid
// clips every step by one process's factor.
TEST(HybridEquivalence, SmoothingAndClippingOnEveryGrid) {
  RunConfig cfg = small_alexnet();
  cfg.label_smoothing = 0.2;
  cfg.clip_grad_norm = 0.05;  // below the gradient's norm: every step is clipped
  const Outcome one = run_on_grid(1, 1, cfg);
  const struct { int n, m; } grids[] = {{2, 2}, {6, 3}, {6, 2}};
  for (const auto& g : grids) {
    const Outcome o = run_on_grid(g.n, g.m, cfg);
    if (world_rank() != 0) continue;
    std::string worst;
    const double d = max_relative_difference(one, o, &worst);
    std::printf(
        "smoothing and clipping, N=%d M=%d: max relative difference from 1 process %.3g "
        "(%s)\n",
        g.n, g.m, d, worst.c_str());
    EXPECT_LT(d, 2e-4) << "N=" << g.n << " M=" << g.m << " worst " << worst;
    ASSERT_EQ(o.history.size(), 1u);
    EXPECT_NEAR(o.history[0].loss, one.history[0].loss, 1e-4) << "N=" << g.n << " M=" << g.m;
    EXPECT_EQ(o.history[0].clipped_steps, 3) << "N=" << g.n << " M=" << g.m;
  }
  if (world_rank() == 0) EXPECT_EQ(one.history[0].clipped_steps, 3);
}

// One clipped step of plain SGD moves the whole model by lr * MAX in norm on a grid as in one
// process: a piece counted by every group, or not at all, would make the move another size.
TEST(HybridEquivalence, AClippedStepHasTheNormMaxOnTheGrid) {
  RunConfig cfg = small_alexnet();
  cfg.momentum = 0, cfg.weight_decay = 0;
  cfg.clip_grad_norm = 0.01;
  for (const auto& [n, m] : {std::pair{1, 1}, std::pair{4, 2}, std::pair{6, 3}}) {
    const Outcome o = run_on_grid(n, m, cfg, /*train_size=*/10);  // one step
    if (world_rank() != 0) continue;
    double moved = 0;
    for (const auto& [name, after] : o.tensors) {
      const auto& before = o.initial.at(name);
      for (std::size_t i = 0; i < after.size(); ++i) {
        const double step = double(before[i]) - after[i];
        moved += step * step;
      }
    }
    const double step_norm = std::sqrt(moved) / cfg.lr;
    std::printf("N=%d M=%d: the clipped step's norm / lr %.6g (--clip-grad-norm %g)\n", n, m,
                step_norm, cfg.clip_grad_norm);
    EXPECT_NEAR(step_norm, cfg.clip_grad_norm, 1e-4 * cfg.clip_grad_norm)
        << "N=" << n << " M=" << m;
    EXPECT_EQ(o.history[0].clipped_steps, 1);
  }
}

// Gradient buckets of a split model: cut per run of tensors summed over the same ranks (no bucket
// mixes the world's tensors with the same-shard ranks'), covering the buffer in order; an unsplit
// model keeps exactly today's buckets.
TEST(HybridBuckets, NoBucketMixesCommunicatorsAndUnsplitModelsKeepTheirBuckets) {
  auto world = make_mpi_communicator(MPI_COMM_WORLD);
  Grid grid(MPI_COMM_WORLD, *world, 3, [](MPI_Comm c) { return make_mpi_communicator(c); });
  auto be = make_cpu_backend();
  ModelConfig mc;
  mc.name = "alexnet", mc.input = Shape{1, 67, 67};
  const double mb = 1.0;  // dense1's piece (4096/3 x 256) spans several buckets
  Model split(mc, *be, 2, {grid.group_comm(), 3, grid.shard()});
  GradSync sync(split, *world, GradSyncOptions{mb}, &grid.shard_comm());
  std::int64_t next = 0;
  int runs = 0;
  for (std::size_t k = 0; k < sync.buckets().size(); ++k) {
    const Bucket& b = sync.buckets()[k];
    EXPECT_EQ(b.begin, next);
    next = b.end;
    if (k == 0 || b.shard != sync.buckets()[k - 1].shard) ++runs;
    for (const ParamEntry& e : split.params()) {
      const bool overlaps = e.offset < b.end && e.offset + e.spec.shape.numel() > b.begin;
      if (overlaps) EXPECT_EQ(b.shard, e.spec.sum == GradSum::shard) << e.spec.name;
    }
  }
  EXPECT_EQ(next, split.flat_size());
  EXPECT_EQ(runs, 3);  // dense3 (world), dense2 and dense1 (same shard), the convolutions (world)
  Model whole(mc, *be, 2);
  GradSync plain(whole, *world, GradSyncOptions{mb});
  const auto want = plan_buckets(whole.flat_size(), mb * 1024 * 1024);
  ASSERT_EQ(plain.buckets().size(), want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(plain.buckets()[k].begin, want[k].begin);
    EXPECT_EQ(plain.buckets()[k].end, want[k].end);
    EXPECT_FALSE(plain.buckets()[k].shard);
  }
}
