#include "distnet/model.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "distnet/philox.hpp"

namespace distnet {
namespace {

constexpr std::int64_t kAlign = 16;  // floats: 64 bytes, so every tensor starts on a cache line
std::int64_t align_up(std::int64_t v) {
  return (v + kAlign - 1) / kAlign * kAlign;
}

Tensor device_tensor(Backend& be, const Shape& shape) {
  const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(shape.numel());
  Tensor t(be.allocate(bytes), shape, DType::f32);
  be.fill_zero(t.view().raw(), bytes);
  return t;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Fills `out` (count floats) for one tensor. `stream` identifies the tensor, so values do not
// depend on where the tensor sits in the flat buffer.
void init_tensor(const ParamSpec& spec, const InitConfig& init, std::uint32_t stream, float* out) {
  const std::int64_t count = spec.shape.numel();
  switch (spec.role) {
    case ParamRole::bias:
    case ParamRole::beta:
    case ParamRole::running_mean:
      std::fill(out, out + count, 0.0f);
      return;
    case ParamRole::gamma:
    case ParamRole::running_var:
      std::fill(out, out + count, 1.0f);
      return;
    case ParamRole::weight:
      break;
  }
  for (std::int64_t b = 0; b * 4 < count; ++b) {
    const Philox4 r =
        philox_block(init.seed, RngPurpose::init, stream, 0, 0, static_cast<std::uint32_t>(b));
    float v[4];
    if (init.kind == InitConfig::Kind::xavier) {
      // MXNet Xavier, uniform, factor "avg": U(-s, s) with s = sqrt(magnitude / ((in + out) / 2)).
      const double s =
          std::sqrt(init.xavier_magnitude / (0.5 * double(spec.fan_in + spec.fan_out)));
      for (int j = 0; j < 4; ++j)
        v[j] = static_cast<float>((2.0 * philox_uniform(r.v[j]) - 1.0) * s);
    } else {
      // Box-Muller on two pairs of uniforms; u1 is shifted into (0, 1] so log() stays finite.
      for (int j = 0; j < 4; j += 2) {
        const double u1 = (static_cast<double>(r.v[j] >> 8) + 1.0) / 16777216.0;
        const double u2 = philox_uniform(r.v[j + 1]);
        const double rad = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
        v[j] = static_cast<float>(init.normal_sigma * rad * std::cos(th));
        v[j + 1] = static_cast<float>(init.normal_sigma * rad * std::sin(th));
      }
    }
    for (int j = 0; j < 4 && b * 4 + j < count; ++j) out[b * 4 + j] = v[j];
  }
}

}  // namespace

Model::Model(const ModelConfig& cfg, Backend& be, int max_batch, const LayerSplit& split)
    : Model(cfg, build_layers(cfg, split), be, max_batch, split) {}

Model::Model(const ModelConfig& cfg, std::vector<std::unique_ptr<Layer>> layers, Backend& be,
             int max_batch, const LayerSplit& split)
    : cfg_(cfg), be_(&be), max_batch_(max_batch), split_(split), layers_(std::move(layers)) {
  DISTNET_CHECK_USAGE(max_batch >= 1,
                      "batch size must be at least 1, got " + std::to_string(max_batch));
  // Backward order: the last layer's parameters first, so buckets fill front to back.
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    for (const ParamSpec& s : layers_[static_cast<std::size_t>(i)]->param_specs()) {
      if (s.trainable()) {
        params_.push_back({s, i, flat_size_});
        flat_size_ = align_up(flat_size_ + s.shape.numel());
      } else {
        state_.push_back({s, i, state_size_});
        state_size_ = align_up(state_size_ + s.shape.numel());
      }
    }
  }
  param_ = device_tensor(be, Shape{flat_size_});
  grad_ = device_tensor(be, Shape{flat_size_});
  momentum_ = device_tensor(be, Shape{flat_size_});
  state_buf_ = device_tensor(be, Shape{state_size_});

