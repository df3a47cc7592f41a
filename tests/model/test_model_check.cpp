// The whole-model check of the GPU tests (tests/model/model_check.hpp) run here with the CPU's
// TF32 emulation as the candidate, so its comparison logic is exercised on every build: a correct
// candidate passes the teacher-forced per-layer bounds, the end-to-end logits and loss bound and
// the training-curve bound; a wrong layer (a transposed conv weight) or a wrong backend op (the
// conv bias gradient dropped) fails them.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "model/model_check.hpp"

using namespace distnet;
using namespace distnet::testkit;

namespace {

std::unique_ptr<Backend> cpu(CpuOptions::Math m = CpuOptions::Math::fp32,
                             Tf32Rounding r = Tf32Rounding::nearest_away) {
  return cpu_reference(m, r);
}

// AlexNet on a small input: every layer kind of the GPU test (conv 11x11 s4, 5x5 and 3x3
// stride 1, max-pool, dense, dropout), small enough for CI.
ModelConfig small_alexnet() {
  ModelConfig mc;
  mc.name = "alexnet";
  mc.input = Shape{1, 96, 96};
  return mc;
}
constexpr int kBatch = 4;

std::unique_ptr<Model> model(const ModelConfig& mc, Backend& be) {
  auto m = std::make_unique<Model>(mc, be, kBatch);
  m->initialize({});
  return m;
}

std::set<std::string> failing(const std::vector<Check>& checks) {
  std::set<std::string> f;
  for (const Check& c : checks) {
    print(c);
    if (!c.pass()) f.insert(c.what);
  }
  return f;
}

TEST(ModelCheck, TeacherForcedLayersPassTf32EmulationAndCatchAWrongLayer) {
  const ModelConfig mc = small_alexnet();
  auto ref_be = cpu(), mag_be = cpu();
  auto ref = model(mc, *ref_be), mag = model(mc, *mag_be);
  const Batch b = make_batch(mc, kBatch, 1);
  for (Tf32Rounding r : {Tf32Rounding::nearest_away, Tf32Rounding::truncate}) {
    auto be = cpu(CpuOptions::Math::tf32, r);
    auto cand = model(mc, *be);
    std::printf("teacher-forced, TF32 emulation (%s):\n",
                r == Tf32Rounding::nearest_away ? "nearest" : "truncated");
    EXPECT_TRUE(failing(teacher_forced(*ref, *mag, *cand, Arith::tf32, b)).empty());
  }
  // conv3's kernels transposed: its output and input gradient are wrong; its weight gradient,
  // computed from the forced input and output gradient, is not, and no other layer is.
  auto be = cpu(CpuOptions::Math::tf32);
  auto wrong = model(mc, *be);
  transpose_conv_weight(*wrong, "conv3.weight");
  std::printf("teacher-forced, conv3's weight transposed:\n");
  EXPECT_EQ(failing(teacher_forced(*ref, *mag, *wrong, Arith::tf32, b)),
            (std::set<std::string>{"conv3 y", "conv3 dx"}));
}

TEST(ModelCheck, EndToEndLogitsAndLossWithinTheEmulationsSpread) {
  const ModelConfig mc = small_alexnet();
  auto ref_be = cpu(), near_be = cpu(CpuOptions::Math::tf32),
       trunc_be = cpu(CpuOptions::Math::tf32, Tf32Rounding::truncate);
  auto ref = model(mc, *ref_be), near = model(mc, *near_be), trunc = model(mc, *trunc_be);
  const Batch b = make_batch(mc, kBatch, 2);
  const Outputs r = outputs(*ref, b);
  // Here the spread comes from one emulation (truncation, the wider) and the other is the
  // candidate; the GPU test takes both into the spread.
  const EndToEnd bound = spread_of({outputs(*trunc, b)}, r);
  const EndToEnd f = end_to_end(outputs(*near, b), r);
  std::printf(
      "nearest TF32 vs FP32: logits %.3g (bound %.3g), loss %.3g (bound %.3g) of max|logit|\n",
      f.logits, bound.logits, f.loss, bound.loss);
  EXPECT_LE(f.logits, bound.logits);
  EXPECT_LE(f.loss, bound.loss);
  EXPECT_GT(bound.logits, 0.0);

  auto wrong_be = cpu(CpuOptions::Math::tf32);
  auto wrong = model(mc, *wrong_be);
  transpose_conv_weight(*wrong, "conv3.weight");
  const EndToEnd w = end_to_end(outputs(*wrong, b), r);
  std::printf("conv3 transposed vs FP32: logits %.3g (bound %.3g), loss %.3g (bound %.3g)\n",
              w.logits, bound.logits, w.loss, bound.loss);
  EXPECT_GT(w.logits, bound.logits);
}

// A backend with one wrong op: convolutions whose bias gradient is never written (zero).
class DroppedConvBiasGradient final : public Backend {
 public:
  explicit DroppedConvBiasGradient(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  Device device() const override { return in_->device(); }
  std::string description() const override { return "wrong: " + in_->description(); }
  Buffer allocate(std::size_t bytes) override { return in_->allocate(bytes); }
  void upload(void* d, const void* s, std::size_t b) override { in_->upload(d, s, b); }
  void download(void* d, const void* s, std::size_t b) override { in_->download(d, s, b); }
  void fill_zero(void* d, std::size_t b) override { in_->fill_zero(d, b); }
  void copy(void* d, const void* s, std::size_t b) override { in_->copy(d, s, b); }
  void synchronize() override { in_->synchronize(); }
  const void* stage(const void* h, std::size_t b, Buffer& s) override {
    return in_->stage(h, b, s);
  }
  std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dGeom& g) override {
    struct Op final : Conv2dOp {
      std::unique_ptr<Conv2dOp> op;
      int c_out;
      void forward(int n, const float* x, const float* w, const float* b, float* y) override {
        op->forward(n, x, w, b, y);
      }
      void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db) override {
        op->backward(n, x, w, dy, dx, dw, db);
        if (db) std::fill(db, db + c_out, 0.0f);
      }
    };
    auto o = std::make_unique<Op>();
    o->op = in_->make_conv2d(g);
    o->c_out = g.c_out;
    return o;
  }
  std::unique_ptr<MaxPoolOp> make_max_pool(const PoolGeom& g) override {
    return in_->make_max_pool(g);
  }
  std::unique_ptr<AvgPoolOp> make_avg_pool(const PoolGeom& g, bool count_padding) override {
    return in_->make_avg_pool(g, count_padding);
  }
  std::unique_ptr<DenseOp> make_dense(int i, int o) override { return in_->make_dense(i, o); }
  std::unique_ptr<BatchNormOp> make_batch_norm(int c, int s, float e) override {
    return in_->make_batch_norm(c, s, e);
  }
  std::unique_ptr<SyncBatchNormOp> make_sync_batch_norm(int c, int s, float e) override {
    return in_->make_sync_batch_norm(c, s, e);
  }
  void adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x,
                                 float* y) override {
    in_->adaptive_avg_pool_forward(n, g, x, y);
  }
  void adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy,
                                  float* dx) override {
    in_->adaptive_avg_pool_backward(n, g, dy, dx);
  }
  void add(std::int64_t c, const float* a, const float* b, float* y) override {
    in_->add(c, a, b, y);
  }
  void copy_rows(std::int64_t r, std::int64_t f, const float* s, std::int64_t ss, float* d,
                 std::int64_t ds) override {
    in_->copy_rows(r, f, s, ss, d, ds);
  }
  void relu_forward(std::int64_t c, const float* x, float* y) override {
    in_->relu_forward(c, x, y);
  }
  void relu_backward(std::int64_t c, const float* y, const float* dy, float* dx) override {
    in_->relu_backward(c, y, dy, dx);
  }
  void dropout_forward(int n, std::int64_t per, float p, const DropoutKey& k,
                       const std::uint32_t* ids, const float* x, float* y) override {
    in_->dropout_forward(n, per, p, k, ids, x, y);
  }
  void dropout_backward(int n, std::int64_t per, float p, const DropoutKey& k,
                        const std::uint32_t* ids, const float* dy, float* dx) override {
    in_->dropout_backward(n, per, p, k, ids, dy, dx);
  }
  void softmax_xent(int n, int classes, const float* z, const std::int32_t* labels, float scale,
                    float* dz, double* stats, float eps) override {
    in_->softmax_xent(n, classes, z, labels, scale, dz, stats, eps);
  }
  void count_nonfinite(std::int64_t c, const float* x, double* acc) override {
    in_->count_nonfinite(c, x, acc);
  }
  void adamw_update(std::int64_t c, float* w, const float* g, float* m, float* v,
                    const AdamWParams& p) override {
    in_->adamw_update(c, w, g, m, v, p);
  }
  void lars_sums(int n, const LarsSegment* s, const float* w, const float* g,
                 double* sums) override {
    in_->lars_sums(n, s, w, g, sums);
  }
  void lars_update(int n, const LarsSegment* s, const double* sums, float* w, const float* g,
                   float* v, const LarsParams& p) override {
    in_->lars_update(n, s, sums, w, g, v, p);
  }
  void sum_squares(std::int64_t c, const float* x, double* acc) override {
    in_->sum_squares(c, x, acc);
  }
  void scale(std::int64_t c, float a, float* x) override { in_->scale(c, a, x); }
  void sgd_update(std::int64_t c, float* w, const float* g, float* v, const SgdParams& p) override {
    in_->sgd_update(c, w, g, v, p);
  }
  void resize_normalize(int n, const ResizeNormalize& s, const std::uint8_t* im,
                        float* out) override {
    in_->resize_normalize(n, s, im, out);
  }

 private:
  std::unique_ptr<Backend> in_;
};

