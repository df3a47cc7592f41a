// DESIGN.md invariant 1 under mpiexec -n 3: with the same global batch and seed, 1, 2 and 3 ranks
// (3 does not divide 128) end with the same parameters -- dropout on, masks drawn per global
// sample. Sub-communicators of the first k ranks run one after the other inside one job.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi/mpi_util.hpp"

#include <cmath>

#include "distnet/trainer.hpp"

using namespace distnet;
using distnet::testkit::world_rank;
using distnet::testkit::world_size;

namespace {

struct Outcome {
  std::vector<float> initial;  // after the trainer's broadcast, before the first step
  std::vector<float> params;
  std::vector<EpochMetrics> history;
  EvalResult eval;
};

// Trains `cfg` on the first k ranks of the world; rank 0 of the world gets the outcome.
Outcome run_on_first(int k, const RunConfig& cfg, std::int64_t train_size, std::int64_t test_size) {
  Outcome out;
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < k ? 0 : MPI_UNDEFINED, world_rank(), &sub);
  if (sub != MPI_COMM_NULL) {
    World world(sub);
    auto comm = make_mpi_communicator(sub);
    auto be = make_cpu_backend({CpuOptions::ConvAlgorithm::direct});
    data::DatasetOptions d = cfg.data;
    d.synthetic_train_size = train_size, d.synthetic_test_size = test_size;
    auto train = data::open_dataset(d, data::Split::train);
    auto test = data::open_dataset(d, data::Split::test);
    ModelConfig mc;
    mc.name = cfg.model, mc.input = d.synthetic_shape, mc.classes = d.synthetic_classes;
    const data::ImageTransform transform(d.synthetic_shape, {});
    Model model(mc, *be, int(std::max<std::int64_t>(cfg.batch, 1)));
    InitConfig init;
    init.seed = cfg.seed;
    model.initialize(init);
    Reporter quiet(false, "", "off");
    Trainer trainer(cfg, {world, *comm, *be, model, *train, test.get(), transform, quiet});
    out.initial.assign(model.param_data(), model.param_data() + model.flat_size());
    out.history = trainer.fit().history;
    out.eval = trainer.evaluate();
    out.params.assign(model.param_data(), model.param_data() + model.flat_size());
    MPI_Comm_free(&sub);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / scale;
}

RunConfig small_alexnet(std::int64_t batch) {
  RunConfig c;
  c.model = "alexnet";  // with its two dropout layers
  c.data.name = "synthetic";
  c.data.synthetic_shape = Shape{1, 67, 67};  // the smallest input AlexNet accepts
  c.data.synthetic_classes = 10;
  c.data.seed = c.seed = 11;
  c.batch = batch;
  c.epochs = 1;
  c.lr = 0.01;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.workers = 1;
  c.bucket_mb = 4;  // several buckets, one tensor split over two
  return c;
}

}  // namespace

TEST(Equivalence, OneTwoAndThreeRanksGiveTheSameParameters) {
  ASSERT_EQ(world_size(), 3) << "run under mpiexec -n 3";
  const RunConfig cfg = small_alexnet(128);
  const Outcome one = run_on_first(1, cfg, 5 * 128, 50);  // 5 steps
  for (int k : {2, 3}) {
    const Outcome many = run_on_first(k, cfg, 5 * 128, 50);
    if (world_rank() != 0) continue;
    ASSERT_EQ(one.history.size(), 1u);
    EXPECT_EQ(many.history[0].steps, 5);
    const double err = max_relative_difference(many.params, one.params);
    std::printf("%d ranks vs 1: max relative parameter difference %.3g\n", k, err);
    EXPECT_LT(err, 1e-5);
    EXPECT_NEAR(many.history[0].loss, one.history[0].loss, 1e-5 * one.history[0].loss);
    EXPECT_EQ(many.history[0].train_acc, one.history[0].train_acc);
  }
}