  // Rows per layer at the largest batch (a split model's middle layers hold the group's rows).
  std::int64_t widest = cfg.input.numel() * max_batch;
  StepContext most;
  most.rows = most.slice_rows = max_batch;
  int rows = max_batch;
  for (const auto& l : layers_) {
    rows = l->rows_out(most, rows);
    acts_.push_back(device_tensor(be, l->output_shape().with_batch(rows)));
    widest = std::max({widest, l->output_shape().numel() * rows});
  }
  for (auto& s : scratch_) s = device_tensor(be, Shape{widest});
  rows_.assign(layers_.size() + 1, 0);
  ids_.assign(layers_.size() + 1, nullptr);
  collective_ = std::any_of(layers_.begin(), layers_.end(),
                            [](const std::unique_ptr<Layer>& l) { return l->collective(); });

  // Hand each layer pointers into the flat buffers, in its param_specs() order.
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    std::vector<float*> p, g;
    for (const ParamSpec& s : layers_[i]->param_specs()) {
      const auto& list = s.trainable() ? params_ : state_;
      const auto e = std::find_if(list.begin(), list.end(),
                                  [&](const ParamEntry& x) { return x.spec.name == s.name; });
      if (s.trainable()) {
        p.push_back(param_data() + e->offset);
        g.push_back(grad_data() + e->offset);
      } else {
        p.push_back(state_data() + e->offset);
        g.push_back(nullptr);
      }
    }
    layers_[i]->bind(be, p, g);
  }
}

std::int64_t Model::device_bytes(const ModelConfig& cfg, int max_batch) {
  std::int64_t params = 0, state = 0, acts = 0, widest = cfg.input.numel();
  for (const auto& l : build_layers(cfg)) {
    for (const ParamSpec& s : l->param_specs())
      (s.trainable() ? params : state) += align_up(s.shape.numel());
    acts += l->output_shape().numel();
    widest = std::max(widest, l->output_shape().numel());
  }
  return std::int64_t(sizeof(float)) * (3 * params + state + max_batch * (acts + 2 * widest));
}

std::int64_t Model::num_trainable() const {
  std::int64_t n = 0;
  for (const auto& e : params_) n += e.spec.shape.numel();
  return n;
}

void Model::initialize(const InitConfig& init) {
  auto fill = [&](const std::vector<ParamEntry>& list, std::int64_t size, float* dst) {
    std::vector<float> host(static_cast<std::size_t>(size), 0.0f);
    for (const auto& e : list) {
      // Stream id from the layer index and the tensor's place in it: stable across layouts.
      const auto specs = layers_[static_cast<std::size_t>(e.layer)]->param_specs();
      const auto k = std::find_if(specs.begin(), specs.end(),
                                  [&](const ParamSpec& s) { return s.name == e.spec.name; }) -
                     specs.begin();
      const auto stream = static_cast<std::uint32_t>(e.layer * 16 + k);
      if (!e.spec.is_piece()) {
        init_tensor(e.spec, init, stream, host.data() + e.offset);
        continue;
      }
      // A piece: the whole tensor's values, so any split starts where one process does.
      ParamSpec whole = e.spec;
      whole.shape = e.spec.full;
      std::vector<float> all(static_cast<std::size_t>(whole.shape.numel()));
      init_tensor(whole, init, stream, all.data());
      extract_piece(e.spec.full, e.spec.axis, e.spec.begin, e.spec.shape[e.spec.axis], all.data(),
                    host.data() + e.offset);
    }
    be_->upload(dst, host.data(), sizeof(float) * host.size());
  };
  fill(params_, flat_size_, param_data());
  fill(state_, state_size_, state_data());
  be_->fill_zero(momentum_data(), sizeof(float) * static_cast<std::size_t>(flat_size_));
}

StepContext Model::layer_context(const StepContext& step, std::size_t layer) const {
  StepContext c = step;
  c.sample_ids = ids_[layer];
  return c;
}

