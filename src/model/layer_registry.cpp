// The layer registry: each op's settings and the factory that turns a node into a layer. Settings
// are read here, with their defaults and checks, so the parser stays ignorant of layer types.
#include "distnet/layer_registry.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "distnet/grid.hpp"

namespace distnet {
namespace {

using Make = std::function<std::unique_ptr<Layer>(const NodeSpec&, LayerBuild&)>;

// `units` or `channels` may be `classes`: the data's class count.
int width(const NodeSpec& n, LayerBuild& b, const std::string& key) {
  const auto it = n.settings.find(key);
  return it != n.settings.end() && it->second == "classes" ? b.config().classes
                                                           : b.positive_int(n, key);
}

std::unique_ptr<Layer> conv(const NodeSpec& n, LayerBuild& b) {
  const Conv2dSpec s{width(n, b, "channels"),
                     b.positive_int(n, "kernel"),
                     b.positive_int(n, "stride", 1),
                     b.non_negative_int(n, "padding", 0),
                     b.activation(n),
                     b.boolean(n, "bias", true),
                     b.positive_int(n, "groups", 1)};
  if (b.shape().rank() != 3) b.fail(n, "needs a C x H x W input, got " + b.shape().str());
  return make_conv2d(n.name, b.shape(), s);
}

// Padding beyond half the kernel is refused by the layer (PyTorch's rule), naming it.
std::unique_ptr<Layer> max_pool(const NodeSpec& n, LayerBuild& b) {
  const int kernel = b.positive_int(n, "kernel");
  const int stride = b.positive_int(n, "stride", kernel);
  const int padding = b.non_negative_int(n, "padding", 0);
  if (b.shape().rank() != 3) b.fail(n, "needs a C x H x W input, got " + b.shape().str());
  return make_max_pool(n.name, b.shape(), kernel, stride, padding);
}

std::unique_ptr<Layer> avg_pool(const NodeSpec& n, LayerBuild& b) {
  const int kernel = b.positive_int(n, "kernel");
  const int stride = b.positive_int(n, "stride", kernel);
  const int padding = b.non_negative_int(n, "padding", 0);
  const bool count_padding = b.boolean(n, "count_padding", true);
  if (b.shape().rank() != 3) b.fail(n, "needs a C x H x W input, got " + b.shape().str());
  return make_avg_pool(n.name, b.shape(), kernel, stride, padding, count_padding);
}

// `size: 6` or `size: [6, 6]` (height, width).
std::unique_ptr<Layer> adaptive_avg_pool(const NodeSpec& n, LayerBuild& b) {
  const auto it = n.settings.find("size");
  if (it == n.settings.end()) b.fail(n, "needs a setting 'size' (N or [H, W])");
  const std::string& v = it->second;
  const auto comma = v.find(',');
  NodeSpec h = n, w = n;
  h.settings["size"] = v.substr(0, comma);
  w.settings["size"] = comma == std::string::npos ? v : v.substr(comma + 1);
  if (w.settings["size"].find(',') != std::string::npos)
    b.fail(n, "size must be N or [H, W], got [" + v + "]");
  if (b.shape().rank() != 3) b.fail(n, "needs a C x H x W input, got " + b.shape().str());
  return make_adaptive_avg_pool(n.name, b.shape(), b.positive_int(h, "size"),
                                b.positive_int(w, "size"));
}

// With the hybrid grid the first dense layer is split by output neurons and the second by input
// neurons (src/model/split_dense.cpp); a dropout between them draws its piece of the full row's
// masks. The layer sequence, and so every index and dropout id, is the same as without the split.
std::unique_ptr<Layer> dense(const NodeSpec& n, LayerBuild& b) {
  const int units = width(n, b, "units");
  const Activation act = b.activation(n);
  const LayerSplit& split = b.split();
  const int k = b.next_dense();
  if (split.shards == 1 || k >= 2) return make_dense(n.name, b.shape(), units, act);
  if (k == 0) {
    b.split_width_ = units;
    b.offset_ = std::uint32_t(split_range(units, split.shards, split.shard).begin);
    return make_dense_output_shard(n.name, b.shape(), units, act, split);
  }
  b.offset_ = 0;
  return make_dense_input_shard(n.name, b.shape(), b.split_width_, units, act, split);
}

std::unique_ptr<Layer> dropout(const NodeSpec& n, LayerBuild& b) {
  const float p = b.real(n, "p", b.config().dropout);
  if (n.settings.count("p") && !(p >= 0.0f && p < 1.0f))
    b.fail(n, "p must be in [0, 1), got " + n.settings.at("p"));
  return make_dropout(n.name, b.shape(), p, b.index(), b.offset_);
}

std::unique_ptr<Layer> batch_norm(const NodeSpec& n, LayerBuild& b) {
  const float momentum = b.real(n, "momentum", b.config().bn_momentum);
  const float eps = b.real(n, "eps", b.config().bn_eps);
  if (n.settings.count("momentum") && !(momentum >= 0.0f && momentum <= 1.0f))
    b.fail(n, "momentum must be in [0, 1], got " + n.settings.at("momentum"));
  if (n.settings.count("eps") && !(eps > 0.0f))
    b.fail(n, "eps must be positive, got " + n.settings.at("eps"));
  if (b.config().sync_bn)
    return make_sync_batch_norm(n.name, b.shape(), momentum, eps, b.activation(n),
                                b.config().sync_bn_ranks);
  return make_batch_norm(n.name, b.shape(), momentum, eps, b.activation(n));
}

std::unique_ptr<Layer> flatten(const NodeSpec& n, LayerBuild& b) {
  return make_flatten(n.name, b.shape());
}

std::unique_ptr<Layer> relu(const NodeSpec& n, LayerBuild& b) {
  return make_relu(n.name, b.shape());
}

}  // namespace

const std::map<std::string, LayerType>& layer_registry() {
  static const std::map<std::string, LayerType> r = {
      {"conv", {{"act", "bias", "channels", "groups", "kernel", "padding", "stride"}, conv}},
      {"max_pool", {{"kernel", "padding", "stride"}, max_pool}},
      {"avg_pool", {{"count_padding", "kernel", "padding", "stride"}, avg_pool}},
      {"adaptive_avg_pool", {{"size"}, adaptive_avg_pool}},
      {"dense", {{"act", "units"}, dense}},
      {"dropout", {{"p"}, dropout}},
      {"batch_norm", {{"act", "eps", "momentum"}, batch_norm}},
      {"flatten", {{}, flatten}},
      {"relu", {{}, relu}},
  };
  return r;
}

void LayerBuild::fail(const NodeSpec& node, const std::string& what) const {
  throw UsageError(spec_.where(node) + ": " + what);
}

const std::string* LayerBuild::setting(const NodeSpec& node, const std::string& key) const {
  const auto it = node.settings.find(key);
  return it == node.settings.end() ? nullptr : &it->second;
}

int LayerBuild::positive_int(const NodeSpec& node, const std::string& key, int fallback) const {
  const std::string* v = setting(node, key);
  if (!v && fallback > 0) return fallback;
  if (!v) fail(node, "needs a setting '" + key + "' (a positive integer)");
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < 1 || x > (1L << 30))
    fail(node, key + " must be a positive integer, got '" + *v + "'");
  return static_cast<int>(x);
}