// LARS (per-tensor norms of the summed gradient) and AdamW (two state slots, bias-corrected by
// the step count) on the graph model with a batch norm-free stem: the same invariant.
TEST(Equivalence, LarsAndAdamWOnOneTwoAndThreeRanks) {
  for (const std::string optimizer : {"lars", "adamw"}) {
    RunConfig cfg = small_alexnet(32);
    cfg.model = DISTNET_TEST_MODELS "/graph-small.yaml";
    cfg.data.synthetic_shape = Shape{1, 16, 16};
    cfg.optimizer = optimizer;
    if (optimizer == "adamw") {
      cfg.momentum = 0, cfg.lr = 1e-3, cfg.weight_decay = 0.05, cfg.adam_eps = 1e-6;
    } else {
      cfg.lr = 1.0, cfg.weight_decay = 5e-4, cfg.lars_trust = 0.01;
      cfg.lr_schedule = "poly", cfg.warmup_epochs = 0.4;
    }
    const Outcome one = run_on_first(1, cfg, 4 * 32 + 2, 20);
    for (int k : {2, 3}) {
      const Outcome many = run_on_first(k, cfg, 4 * 32 + 2, 20);
      if (world_rank() != 0) continue;
      EXPECT_EQ(many.history[0].steps, 5);
      const double err = max_relative_difference(many.params, one.params);
      std::printf("%s, %d ranks vs 1: max relative parameter difference %.3g\n", optimizer.c_str(),
                  k, err);
      EXPECT_LT(err, 1e-5) << optimizer;
      EXPECT_NEAR(many.history[0].loss, one.history[0].loss, 1e-5 * one.history[0].loss);
    }
  }
}

// A graph (residual blocks, a concat of three branches, dropout): the same invariant, with the
// empty slice of a partial batch on the third rank.
TEST(Equivalence, AGraphModelOnOneTwoAndThreeRanks) {
  RunConfig cfg = small_alexnet(32);
  cfg.model = DISTNET_TEST_MODELS "/graph-small.yaml";
  cfg.data.synthetic_shape = Shape{1, 16, 16};
  const Outcome one = run_on_first(1, cfg, 4 * 32 + 2, 20);  // 5 steps, the last of 2 samples
  for (int k : {2, 3}) {
    const Outcome many = run_on_first(k, cfg, 4 * 32 + 2, 20);
    if (world_rank() != 0) continue;
    EXPECT_EQ(many.history[0].steps, 5);
    const double err = max_relative_difference(many.params, one.params);
    std::printf("graph, %d ranks vs 1: max relative parameter difference %.3g\n", k, err);
    EXPECT_LT(err, 1e-5);
    EXPECT_NEAR(many.history[0].loss, one.history[0].loss, 1e-5 * one.history[0].loss);
  }
}

// 130 samples in batches of 128: the second batch holds 2 samples, so with 3 ranks the last
// rank's slice is empty. Nobody hangs and the result is that of one process.
TEST(Equivalence, PartialBatchSmallerThanTheWorld) {
  const RunConfig cfg = small_alexnet(128);
  const Outcome one = run_on_first(1, cfg, 130, 7);
  const Outcome three = run_on_first(3, cfg, 130, 7);  // 7 test samples: shards of 3, 2, 2
  if (world_rank() != 0) return;
  EXPECT_EQ(three.history[0].steps, 2);
  const double err = max_relative_difference(three.params, one.params);
  std::printf("partial batch, 3 ranks vs 1: max relative parameter difference %.3g\n", err);
  EXPECT_LT(err, 1e-5);
}

TEST(Equivalence, GlobalBatchOfTwoOnThreeRanks) {
  const RunConfig cfg = small_alexnet(2);
  const Outcome one = run_on_first(1, cfg, 6, 5);
  const Outcome three = run_on_first(3, cfg, 6, 5);
  if (world_rank() != 0) return;
  EXPECT_EQ(three.history[0].steps, 3);
  EXPECT_LT(max_relative_difference(three.params, one.params), 1e-5);
}

// Every test sample is evaluated exactly once: the counts match one process exactly.
TEST(Equivalence, DistributedEvaluationEqualsSingleProcess) {
  const RunConfig cfg = small_alexnet(64);
  const Outcome one = run_on_first(1, cfg, 64, 101);
  const Outcome three = run_on_first(3, cfg, 64, 101);
  if (world_rank() != 0) return;
  EXPECT_EQ(three.eval.samples, 101);
  EXPECT_EQ(one.eval.samples, 101);
  EXPECT_EQ(three.eval.accuracy, one.eval.accuracy);
  EXPECT_NEAR(three.eval.loss, one.eval.loss, 1e-6 * std::abs(one.eval.loss));
}