const float* Model::forward(const StepContext& ctx, int n, const float* x,
                            const std::function<bool()>& cancel) {
  DISTNET_CHECK(n >= 0 && n <= max_batch_, "batch of " + std::to_string(n) +
                                               " exceeds the model's capacity of " +
                                               std::to_string(max_batch_));
  if (times_) times_->forward_ms.assign(layers_.size(), 0.0);
  if (n == 0 && !collective_) return acts_.back().data<float>();
  StepContext step = ctx;
  step.rows = n;
  if (step.slice_rows == 0) step.slice_rows = n;
  DISTNET_CHECK(step.slice_rows >= n && step.slice_rows <= max_batch_,
                "slice of " + std::to_string(n) + " rows padded to " +
                    std::to_string(step.slice_rows) + "; expected between them and " +
                    std::to_string(max_batch_));
  step_ = step;
  rows_[0] = n;
  ids_[0] = ctx.sample_ids;
  const float* in = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    // A collective model's passes (a split model's group, --sync-bn's ranks): no rank may leave
    // one half-way.
    if (cancel && !collective_ && cancel()) return nullptr;
    float* out = acts_[i].data<float>();
    const auto t0 = std::chrono::steady_clock::now();
    Timeline::Scope span(timeline_, Timeline::Track::compute, "forward ", layers_[i]->name(),
                         "forward");
    Layer& l = *layers_[i];
    const StepContext c = layer_context(step, i);
    rows_[i + 1] = l.rows_out(c, rows_[i]);
    if (rows_[i] > 0 || l.collective()) l.forward(c, rows_[i], in, out);
    ids_[i + 1] = l.ids_out(step, ids_[i]);
    if (times_) {
      be_->synchronize();
      times_->forward_ms[i] = ms_since(t0);
    }
    in = out;
  }
  return in;
}

bool Model::backward(const StepContext& ctx, int n, const float* x,
                     const std::function<void(int)>& on_layer_done,
                     const std::function<bool()>& cancel) {
  const int last = static_cast<int>(layers_.size()) - 1;
  if (times_) times_->backward_ms.assign(layers_.size(), 0.0);
  if (n == 0) {
    // An empty slice contributes nothing, but its rank still joins every collective (of a
    // collective model's passes too: those layers run below and overwrite their gradients).
    be_->fill_zero(grad_data(), sizeof(float) * static_cast<std::size_t>(flat_size_));
    if (!collective_) {
      if (on_layer_done)
        for (int i = last; i >= 0; --i) on_layer_done(i);
      return true;
    }
  }
  DISTNET_CHECK(!collective_ || (n == step_.rows && rows_[0] == n),
                "backward of a collective model must follow its forward with the same rows");
  float* dy = scratch_[0].data<float>();
  float* other = scratch_[1].data<float>();
  bool complete = true;
  for (int i = last; i >= 0; --i) {
    const auto idx = static_cast<std::size_t>(i);
    complete = complete && !(cancel && !collective_ && cancel());
    if (!complete) {  // abandoned: no more compute, but the same collectives as every peer
      if (on_layer_done) on_layer_done(i);
      continue;
    }
    const float* in = i == 0 ? x : acts_[idx - 1].data<float>();
    float* dx = i == 0 ? nullptr : other;
    const auto t0 = std::chrono::steady_clock::now();
    {
      Timeline::Scope span(timeline_, Timeline::Track::compute, "backward ", layers_[idx]->name(),
                           "backward");
      Layer& l = *layers_[idx];
      if (!collective_) {
        l.backward(ctx, n, in, acts_[idx].data<float>(), dy, dx);
      } else if (rows_[idx] > 0 || l.collective()) {
        l.backward(layer_context(step_, idx), rows_[idx], in, acts_[idx].data<float>(), dy, dx);
      }
    }
    if (times_) {
      be_->synchronize();
      times_->backward_ms[idx] = ms_since(t0);
    }
    if (on_layer_done) on_layer_done(i);
    std::swap(dy, other);
  }
  return complete;
}

}  // namespace distnet
