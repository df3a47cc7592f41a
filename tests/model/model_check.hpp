// Whole-model comparison of a candidate backend (the GPU; in CI the CPU's TF32 emulation) with the
// CPU reference, in three parts (docs/gpu-validation.md#the-error-model):
//   1. teacher_forced: each candidate layer is fed the reference's input, output and output
//      gradient, so no rounding difference propagates and no ReLU or max-pool choice flips
//      between layers; each layer's output, input gradient and parameter gradients must meet
//      the per-op bounds of tests/cuda/error_model.hpp.
//   2. end_to_end: logits and loss of the whole forward pass. ReLU and max are 1-Lipschitz, so a
//      flip in the forward pass moves a value only by the rounding that caused it; the bound is
//      the spread of the CPU's own emulations of the candidate's arithmetic (TF32 rounded both
//      ways, or FP32 parameters perturbed at the Winograd allowance), times kSpread. The loss is
//      2-Lipschitz in the largest logit change (its gradient, softmax - one-hot, has l1 norm <= 2).
//      Gradients are not compared end to end: a flip moves a whole gradient term.
//   3. loss_curve: a few SGD steps; each step's loss within kSpread times the emulations'
//      largest deviation so far, and never below step 0's end-to-end bound.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/error_model.hpp"
#include "distnet/backend.hpp"
#include "distnet/model.hpp"
#include "ops/gradcheck.hpp"

namespace distnet::testkit {

// How far a candidate may stray from the reference, in multiples of the emulations' spread.
inline constexpr double kSpread = 4;

inline Buffer device_copy(Backend& be, const void* host, std::size_t bytes) {
  Buffer b = be.allocate(std::max<std::size_t>(bytes, 4));
  be.upload(b.data(), host, bytes);
  return b;
}
inline std::vector<float> host_copy(Backend& be, const float* p, std::size_t count) {
  std::vector<float> h(count);
  be.download(h.data(), p, count * sizeof(float));
  return h;
}

struct Batch {
  int n = 0;
  std::vector<float> x;
  std::vector<std::int32_t> labels;
  std::vector<std::uint32_t> ids;
  std::uint64_t seed = 7;
  std::uint32_t step = 2;
};

inline Batch make_batch(const ModelConfig& mc, int n, std::uint32_t stream) {
  Batch b;
  b.n = n;
  b.x = random_vector(std::int64_t(n) * mc.input.numel(), stream, 0.0f, 1.0f);
  for (int i = 0; i < n; ++i) {
    b.labels.push_back((i * 7 + int(stream)) % mc.classes);
    b.ids.push_back(std::uint32_t(1000 * stream + 10 * i));
  }
  return b;
}

// A batch's ids and labels on a backend's device, and the step context that points at them.
class DeviceBatch {
 public:
  DeviceBatch(Backend& be, const Batch& b)
      : ids_(device_copy(be, b.ids.data(), b.ids.size() * 4)),
        labels_(device_copy(be, b.labels.data(), b.labels.size() * 4)),
        x_(device_copy(be, b.x.data(), b.x.size() * 4)) {
    ctx_ =
        StepContext{true, b.seed, b.step, static_cast<const std::uint32_t*>(ids_.data()), b.n, b.n};
  }
  const StepContext& ctx() const { return ctx_; }
  const std::int32_t* labels() const { return static_cast<const std::int32_t*>(labels_.data()); }
  const float* x() const { return static_cast<const float*>(x_.data()); }