// --label-smoothing and --clip-grad-norm keep the invariant: the smoothed loss is a per-sample sum
// like the plain one, and the clipping norm is that of the whole summed gradient, counted once
// over the ranks, so every rank scales by the factor one process would.
TEST(Equivalence, SmoothingAndClippingOnOneTwoAndThreeRanks) {
  RunConfig cfg = small_alexnet(64);
  cfg.label_smoothing = 0.1;
  cfg.clip_grad_norm = 0.05;  // below the gradient's norm: every step is clipped
  const Outcome one = run_on_first(1, cfg, 64 + 5, 20);  // 2 steps, the second of 5 samples
  RunConfig plain = small_alexnet(64);
  const Outcome unclipped = run_on_first(1, plain, 64 + 5, 20);
  for (int k : {2, 3}) {
    const Outcome many = run_on_first(k, cfg, 64 + 5, 20);
    if (world_rank() != 0) continue;
    EXPECT_EQ(many.history[0].steps, 2);
    const double err = max_relative_difference(many.params, one.params);
    std::printf("smoothing and clipping, %d ranks vs 1: max relative parameter difference %.3g\n",
                k, err);
    EXPECT_LT(err, 1e-5);
    EXPECT_NEAR(many.history[0].loss, one.history[0].loss, 1e-5 * one.history[0].loss);
    EXPECT_EQ(many.history[0].clipped_steps, 2);
  }
  if (world_rank() != 0) return;
  EXPECT_EQ(one.history[0].clipped_steps, 2);
  EXPECT_EQ(unclipped.history[0].clipped_steps, -1);                       // off: not reported
  EXPECT_GT(max_relative_difference(one.params, unclipped.params), 1e-3);  // they do something
}

// The clipped step itself: with plain SGD (no momentum, no weight decay) one step moves the
// parameters by lr * c * g with c = MAX / (|g| + 1e-6), g the summed gradient. So against the
// same step unclipped (which shows g): the move is c times that one, and its norm is lr * MAX --
// on 3 ranks as on 1 (a norm summed over the ranks more than once would be larger, the move
// smaller). A MAX above |g| leaves the step exactly as it was.
TEST(Equivalence, AClippedStepHasTheNormMaxOnOneAndThreeRanks) {
  RunConfig cfg = small_alexnet(64);
  cfg.momentum = 0, cfg.weight_decay = 0, cfg.lr = 0.05;
  const Outcome plain = run_on_first(1, cfg, 64, 5);  // one step
  double norm = 0;                                    // |g|, from the unclipped step
  if (world_rank() == 0) {
    for (std::size_t i = 0; i < plain.params.size(); ++i) {
      const double g = (double(plain.initial[i]) - plain.params[i]) / cfg.lr;
      norm += g * g;
    }
    norm = std::sqrt(norm);
  }
  MPI_Bcast(&norm, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  ASSERT_GT(norm, 0.0);
  RunConfig clipped = cfg;
  clipped.clip_grad_norm = norm / 4;
  RunConfig loose = cfg;
  loose.clip_grad_norm = norm * 4;
  const Outcome not_clipped = run_on_first(1, loose, 64, 5);
  for (int k : {1, 3}) {
    const Outcome o = run_on_first(k, clipped, 64, 5);
    if (world_rank() != 0) continue;
    const double c = clipped.clip_grad_norm / (norm + 1e-6);
    double moved = 0, off = 0, most = 0;
    for (std::size_t i = 0; i < o.params.size(); ++i) {
      const double step = double(o.initial[i]) - o.params[i];
      const double want = c * (double(plain.initial[i]) - plain.params[i]);
      moved += step * step;
      off = std::max(off, std::abs(step - want));
      most = std::max(most, std::abs(want));
    }
    const double step_norm = std::sqrt(moved) / cfg.lr;
    std::printf(
        "%d rank(s): |g| %.6g, --clip-grad-norm %.6g, the step's norm / lr %.6g, "
        "max |step - c * unclipped step| / max %.3g\n",
        k, norm, clipped.clip_grad_norm, step_norm, off / most);
    EXPECT_NEAR(step_norm, clipped.clip_grad_norm, 1e-4 * clipped.clip_grad_norm);
    EXPECT_LT(off / most, 1e-4);
    EXPECT_EQ(o.history[0].clipped_steps, 1);
  }
  if (world_rank() != 0) return;
  EXPECT_EQ(not_clipped.history[0].clipped_steps, 0);
  EXPECT_EQ(not_clipped.params, plain.params);
}
