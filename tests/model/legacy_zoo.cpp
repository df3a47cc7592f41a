// The five models as they were compiled into distnet before the zoo became definition files
// (src/model/zoo.cpp at a5fb8c2, unchanged but for the names of the entry points). Kept for the
// tests that prove the files build the same layers, layouts, masks and training steps.
#include "legacy_zoo.hpp"

#include <functional>
#include <map>

#include "distnet/grid.hpp"

namespace distnet::legacy {
namespace {

using Layers = std::vector<std::unique_ptr<Layer>>;

// Appends layers while tracking the running output shape. With the hybrid grid (split.shards >
// 1) the first dense layer is split by output neurons and the second by input neurons
// (src/model/split_dense.cpp); a dropout between them draws its piece of the full row's masks.
// The layer sequence, and so every layer index and dropout id, is the same as without the split.
class Builder {
 public:
  Builder(const Shape& in, const LayerSplit& split) : shape_(in), split_(split) {}
  void add(std::unique_ptr<Layer> l) {
    shape_ = l->output_shape();
    layers_.push_back(std::move(l));
  }
  void dense(const std::string& name, int out, Activation act) {
    const int k = dense_++;
    if (split_.shards == 1 || k >= 2) return add(make_dense(name, shape_, out, act));
    if (k == 0) {
      add(make_dense_output_shard(name, shape_, out, act, split_));
      split_width_ = out;
      offset_ = std::uint32_t(split_range(out, split_.shards, split_.shard).begin);
      return;
    }
    add(make_dense_input_shard(name, shape_, split_width_, out, act, split_));
    offset_ = 0;
  }
  void dropout(const std::string& name, float p) {
    add(make_dropout(name, shape_, p, next_id(), offset_));
  }
  const Shape& shape() const { return shape_; }
  std::uint32_t next_id() const { return static_cast<std::uint32_t>(layers_.size()); }
  Layers take() { return std::move(layers_); }

