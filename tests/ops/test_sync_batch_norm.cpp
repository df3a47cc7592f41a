// --sync-bn's op and layer on the CPU, without MPI: a batch cut into slices (one of them empty),
// each on its own op, with every sum added over the slices by hand where the layer all-reduces
// it, gives the whole batch's normalisation, input gradient and running statistics, and the
// same running statistics on every slice; on one slice the op agrees with oneDNN's batch-norm;
// the layer's gradients match finite differences; inference communicates nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/layer.hpp"
#include "ops/gradcheck.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace {

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
  return d;
}

// One rank's view: its rows of the batch, its op, its copy of the running statistics.
struct Slice {
  int n = 0;
  std::int64_t begin = 0;  // first value in the whole batch
  std::unique_ptr<SyncBatchNormOp> op;
  std::vector<float> rmean, rvar, y, dx, dgamma, dbeta;
};

// Adds each slice's buffer of `count` floats and hands every slice the total (an all-reduce).
void sum_over(std::vector<std::vector<float>>& per_slice, std::size_t count) {
  std::vector<float> total(count, 0.0f);
  for (const auto& v : per_slice)
    for (std::size_t i = 0; i < count; ++i) total[i] += v[i];
  for (auto& v : per_slice) v = total;
}

struct Whole {
  std::vector<float> y, dx, dgamma, dbeta, rmean, rvar;
};

// The layer's sequence of calls on `rows` slices of (n x c x spatial) x, dy.
std::vector<Slice> run_slices(Backend& be, const std::vector<int>& rows, int c, int spatial,
                              const std::vector<float>& x, const std::vector<float>& dy,
                              const std::vector<float>& gamma, const std::vector<float>& beta,
                              float momentum = 0.9f) {
  const std::int64_t per = std::int64_t(c) * spatial;
  std::vector<Slice> s(rows.size());
  std::int64_t at = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    s[r].n = rows[r], s[r].begin = at, at += rows[r] * per;
    s[r].op = be.make_sync_batch_norm(c, spatial, 1e-5f);
    s[r].rmean.assign(std::size_t(c), 0.25f), s[r].rvar.assign(std::size_t(c), 2.0f);
    s[r].y.assign(std::size_t(rows[r] * per), 0.0f), s[r].dx = s[r].y;
    s[r].dgamma.assign(std::size_t(c), -7.0f), s[r].dbeta = s[r].dgamma;  // overwritten
  }
  const std::size_t cs = std::size_t(c);
  std::vector<std::vector<float>> sums(rows.size(), std::vector<float>(cs + 1, -1.0f));
  std::vector<std::vector<float>> squares(rows.size(), std::vector<float>(cs, -1.0f));
  std::vector<std::vector<float>> grads(rows.size(), std::vector<float>(2 * cs, -1.0f));
  for (std::size_t r = 0; r < s.size(); ++r)
    s[r].op->sum(s[r].n, x.data() + s[r].begin, sums[r].data());
  sum_over(sums, cs + 1);
  for (std::size_t r = 0; r < s.size(); ++r)
    s[r].op->sum_squares(s[r].n, x.data() + s[r].begin, sums[r].data(), squares[r].data());
  sum_over(squares, cs);
  for (std::size_t r = 0; r < s.size(); ++r)
    s[r].op->normalize(s[r].n, x.data() + s[r].begin, gamma.data(), beta.data(), sums[r].data(),
                       squares[r].data(), s[r].y.data(), s[r].rmean.data(), s[r].rvar.data(),
                       momentum);
  for (std::size_t r = 0; r < s.size(); ++r)
    s[r].op->grad_sums(s[r].n, x.data() + s[r].begin, dy.data() + s[r].begin, grads[r].data(),
                       s[r].dgamma.data(), s[r].dbeta.data());
  sum_over(grads, 2 * cs);
  for (std::size_t r = 0; r < s.size(); ++r)
    s[r].op->grad_input(s[r].n, x.data() + s[r].begin, gamma.data(), dy.data() + s[r].begin,
                        grads[r].data(), s[r].dx.data());
  return s;
}