TEST(ModelCheck, LossCurveTracksTheReferenceAndAWrongBackendLeavesIt) {
  const ModelConfig mc = small_alexnet();
  const SgdParams p{0.05f, 0.9f, 0.0f};
  constexpr int kSteps = 6;
  auto curve = [&](std::unique_ptr<Backend> be) {
    auto m = model(mc, *be);
    return loss_curve(*m, kSteps, kBatch, p);
  };
  const auto ref = curve(cpu());
  const auto near = curve(cpu(CpuOptions::Math::tf32));
  const auto trunc = curve(cpu(CpuOptions::Math::tf32, Tf32Rounding::truncate));
  const auto wrong = curve(std::make_unique<DroppedConvBiasGradient>(cpu(CpuOptions::Math::tf32)));
  // The floor: step 0's end-to-end loss bound (2 x the logits' spread, in loss units).
  auto ref_be = cpu(), near_be = cpu(CpuOptions::Math::tf32);
  auto r0 = model(mc, *ref_be), n0 = model(mc, *near_be);
  Batch b0 = make_batch(mc, kBatch, 50);
  b0.step = 0;
  const Outputs o = outputs(*r0, b0);
  const double floor = spread_of({outputs(*n0, b0)}, o).loss * max_abs(o.logits);
  const auto bound = curve_bounds({near}, ref, floor);
  bool wrong_left = false;
  for (int s = 0; s < kSteps; ++s) {
    std::printf(
        "step %d: loss fp32 %.7f, tf32 nearest %.7f, truncated %.7f (|diff| %.3g, bound "
        "%.3g), bias gradient dropped %.7f (|diff| %.3g)\n",
        s, ref[s], near[s], trunc[s], std::abs(trunc[s] - ref[s]), bound[s], wrong[s],
        std::abs(wrong[s] - ref[s]));
    EXPECT_LE(std::abs(trunc[s] - ref[s]), bound[s]) << "step " << s;
    wrong_left = wrong_left || std::abs(wrong[s] - ref[s]) > bound[s];
  }
  EXPECT_TRUE(wrong_left) << "a backend without conv bias gradients tracked the reference";
}

}  // namespace