int LayerBuild::non_negative_int(const NodeSpec& node, const std::string& key, int fallback) const {
  const std::string* v = setting(node, key);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < 0 || x > (1L << 30))
    fail(node, key + " must be an integer >= 0, got '" + *v + "'");
  return static_cast<int>(x);
}

float LayerBuild::real(const NodeSpec& node, const std::string& key, float fallback) const {
  const std::string* v = setting(node, key);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const float x = std::strtof(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno != 0)
    fail(node, key + " must be a number, got '" + *v + "'");
  return x;
}

bool LayerBuild::boolean(const NodeSpec& node, const std::string& key, bool fallback) const {
  const std::string* v = setting(node, key);
  if (!v) return fallback;
  if (*v == "true") return true;
  if (*v == "false") return false;
  fail(node, key + " must be true or false, got '" + *v + "'");
}

Activation LayerBuild::activation(const NodeSpec& node) const {
  const std::string* v = setting(node, "act");
  if (!v || *v == "none") return Activation::none;
  if (*v == "relu") return Activation::relu;
  fail(node, "act must be relu or none, got '" + *v + "'");
}

std::vector<std::unique_ptr<Layer>> build_layers(const ModelSpec& spec, const ModelConfig& cfg,
                                                 const LayerSplit& split) {
  LayerBuild b(spec, cfg, split);
  std::vector<std::unique_ptr<Layer>> layers;
  std::map<std::string, int> index;  // node name -> layer index
  std::vector<int> uses;             // per layer: how many layers take its output
  int dense = 0;
  for (const NodeSpec& node : spec.nodes) {
    // The graph: every input is the model's input or a layer before this one, so the schedule
    // is the order written and a cycle cannot be expressed.
    std::vector<int> in;
    std::vector<Shape> in_shapes;
    for (const std::string& name : node.inputs) {
      const auto it = index.find(name);
      if (name != "input" && it == index.end())
        b.fail(node, "takes the output of '" + name +
                         "', which is not a layer before it (a dangling reference or a cycle); "
                         "expected 'input' or the name of an earlier layer");
      in.push_back(name == "input" ? -1 : it->second);
      in_shapes.push_back(name == "input" ? cfg.input
                                          : layers[std::size_t(it->second)]->output_shape());
      if (name != "input") ++uses[std::size_t(it->second)];
    }
    const bool join = node.op == "add" || node.op == "concat";
    if (in.empty() || (!join && in.size() != 1))
      b.fail(node, "takes " + std::to_string(in.size()) + " inputs; expected " +
                       (join ? "two or more" : "one"));
    // The hybrid grid's split layers hold neurons [lo, hi) of the group's rows: what runs
    // between them must work on a shard of a row.
    if (split.shards > 1 && dense == 1 && node.op != "dense" && node.op != "dropout" &&
        node.op != "relu")
      b.fail(node,
             "--model-parallel splits the first two dense layers by neurons; between them "
             "only dropout and relu can run on a shard");
    dense += node.op == "dense";
    const auto type = layer_registry().find(node.op);
    if (!join && type == layer_registry().end()) b.fail(node, "unknown op");
    b.begin(static_cast<std::uint32_t>(layers.size()), in_shapes[0]);
    std::unique_ptr<Layer> l;
    try {
      if (node.op == "add")
        l = make_add(node.name, in_shapes, b.activation(node));
      else if (node.op == "concat")
        l = make_concat(node.name, in_shapes);
      else
        l = type->second.make(node, b);
    } catch (const UsageError& e) {
      const std::string what = e.what();
      if (what.rfind(spec.source + ":", 0) == 0) throw;
      throw UsageError(spec.at(node) + ": " + what);  // a layer's own check names the layer
    }
    l->set_inputs(in);
    index[node.name] = static_cast<int>(layers.size());
    layers.push_back(std::move(l));
    uses.push_back(0);
  }
  for (std::size_t i = 0; i + 1 < layers.size(); ++i)
    if (uses[i] == 0)
      b.fail(spec.nodes[i],
             "its output is never used; expected every layer but the last to feed another");
  if (split.shards > 1 && dense < 2)
    throw UsageError(spec.source + ": --model-parallel splits the first two dense layers by " +
                     "neurons; expected a model with two, it has " + std::to_string(dense));
  // The loss reads one logit per class from the last layer.
  const Shape& out = layers.back()->output_shape();
  if (out.numel() != cfg.classes)
    b.fail(spec.nodes.back(), "gives " + out.str() +
                                  " outputs per sample; expected one per class (" +
                                  std::to_string(cfg.classes) + ": units: classes)");
  return layers;
}

}  // namespace distnet