void expect_slices_equal_whole(int c, int spatial, const std::vector<int>& rows) {
  auto be = make_cpu_backend();
  const int n = std::accumulate(rows.begin(), rows.end(), 0);
  const std::size_t count = std::size_t(n) * std::size_t(c) * std::size_t(spatial);
  const auto x = random_vector(std::int64_t(count), 31, 2.0f, 6.0f);  // mean far from 0
  const auto dy = random_vector(std::int64_t(count), 32);
  const auto gamma = random_vector(c, 33, 0.5f, 1.5f), beta = random_vector(c, 34);
  const std::vector<Slice> whole = run_slices(*be, {n}, c, spatial, x, dy, gamma, beta);
  const std::vector<Slice> parts = run_slices(*be, rows, c, spatial, x, dy, gamma, beta);
  std::vector<float> y, dx, dgamma(std::size_t(c), 0.0f), dbeta(std::size_t(c), 0.0f);
  for (const Slice& s : parts) {
    y.insert(y.end(), s.y.begin(), s.y.end());
    dx.insert(dx.end(), s.dx.begin(), s.dx.end());
    for (int ch = 0; ch < c; ++ch) {  // the gradient all-reduce's sum
      dgamma[std::size_t(ch)] += s.dgamma[std::size_t(ch)];
      dbeta[std::size_t(ch)] += s.dbeta[std::size_t(ch)];
    }
    // Every slice, the empty one too, ends with the same running statistics, to the bit.
    EXPECT_EQ(s.rmean, parts[0].rmean);
    EXPECT_EQ(s.rvar, parts[0].rvar);
    if (s.n == 0) {  // an empty slice's gradient shares are written, as zeros
      EXPECT_EQ(s.dgamma, std::vector<float>(std::size_t(c), 0.0f));
      EXPECT_EQ(s.dbeta, std::vector<float>(std::size_t(c), 0.0f));
    }
  }
  const Slice& w = whole[0];
  EXPECT_LT(max_abs_diff(y, w.y), 2e-6);
  EXPECT_LT(max_abs_diff(dx, w.dx), 2e-6);
  EXPECT_LT(max_abs_diff(dgamma, w.dgamma), 1e-5);
  EXPECT_LT(max_abs_diff(dbeta, w.dbeta), 1e-5);
  EXPECT_LT(max_abs_diff(parts[0].rmean, w.rmean), 1e-6);
  EXPECT_LT(max_abs_diff(parts[0].rvar, w.rvar), 1e-6);
}

}  // namespace

TEST(SyncBatchNorm, OneSliceAgreesWithOneDnnBatchNorm) {
  auto be = make_cpu_backend();
  for (const int spatial : {25, 1}) {  // after a convolution; after a dense layer (1-D)
    SCOPED_TRACE("spatial " + std::to_string(spatial));
    const int n = 5, c = 6;
    const auto x = random_vector(n * c * spatial, 21, 1.0f, 5.0f);
    const auto dy = random_vector(n * c * spatial, 22);
    const auto gamma = random_vector(c, 23, 0.5f, 1.5f), beta = random_vector(c, 24);
    Whole ref;
    ref.y.resize(x.size()), ref.dx.resize(x.size()), ref.dgamma.resize(c), ref.dbeta.resize(c);
    ref.rmean.assign(c, 0.25f), ref.rvar.assign(c, 2.0f);
    auto bn = be->make_batch_norm(c, spatial, 1e-5f);
    bn->forward_train(n, x.data(), gamma.data(), beta.data(), ref.y.data(), ref.rmean.data(),
                      ref.rvar.data(), 0.9f);
    bn->backward(n, x.data(), gamma.data(), dy.data(), ref.dx.data(), ref.dgamma.data(),
                 ref.dbeta.data());
    const Slice s = std::move(run_slices(*be, {n}, c, spatial, x, dy, gamma, beta)[0]);
    EXPECT_LT(max_abs_diff(s.y, ref.y), 1e-5);
    EXPECT_LT(max_abs_diff(s.dx, ref.dx), 1e-5);
    EXPECT_LT(max_abs_diff(s.dgamma, ref.dgamma), 1e-5);
    EXPECT_LT(max_abs_diff(s.dbeta, ref.dbeta), 1e-5);
    EXPECT_LT(max_abs_diff(s.rmean, ref.rmean), 1e-6);
    EXPECT_LT(max_abs_diff(s.rvar, ref.rvar), 1e-6);
  }
}