 private:
  Shape shape_;
  LayerSplit split_;
  Layers layers_;
  int dense_ = 0, split_width_ = 0;
  std::uint32_t offset_ = 0;  // where the running shape starts within the full layer's row
};

// d2l.ai's AlexNet (ch. "Deep Convolutional Neural Networks"), for 1- or 3-channel 224x224 input.
Layers alexnet(const ModelConfig& c, const LayerSplit& split, bool pad, bool bn) {
  Builder b(c.input, split);
  const Activation conv_act = bn ? Activation::none : Activation::relu;
  int conv_index = 0;
  auto conv = [&](int out, int k, int s, int p) {
    const std::string id = std::to_string(++conv_index);
    b.add(make_conv2d("conv" + id, b.shape(), {out, k, s, p, conv_act}));
    if (bn) b.add(make_batch_norm("bn" + id, b.shape(), c.bn_momentum, c.bn_eps, Activation::relu));
  };
  conv(96, 11, 4, 0);
  b.add(make_max_pool("pool1", b.shape(), 3, 2));
  conv(256, 5, 1, pad ? 2 : 0);
  b.add(make_max_pool("pool2", b.shape(), 3, 2));
  conv(384, 3, 1, pad ? 1 : 0);
  conv(384, 3, 1, pad ? 1 : 0);
  conv(256, 3, 1, pad ? 1 : 0);
  b.add(make_max_pool("pool3", b.shape(), 3, 2));
  b.dense("dense1", 4096, Activation::relu);
  b.dropout("dropout1", c.dropout);
  b.dense("dense2", 4096, Activation::relu);
  b.dropout("dropout2", c.dropout);
  b.dense("dense3", c.classes, Activation::none);
  return b.take();
}

// torchvision's AlexNet (models/alexnet.py, the model published ImageNet figures and PyTorch
// benchmarks use): 64/192/384/256/256 channels, an adaptive average pool to 6x6, and dropout
// before each of the first two dense layers. 61,100,840 parameters at 1000 classes.
Layers alexnet_torchvision(const ModelConfig& c, const LayerSplit& split) {
  Builder b(c.input, split);
  b.add(make_conv2d("conv1", b.shape(), {64, 11, 4, 2, Activation::relu}));
  b.add(make_max_pool("pool1", b.shape(), 3, 2));
  b.add(make_conv2d("conv2", b.shape(), {192, 5, 1, 2, Activation::relu}));
  b.add(make_max_pool("pool2", b.shape(), 3, 2));
  b.add(make_conv2d("conv3", b.shape(), {384, 3, 1, 1, Activation::relu}));
  b.add(make_conv2d("conv4", b.shape(), {256, 3, 1, 1, Activation::relu}));
  b.add(make_conv2d("conv5", b.shape(), {256, 3, 1, 1, Activation::relu}));
  b.add(make_max_pool("pool3", b.shape(), 3, 2));
  b.add(make_adaptive_avg_pool("avgpool", b.shape(), 6, 6));
  b.dropout("dropout1", c.dropout);
  b.dense("dense1", 4096, Activation::relu);
  b.dropout("dropout2", c.dropout);
  b.dense("dense2", 4096, Activation::relu);
  b.dense("dense3", c.classes, Activation::none);
  return b.take();
}

// LeNet as in the MXNet/Gluon MNIST tutorials: 20 and 50 5x5 filters, a 500-unit hidden layer.
Layers lenet(const ModelConfig& c, const LayerSplit& split) {
  Builder b(c.input, split);
  b.add(make_conv2d("conv1", b.shape(), {20, 5, 1, 0, Activation::relu}));
  b.add(make_max_pool("pool1", b.shape(), 2, 2));
  b.add(make_conv2d("conv2", b.shape(), {50, 5, 1, 0, Activation::relu}));
  b.add(make_max_pool("pool2", b.shape(), 2, 2));
  b.dense("dense1", 500, Activation::relu);
  b.dense("dense2", c.classes, Activation::none);
  return b.take();
}

using Recipe = std::function<Layers(const ModelConfig&, const LayerSplit&)>;
const std::map<std::string, Recipe>& registry() {
  static const std::map<std::string, Recipe> r = {
      {"alexnet",
       [](const ModelConfig& c, const LayerSplit& s) { return alexnet(c, s, true, false); }},
      {"alexnet-nopad",
       [](const ModelConfig& c, const LayerSplit& s) { return alexnet(c, s, false, false); }},
      {"alexnet-bn",
       [](const ModelConfig& c, const LayerSplit& s) { return alexnet(c, s, true, true); }},
      {"alexnet-torchvision", alexnet_torchvision},
      {"lenet", lenet},
  };
  return r;
}

}  // namespace

std::vector<std::unique_ptr<Layer>> build_layers(const ModelConfig& cfg, const LayerSplit& split) {
  const auto it = registry().find(cfg.name);
  if (it == registry().end()) throw UsageError("unknown model '" + cfg.name + "'");
  if (cfg.classes < 1) {
    throw UsageError("number of classes must be at least 1, got " + std::to_string(cfg.classes));
  }
  if (cfg.input.rank() != 3 || cfg.input.numel() < 1) {
    throw UsageError("input shape must be C x H x W with every dimension >= 1, got " +
                     cfg.input.str());
  }
  try {
    return it->second(cfg, split);
  } catch (const UsageError& e) {
    // Say what would work: the smallest square input this model accepts.
    for (std::int64_t s = 1; s <= 4096; ++s) {
      ModelConfig probe = cfg;
      probe.input = Shape{cfg.input[0], s, s};
      try {
        it->second(probe, LayerSplit{});
      } catch (const UsageError&) {
        continue;
      }
      throw UsageError("model '" + cfg.name + "' does not fit input " + cfg.input.str() + ": " +
                       e.what() + "; the smallest square input it accepts is " + std::to_string(s) +
                       "x" + std::to_string(s) + " (use a resize)");
    }
    throw;
  }
}

}  // namespace distnet::legacy
