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

// Each layer's inputs: its own list, or the layer before it (the input for the first).
std::vector<std::vector<int>> resolve_inputs(const std::vector<std::unique_ptr<Layer>>& layers) {
  std::vector<std::vector<int>> in;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = *layers[i];
    in.push_back(l.inputs().empty() ? std::vector<int>{static_cast<int>(i) - 1} : l.inputs());
    DISTNET_CHECK(in.back().size() == l.input_shapes().size(),
                  "layer " + l.name() + " has " + std::to_string(in.back().size()) +
                      " inputs wired, expected " + std::to_string(l.input_shapes().size()));
    for (std::size_t k = 0; k < in.back().size(); ++k) {
      const int j = in.back()[k];
      DISTNET_CHECK(j >= -1 && j < static_cast<int>(i),
                    "layer " + l.name() + " takes the output of layer " + std::to_string(j) +
                        ", which does not come before it");
      const Shape& given = j < 0 ? Shape{} : layers[std::size_t(j)]->output_shape();
      DISTNET_CHECK(j < 0 || given == l.input_shapes()[k],
                    "layer " + l.name() + " input " + std::to_string(k) + " is " + given.str() +
                        ", expected " + l.input_shapes()[k].str());
    }
  }
  return in;
}

// Which buffer holds the gradient of each layer's output during backward. Layers run backward in
// reverse schedule order; the gradient of output j is born when the last layer that reads j runs
// backward and dies once layer j has run. A layer whose input already has a gradient (the output
// feeds several layers) writes its part to a temporary buffer and adds it in.
struct GradPlan {
  int slots = 0;
  std::vector<int> slot;               // per layer
  std::vector<std::vector<int>> temp;  // per layer and input: -1, or the temporary slot
};

GradPlan plan_gradients(const std::vector<std::vector<int>>& in) {
  GradPlan p;
  const std::size_t n = in.size();
  p.slot.assign(n, -1);
  p.temp.resize(n);
  std::vector<bool> busy;
  auto take = [&] {
    for (std::size_t k = 0; k < busy.size(); ++k)
      if (!busy[k]) {
        busy[k] = true;
        return static_cast<int>(k);
      }
    busy.push_back(true);
    return static_cast<int>(busy.size()) - 1;
  };
  if (n == 0) return p;
  p.slot[n - 1] = take();  // d(loss)/d(logits)
  for (std::size_t i = n; i-- > 0;) {
    p.temp[i].assign(in[i].size(), -1);
    for (std::size_t k = 0; k < in[i].size(); ++k) {
      const int j = in[i][k];
      if (j < 0) continue;  // no gradient for the model's input
      if (p.slot[std::size_t(j)] < 0)
        p.slot[std::size_t(j)] = take();
      else
        p.temp[i][k] = take();
    }
    for (int t : p.temp[i])
      if (t >= 0) busy[std::size_t(t)] = false;
    busy[std::size_t(p.slot[i])] = false;
  }
  p.slots = static_cast<int>(busy.size());
  return p;
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
  layer_range_.assign(layers_.size(), {0, 0});
  for (const ParamEntry& e : params_) {  // a layer's tensors are consecutive in the buffers
    auto& r = layer_range_[std::size_t(e.layer)];
    const std::int64_t end = e.offset + e.spec.shape.numel();
    r = r.first == r.second ? std::pair{e.offset, end}
                            : std::pair{std::min(r.first, e.offset), std::max(r.second, end)};
  }
  param_ = device_tensor(be, Shape{flat_size_});
  grad_ = device_tensor(be, Shape{flat_size_});
  momentum_ = device_tensor(be, Shape{flat_size_});
  state_buf_ = device_tensor(be, Shape{state_size_});

  in_ = resolve_inputs(layers_);
  collective_ = is_split();
  for (const auto& l : layers_) collective_ = collective_ || l->collective();

  // Rows per layer at the largest batch (a split model's middle layers hold the group's rows).
  std::int64_t widest = cfg.input.numel() * max_batch;
  StepContext most;
  most.rows = most.slice_rows = max_batch;
  std::vector<int> rows;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const int j = in_[i][0];
    const Layer& l = *layers_[i];
    rows.push_back(l.rows_out(most, j < 0 ? max_batch : rows[std::size_t(j)]));
    acts_.push_back(device_tensor(be, l.output_shape().with_batch(rows.back())));
    widest = std::max(widest, l.output_shape().numel() * rows.back());
  }
  const GradPlan plan = plan_gradients(in_);
  for (int k = 0; k < plan.slots; ++k) slots_.push_back(device_tensor(be, Shape{widest}));
  grad_slot_ = plan.slot;
  temp_slot_ = plan.temp;
  rows_.assign(layers_.size(), 0);
  ids_.assign(layers_.size(), nullptr);

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

std::vector<std::string> optimizer_slot_names(const std::string& optimizer) {
  if (optimizer == "sgd" || optimizer == "lars") return {"momentum"};
  if (optimizer == "adamw") return {"exp_avg", "exp_avg_sq"};
  throw UsageError("--optimizer must be sgd, lars or adamw, got '" + optimizer + "'");
}

void Model::set_optimizer(const std::string& name) {
  if (name == optimizer_) return;
  std::vector<std::string> names = optimizer_slot_names(name);
  extra_slots_.clear();
  for (std::size_t k = 1; k < names.size(); ++k)
    extra_slots_.push_back(device_tensor(*be_, Shape{flat_size_}));
  optimizer_ = name;
  slot_names_ = std::move(names);
  for (std::size_t k = 0; k < slot_names_.size(); ++k)
    be_->fill_zero(slot_data(k), sizeof(float) * static_cast<std::size_t>(flat_size_));
}

