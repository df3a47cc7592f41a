// A finite-difference gradient checker for layers (after Caffe's GradientChecker): the scalar
// L = sum(y * r) for a fixed random r has dL/dy = r, so one backward pass gives the analytic
// gradient of every input and parameter, and central differences of L give the numeric one.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/layer.hpp"
#include "distnet/philox.hpp"

namespace distnet::testkit {

inline std::vector<float> random_vector(std::int64_t n, std::uint32_t stream, float lo = -1.f,
                                        float hi = 1.f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float u = philox_uniform(
        philox_block(1234, RngPurpose::synthetic, stream, 0, 0, std::uint32_t(i / 4)).v[i % 4]);
    v[static_cast<std::size_t>(i)] = lo + (hi - lo) * u;
  }
  return v;
}

// Owns a layer, its parameters (host, the CPU backend works on host memory) and a batch.
class LayerHarness {
 public:
  LayerHarness(std::unique_ptr<Layer> layer, int n, Backend& be, std::uint32_t seed_stream = 0)
      : layer_(std::move(layer)), n_(n), be_(be) {
    std::uint32_t s = seed_stream * 100;
    for (const ParamSpec& spec : layer_->param_specs()) {
      auto v = random_vector(spec.shape.numel(), ++s, -0.5f, 0.5f);
      if (spec.role == ParamRole::running_var || spec.role == ParamRole::gamma)
        for (auto& x : v) x = 1.0f + 0.5f * x;  // positive
      params_.push_back(std::move(v));
      grads_.emplace_back(static_cast<std::size_t>(spec.shape.numel()), 0.0f);
    }
    std::vector<float*> p, g;
    const auto specs = layer_->param_specs();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      p.push_back(params_[i].data());
      g.push_back(specs[i].trainable() ? grads_[i].data() : nullptr);
    }
    layer_->bind(be_, p, g);
    for (int i = 0; i < n; ++i) ids_.push_back(std::uint32_t(100 + 3 * i));
    ctx_ = StepContext{true, 99, 4, ids_.data()};
  }

  Layer& layer() { return *layer_; }
  StepContext& ctx() { return ctx_; }
  std::vector<std::vector<float>>& params() { return params_; }
  std::vector<std::vector<float>>& grads() { return grads_; }
  std::int64_t in_count() const { return n_ * layer_->input_shape().numel(); }
  std::int64_t out_count() const { return n_ * layer_->output_shape().numel(); }

  std::vector<float> forward(const std::vector<float>& x) {
    std::vector<float> y(static_cast<std::size_t>(out_count()));
    layer_->forward(ctx_, n_, x.data(), y.data());
    return y;
  }

  double objective(const std::vector<float>& x, const std::vector<float>& r) {
    const auto y = forward(x);
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += double(y[i]) * r[i];
    return l;
  }

  // Returns dL/dx; parameter gradients land in grads().
  std::vector<float> backward(const std::vector<float>& x, const std::vector<float>& r) {
    const auto y = forward(x);
    std::vector<float> dy = r, dx(static_cast<std::size_t>(in_count()), 0.0f);
    layer_->backward(ctx_, n_, x.data(), y.data(), dy.data(), dx.data());
    return dx;
  }

 private:
  std::unique_ptr<Layer> layer_;
  int n_;
  Backend& be_;
  std::vector<std::vector<float>> params_, grads_;
  std::vector<std::uint32_t> ids_;
  StepContext ctx_;
};

struct GradTolerance {
  double eps = 1e-2;   // finite-difference step
  double rtol = 2e-2;  // |a - n| <= atol + rtol * max(|a|, |n|)
  double atol = 2e-3;
};

// Checks dL/dx and dL/d(every trainable parameter) of the harness's layer at x.
inline void check_gradients(LayerHarness& h, std::vector<float> x, const GradTolerance& tol = {}) {
  const auto r = random_vector(h.out_count(), 777);
  const auto dx = h.backward(x, r);
  const auto grads = h.grads();  // copy: the numeric passes below re-run forward only
  auto compare = [&](const char* what, std::size_t i, double analytic, double numeric) {
    EXPECT_LE(std::abs(analytic - numeric),
              tol.atol + tol.rtol * std::max(std::abs(analytic), std::abs(numeric)))
        << h.layer().name() << " d/d" << what << "[" << i << "]: analytic " << analytic
        << ", numeric " << numeric;
  };
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float keep = x[i];
    x[i] = keep + float(tol.eps);
    const double lp = h.objective(x, r);
    x[i] = keep - float(tol.eps);
    const double lm = h.objective(x, r);
    x[i] = keep;
    compare("input", i, dx[i], (lp - lm) / (2 * tol.eps));
  }
  const auto specs = h.layer().param_specs();
  for (std::size_t p = 0; p < specs.size(); ++p) {
    if (!specs[p].trainable()) continue;
    auto& w = h.params()[p];
    for (std::size_t i = 0; i < w.size(); ++i) {
      const float keep = w[i];
      w[i] = keep + float(tol.eps);
      const double lp = h.objective(x, r);
      w[i] = keep - float(tol.eps);
      const double lm = h.objective(x, r);
      w[i] = keep;
      compare(specs[p].name.c_str(), i, grads[p][i], (lp - lm) / (2 * tol.eps));
    }
  }
}

}  // namespace distnet::testkit
