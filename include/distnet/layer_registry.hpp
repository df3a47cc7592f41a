// The layer registry: op name -> the settings it accepts and a factory that makes the layer for
// one node of a ModelSpec (as Caffe registers its layer types). The parser checks ops and
// settings against it; build_layers() calls the factories in schedule order.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distnet/layer.hpp"
#include "distnet/model.hpp"
#include "distnet/model_spec.hpp"

namespace distnet {

// What a factory sees while the model is built: the model's settings, the running shape and the
// hybrid grid's split (the first two dense layers are split by neurons when it has shards).
class LayerBuild {
 public:
  LayerBuild(const ModelSpec& spec, const ModelConfig& cfg, const LayerSplit& split)
      : spec_(spec), cfg_(cfg), split_(split), shape_(cfg.input) {}

  const ModelConfig& config() const { return cfg_; }
  const LayerSplit& split() const { return split_; }
  const Shape& shape() const { return shape_; }  // the input of the node being built
  // The position of the node being built: dropout ids and initialiser streams come from it.
  std::uint32_t index() const { return index_; }

  // Settings of `node`, checked; errors name the file, the line and the layer.
  int positive_int(const NodeSpec& node, const std::string& key, int fallback = 0) const;
  int non_negative_int(const NodeSpec& node, const std::string& key, int fallback) const;
  float real(const NodeSpec& node, const std::string& key, float fallback) const;
  bool boolean(const NodeSpec& node, const std::string& key, bool fallback) const;  // true|false
  Activation activation(const NodeSpec& node) const;
  [[noreturn]] void fail(const NodeSpec& node, const std::string& what) const;

  // The hybrid grid's state across dense layers (src/model/split_dense.cpp).
  int next_dense() { return dense_++; }
  int split_width_ = 0;
  std::uint32_t offset_ = 0;  // where the running shape starts within the full layer's row

  // Called by build_layers() before each node: its position and its (first) input's shape.
  void begin(std::uint32_t index, const Shape& input) {
    index_ = index;
    shape_ = input;
  }

 private:
  const std::string* setting(const NodeSpec& node, const std::string& key) const;
  const ModelSpec& spec_;
  const ModelConfig& cfg_;
  LayerSplit split_;
  Shape shape_;
  std::uint32_t index_ = 0;
  int dense_ = 0;
};

struct LayerType {
  std::vector<std::string> settings;  // besides `name`, sorted
  std::function<std::unique_ptr<Layer>(const NodeSpec&, LayerBuild&)> make;
};

const std::map<std::string, LayerType>& layer_registry();

// Makes the layers of `spec` for the input and classes in `cfg`, in the order written (each
// layer's inputs() say which outputs feed it). Throws UsageError naming the file, line and layer:
// unknown ops and settings, shapes that do not fit (at an add or a concat too), a reference to a
// layer that is not before it, an output nothing uses.
std::vector<std::unique_ptr<Layer>> build_layers(const ModelSpec& spec, const ModelConfig& cfg,
                                                 const LayerSplit& split = {});

}  // namespace distnet