TEST(SyncBatchNorm, SlicesWithSummedSumsEqualTheWholeBatch) {
  expect_slices_equal_whole(4, 9, {3, 0, 4});     // spatial, with an empty slice in the middle
  expect_slices_equal_whole(7, 1, {2, 2, 1, 0});  // 1-D, the last slice empty
  expect_slices_equal_whole(3, 16, {1, 1});       // one sample per slice
}

// The variance is the two-pass one: data far from 0 with a small spread keeps its variance,
// where E[x^2] - mean^2 in float would lose it.
TEST(SyncBatchNorm, VarianceIsTwoPassAccurateFarFromZero) {
  auto be = make_cpu_backend();
  const int n = 64, c = 1, spatial = 16;
  auto x = random_vector(n * spatial, 41, -1e-2f, 1e-2f);
  for (auto& v : x) v += 1000.0f;
  std::vector<float> dy(x.size(), 0.0f), gamma{1.0f}, beta{0.0f};
  // Momentum 0: the running variance is the batch's.
  const std::vector<Slice> s = run_slices(*be, {20, 0, 44}, c, spatial, x, dy, gamma, beta, 0.0f);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= double(x.size());
  for (float v : x) var += (v - mean) * (v - mean);
  var /= double(x.size());
  EXPECT_NEAR(s[0].rvar[0], var, 1e-3 * var);
  EXPECT_NEAR(s[0].rmean[0], mean, 1e-4);
}

namespace {

// One rank (the sums are already complete); counts the sums it is asked for.
class OneRank final : public Communicator {
 public:
  std::string name() const override { return "one rank"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(float*, std::size_t) override { ++sums; }
  void allreduce_sum(double*, std::size_t) override { ++sums; }
  void broadcast(void*, std::size_t, int) override {}
  void barrier() override {}
  void allgather(const float* s, float* r, std::size_t n) override { std::copy(s, s + n, r); }
  void reduce_scatter_sum(const float* s, float* r, std::size_t n) override {
    std::copy(s, s + n, r);
  }
  int sums = 0;
};

}  // namespace

TEST(SyncBatchNormGradient, TrainingModeThroughGlobalStatistics) {
  auto be = make_cpu_backend();
  OneRank one;
  for (const Shape& in : {Shape{3, 3, 3}, Shape{5}}) {
    SCOPED_TRACE(in.str());
    LayerHarness h(make_sync_batch_norm("bn", in, 0.9f, 1e-5f, Activation::none, &one), 4, *be, 5);
    EXPECT_TRUE(h.layer().collective());
    check_gradients(h, random_vector(h.in_count(), 12), {1e-2, 3e-2, 3e-3});
  }
}

TEST(SyncBatchNormLayer, ThreeSumsPerTrainingStepNoneInInference) {
  auto be = make_cpu_backend();
  OneRank one;
  LayerHarness h(make_sync_batch_norm("bn", Shape{2, 2, 2}, 0.9f, 1e-5f, Activation::relu, &one), 3,
                 *be);
  EXPECT_EQ(h.layer().kind(), "batch_norm sync +relu");
  const auto x = random_vector(h.in_count(), 51);
  h.backward(x, random_vector(h.out_count(), 52));  // a forward and a backward
  EXPECT_EQ(one.sums, 3);
  h.ctx().training = false;
  const auto y = h.forward(x);
  EXPECT_EQ(one.sums, 3);
  // Inference: the running statistics (after one update from the batch), ReLU applied.
  const auto& p = h.params();  // gamma, beta, running mean, running variance
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t ch = (i / 4) % 2;
    const double v = (x[i] - p[2][ch]) / std::sqrt(p[3][ch] + 1e-5) * p[0][ch] + p[1][ch];
    EXPECT_NEAR(y[i], std::max(v, 0.0), 1e-5);
  }
  // Its parameters and state are named as the per-rank layer's (checkpoints load either way).
  const auto mine = h.layer().param_specs();
  const auto theirs =
      make_batch_norm("bn", Shape{2, 2, 2}, 0.9f, 1e-5f, Activation::relu)->param_specs();
  ASSERT_EQ(mine.size(), theirs.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].name, theirs[i].name);
    EXPECT_EQ(mine[i].shape, theirs[i].shape);
    EXPECT_EQ(mine[i].role, theirs[i].role);
  }
}