 private:
  Buffer ids_, labels_, x_;
  StepContext ctx_;
};

struct Check {
  std::string what;
  Figures f;
  Bounds b;
  bool pass() const { return within(f, b); }
};

inline void print(const Check& c) {
  std::printf("  %-28s norm-wise %9.3g (bound %9.3g)  per element %9.3g (bound %9.3g)%s\n",
              c.what.c_str(), c.f.normwise, c.b.normwise, c.f.per_element, c.b.per_element,
              c.pass() ? "" : "  FAILS");
}

// What a layer computes, for its bounds: products (conv, dense) with their term counts, or
// FP32 without long products.
struct LayerTerms {
  bool products = false, transforms = false, exact_or_short = false;
  std::int64_t y = 0, dx = 0, dw = 0, db = 0;
};
inline LayerTerms layer_terms(const Layer& l, int n) {
  LayerTerms t;
  const std::string k = l.kind();
  const bool conv = k.rfind("conv2d", 0) == 0, dense = k.rfind("dense", 0) == 0;
  if (!conv && !dense) {
    // Pooling, dropout, flatten: exact, or sums of a few FP32 terms.
    t.exact_or_short = k.rfind("batch_norm", 0) != 0;
    t.y = t.dx = 64;
    return t;
  }
  const Shape w = l.param_specs().at(0).shape;  // OIHW or (out, in)
  const std::int64_t out_channels = w[0], in_per_sample = l.input_shape().numel();
  const std::int64_t in_channels = conv ? l.input_shape()[0] : in_per_sample;
  t.products = true;
  t.y = w.numel() / out_channels;
  t.dx = w.numel() / in_channels;
  t.dw = t.db = std::int64_t(n) * (l.output_shape().numel() / out_channels);
  t.transforms = conv && k.find(" s1 ") != std::string::npos && w[2] > 1;
  return t;
}

// Compares one result: products against their magnitude, other ops by the older figures.
inline Check judge_result(const std::string& what, Arith a, const LayerTerms& t, std::int64_t terms,
                          bool is_sum, const std::vector<float>& got, const std::vector<float>& ref,
                          const std::vector<float>& mag) {
  if (!t.products && !t.exact_or_short) return {what, floor_figures(got, ref), kFp32OpBounds};
  const double pe =
      !t.products || is_sum ? sum_bound(terms) : product_bound(a, terms, t.transforms);
  return {what, product_figures(got, ref, mag), product_bounds(pe, ref, mag)};
}

// Part 1. `ref` and `mag` are models on the CPU backend with the same configuration; `mag`'s
// parameters are overwritten with the absolute values of `ref`'s (it computes magnitudes).
// `cand` may be on any backend; its parameters are its own (a test may make one layer wrong).
inline std::vector<Check> teacher_forced(Model& ref, Model& mag, Model& cand, Arith a,
                                         const Batch& b) {
  Backend& cpu = ref.backend();
  Backend& dev = cand.backend();
  const int n = b.n;
  for (std::int64_t i = 0; i < ref.flat_size(); ++i)
    mag.param_data()[i] = std::abs(ref.param_data()[i]);
  const StepContext ctx{true, b.seed, b.step, b.ids.data(), n, n};
  const DeviceBatch db(dev, b);
  const auto& layers = ref.layers();
  const std::size_t count = layers.size();
  // Layer by layer, each fed its predecessor's output: sequences only (graphs: part 2 below).
  for (std::size_t i = 0; i < count; ++i)
    DISTNET_CHECK(ref.inputs(i) == std::vector<int>{int(i) - 1},
                  "teacher_forced checks sequences; layer " + layers[i]->name() + " is a join");
  auto numel = [n](const Shape& s) { return std::size_t(n) * std::size_t(s.numel()); };

  // The reference pass, keeping every layer's input, output and output gradient.
  std::vector<std::vector<float>> xs(count + 1), ys(count), dys(count), dxs(count);
  xs[0] = b.x;
  for (std::size_t i = 0; i < count; ++i) {
    ys[i].resize(numel(layers[i]->output_shape()));
    layers[i]->forward(ctx, n, xs[i].data(), ys[i].data());
    xs[i + 1] = ys[i];
  }
  const int classes = int(layers.back()->output_shape().numel());
  std::vector<float> dlogits(ys.back().size());
  double stats[3] = {0, 0, 0};
  cpu.softmax_xent(n, classes, ys.back().data(), b.labels.data(), 1.0f / float(n), dlogits.data(),
                   stats);
  dys[count - 1] = dlogits;
  for (std::size_t i = count; i-- > 0;) {
    std::vector<float> dy = dys[i];
    if (i > 0) dxs[i].resize(numel(layers[i]->input_shape()));
    layers[i]->backward(ctx, n, xs[i].data(), ys[i].data(), dy.data(),
                        i > 0 ? dxs[i].data() : nullptr);
    if (i > 0) dys[i - 1] = dxs[i];
  }

  std::vector<Check> checks;
  for (std::size_t i = 0; i < count; ++i) {
    Layer& rl = *layers[i];
    Layer& ml = *mag.layers()[i];
    Layer& cl = *cand.layers()[i];
    const LayerTerms t = layer_terms(rl, n);
    const bool has_params = !rl.param_specs().empty();
    // Magnitudes: the layer on absolute values (ReLU masks from the reference's output).
    const std::vector<float> ax = abs_of(xs[i]);
    std::vector<float> my(ys[i].size()), mdx(i > 0 ? xs[i].size() : 0), ady = abs_of(dys[i]);
    ml.forward(ctx, n, ax.data(), my.data());
    if (has_params)
      ml.backward(ctx, n, ax.data(), ys[i].data(), ady.data(), i > 0 ? mdx.data() : nullptr);
    else
      rl.backward(ctx, n, xs[i].data(), ys[i].data(), ady.data(), i > 0 ? mdx.data() : nullptr);

    // The candidate layer, teacher-forced.
    Buffer x = device_copy(dev, xs[i].data(), xs[i].size() * 4);
    Buffer y = dev.allocate(ys[i].size() * 4),
           yref = device_copy(dev, ys[i].data(), ys[i].size() * 4);
    Buffer dy = device_copy(dev, dys[i].data(), dys[i].size() * 4);
    Buffer dx = dev.allocate(std::max<std::size_t>(xs[i].size() * 4, 4));
    cl.forward(db.ctx(), n, static_cast<const float*>(x.data()), static_cast<float*>(y.data()));
    checks.push_back(judge_result(rl.name() + " y", a, t, t.y, false,
                                  host_copy(dev, static_cast<const float*>(y.data()), ys[i].size()),
                                  ys[i], my));
    cl.backward(db.ctx(), n, static_cast<const float*>(x.data()),
                static_cast<const float*>(yref.data()), static_cast<float*>(dy.data()),
                i > 0 ? static_cast<float*>(dx.data()) : nullptr);
    if (i > 0) {
      std::vector<float> got = host_copy(dev, static_cast<const float*>(dx.data()), xs[i].size());
      std::vector<float> want = dxs[i], m = mdx;
      if (rl.kind().rfind("max_pool", 0) == 0) {
        // A window of equal values (all zeros after a ReLU) may send its gradient to any of
        // them; the ReLU before discards it wherever it lands. Compare where the input is not 0.
        for (std::size_t k = 0; k < got.size(); ++k)
          if (xs[i][k] == 0.0f) got[k] = want[k] = m[k] = 0.0f;
      }
      checks.push_back(judge_result(rl.name() + " dx", a, t, t.dx, false, got, want, m));
    }
    for (std::size_t e = 0; e < ref.params().size(); ++e) {
      const ParamEntry& pe = ref.params()[e];
      if (pe.layer != int(i)) continue;
      const auto off = std::size_t(pe.offset), len = std::size_t(pe.spec.shape.numel());
      const std::vector<float> want(ref.grad_data() + off, ref.grad_data() + off + len);
      const std::vector<float> m(mag.grad_data() + off, mag.grad_data() + off + len);
      const bool bias = pe.spec.role == ParamRole::bias;
      checks.push_back(judge_result("grad " + pe.spec.name, a, t, bias ? t.db : t.dw, bias,
                                    host_copy(dev, cand.grad_data() + off, len), want, m));
    }
  }
  return checks;
}

// Logits and mean loss of one forward pass on a model's own backend.
struct Outputs {
  std::vector<float> logits;
  double loss = 0;
};
inline Outputs outputs(Model& m, const Batch& b) {
  Backend& be = m.backend();
  const DeviceBatch d(be, b);
  const float* z = m.forward(d.ctx(), b.n, d.x());
  const int classes = m.config().classes;
  Outputs o;
  o.logits = host_copy(be, z, std::size_t(b.n) * classes);
  Buffer dl = be.allocate(o.logits.size() * 4);
  Buffer stats = be.allocate(3 * sizeof(double));
  be.fill_zero(stats.data(), 3 * sizeof(double));
  be.softmax_xent(b.n, classes, z, d.labels(), 1.0f, static_cast<float*>(dl.data()),
                  static_cast<double*>(stats.data()));
  double s[3];
  be.download(s, stats.data(), sizeof s);
  o.loss = s[0] / b.n;
  return o;
}

// Part 2's figures: the logits' norm-wise difference, and the loss difference over max |logit|
// (the loss bound is then twice the logits' bound).
struct EndToEnd {
  double logits = 0, loss = 0;
};
inline EndToEnd end_to_end(const Outputs& got, const Outputs& ref) {
  const double scale = max_abs(ref.logits);
  return {normwise_error(got.logits, ref.logits), std::abs(got.loss - ref.loss) / scale};
}
inline EndToEnd spread_of(const std::vector<Outputs>& emulations, const Outputs& ref) {
  EndToEnd s;
  for (const Outputs& e : emulations) {
    const EndToEnd f = end_to_end(e, ref);
    s.logits = std::max(s.logits, kSpread * f.logits);
  }
  s.loss = 2 * s.logits;
  return s;
}

// Part 3: mean loss of each of `steps` SGD steps, each on its own batch.
inline std::vector<double> loss_curve(Model& m, int steps, int n, const SgdParams& p) {
  Backend& be = m.backend();
  std::vector<double> curve;
  Buffer stats = be.allocate(3 * sizeof(double));
  for (int s = 0; s < steps; ++s) {
    Batch b = make_batch(m.config(), n, std::uint32_t(50 + s));
    b.step = std::uint32_t(s);
    const DeviceBatch d(be, b);
    const float* z = m.forward(d.ctx(), n, d.x());
    be.fill_zero(stats.data(), 3 * sizeof(double));
    be.softmax_xent(n, m.config().classes, z, d.labels(), 1.0f / float(n), m.dlogits(),
                    static_cast<double*>(stats.data()));
    m.backward(d.ctx(), n, d.x());
    be.sgd_update(m.flat_size(), m.param_data(), m.grad_data(), m.momentum_data(), p);
    double st[3];
    be.download(st, stats.data(), sizeof st);
    curve.push_back(st[0] / n);
  }
  return curve;
}

// Each step's bound: kSpread times the largest deviation of an emulation's curve up to that
// step, and at least `floor` (step 0's end-to-end loss bound, in loss units).
inline std::vector<double> curve_bounds(const std::vector<std::vector<double>>& emulations,
                                        const std::vector<double>& ref, double floor) {
  std::vector<double> b(ref.size(), floor);
  double worst = 0;
  for (std::size_t s = 0; s < ref.size(); ++s) {
    for (const auto& e : emulations) worst = std::max(worst, std::abs(e[s] - ref[s]));
    b[s] = std::max(floor, kSpread * worst);
  }
  return b;
}

// Transposes the spatial axes of every kernel of a conv layer's weight (OIHW -> OIWH) in a
// model's parameters on its device: a wrong layer for the harness to catch.
inline void transpose_conv_weight(Model& m, const std::string& param) {
  for (const ParamEntry& e : m.params()) {
    if (e.spec.name != param) continue;
    const auto len = std::size_t(e.spec.shape.numel());
    const int k = int(e.spec.shape[2]);
    std::vector<float> w = host_copy(m.backend(), m.param_data() + e.offset, len), t(len);
    for (std::size_t p = 0; p < len / std::size_t(k * k); ++p)
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < k; ++j)
          t[p * k * k + std::size_t(j * k + i)] = w[p * k * k + i * k + j];
    m.backend().upload(m.param_data() + e.offset, t.data(), len * 4);
    return;
  }
  ADD_FAILURE() << "no parameter " << param;
}

}  // namespace distnet::testkit