std::int64_t Model::device_bytes(const ModelConfig& cfg, int max_batch, int state_slots) {
  std::int64_t params = 0, state = 0, acts = 0, widest = cfg.input.numel();
  const auto layers = build_layers(cfg);
  for (const auto& l : layers) {
    for (const ParamSpec& s : l->param_specs())
      (s.trainable() ? params : state) += align_up(s.shape.numel());
    acts += l->output_shape().numel();
    widest = std::max(widest, l->output_shape().numel());
  }
  const std::int64_t slots = plan_gradients(resolve_inputs(layers)).slots;
  return std::int64_t(sizeof(float)) *
         ((2 + state_slots) * params + state + max_batch * (acts + slots * widest));
}

std::int64_t Model::accumulation_bytes(const ModelConfig& cfg) {
  std::int64_t params = 0;
  for (const auto& l : build_layers(cfg))
    for (const ParamSpec& s : l->param_specs())
      if (s.trainable()) params += align_up(s.shape.numel());
  return std::int64_t(sizeof(float)) * params;
}

void Model::keep_gradients(bool first) {
  if (kept_.shape().rank() == 0) kept_ = device_tensor(*be_, Shape{flat_size_});
  float* kept = kept_.data<float>();
  if (first)
    be_->copy(kept, grad_data(), sizeof(float) * static_cast<std::size_t>(flat_size_));
  else
    be_->add(flat_size_, kept, grad_data(), kept);
}

void Model::add_kept_gradients(int layer) {
  const auto [begin, end] = layer_range_[static_cast<std::size_t>(layer)];
  if (end == begin) return;
  DISTNET_CHECK(kept_.shape().rank() == 1, "add_kept_gradients before keep_gradients");
  be_->add(end - begin, grad_data() + begin, kept_.data<float>() + begin, grad_data() + begin);
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
  for (std::size_t k = 0; k < slot_names_.size(); ++k)
    be_->fill_zero(slot_data(k), sizeof(float) * static_cast<std::size_t>(flat_size_));
}

int Model::rows_in(std::size_t layer) const {
  const int j = in_[layer][0];
  return j < 0 ? input_rows_ : rows_[std::size_t(j)];
}

StepContext Model::layer_context(const StepContext& step, std::size_t layer) const {
  StepContext c = step;
  const int j = in_[layer][0];
  c.sample_ids = j < 0 ? input_ids_ : ids_[std::size_t(j)];
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
  input_rows_ = n;
  input_ids_ = ctx.sample_ids;
  std::vector<const float*>& xs = xs_;
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
    const int rows = rows_in(i);
    xs.clear();
    for (const int j : in_[i]) {
      xs.push_back(j < 0 ? x : acts_[std::size_t(j)].data<float>());
      DISTNET_CHECK((j < 0 ? input_rows_ : rows_[std::size_t(j)]) == rows,
                    "layer " + l.name() + " joins inputs with different numbers of rows");
    }
    rows_[i] = l.rows_out(c, rows);
    if (rows > 0 || l.collective()) l.forward_inputs(c, rows, xs, out);
    ids_[i] = l.ids_out(step, c.sample_ids);
    if (times_) {
      be_->synchronize();
      times_->forward_ms[i] = ms_since(t0);
    }
  }
  return acts_.back().data<float>();
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
  DISTNET_CHECK(!collective_ || (n == step_.rows && input_rows_ == n),
                "backward of a collective model must follow its forward with the same rows");
  auto slot = [&](int k) { return slots_[std::size_t(k)].data<float>(); };
  std::vector<const float*>& xs = xs_;
  std::vector<float*>& dxs = dxs_;
  bool complete = true;
  for (int i = last; i >= 0; --i) {
    const auto idx = static_cast<std::size_t>(i);
    complete = complete && !(cancel && !collective_ && cancel());
    if (!complete) {  // abandoned: no more compute, but the same collectives as every peer
      if (on_layer_done) on_layer_done(i);
      continue;
    }
    Layer& l = *layers_[idx];
    // A split model's layers see their own rows; every other model's, the step's.
    const StepContext c = is_split() ? layer_context(step_, idx) : ctx;
    const int rows = is_split() ? rows_in(idx) : n;
    xs.clear();
    dxs.clear();
    for (std::size_t k = 0; k < in_[idx].size(); ++k) {
      const int j = in_[idx][k];
      xs.push_back(j < 0 ? x : acts_[std::size_t(j)].data<float>());
      const int t = temp_slot_[idx][k];
      dxs.push_back(j < 0 ? nullptr : slot(t >= 0 ? t : grad_slot_[std::size_t(j)]));
    }
    const auto t0 = std::chrono::steady_clock::now();
    {
      Timeline::Scope span(timeline_, Timeline::Track::compute, "backward ", l.name(), "backward");
      if (rows > 0 || l.collective()) {
        l.backward_inputs(c, rows, xs, acts_[idx].data<float>(), slot(grad_slot_[idx]), dxs);
        // Where the input's output already has a gradient from a later layer, add this part.
        for (std::size_t k = 0; k < in_[idx].size(); ++k) {
          const int t = temp_slot_[idx][k];
          if (t < 0) continue;
          const auto j = std::size_t(in_[idx][k]);
          float* g = slot(grad_slot_[j]);
          be_->add(rows * layers_[j]->output_shape().numel(), g, slot(t), g);
        }
      }
    }
    if (times_) {
      be_->synchronize();
      times_->backward_ms[idx] = ms_since(t0);
    }
    if (on_layer_done) on_layer_done(i);
  }
  return complete;
}

}  // namespace distnet
