// Layers: each knows its parameter shapes and its output shape, and calls backend ops in forward
// and backward. Parameters live in the model's flat buffers; a layer only holds pointers into them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/tensor.hpp"

namespace distnet {

enum class Activation { none, relu };

enum class ParamRole { weight, bias, gamma, beta, running_mean, running_var };

struct ParamSpec {
  std::string name;  // "conv1.weight"
  Shape shape;       // framework-neutral: conv OIHW, dense (out, in)
  ParamRole role = ParamRole::weight;
  std::int64_t fan_in = 0, fan_out = 0;  // for initialisers
  // Running statistics are state, not parameters: no gradient, not all-reduced, not counted.
  bool trainable() const {
    return role != ParamRole::running_mean && role != ParamRole::running_var;
  }
};

// What a pass needs besides the data. sample_ids are global sample indices on the backend's
// device (one per row), so per-sample randomness does not depend on how a batch was split.
struct StepContext {
  bool training = false;
  std::uint64_t seed = 0;
  std::uint32_t step = 0;
  const std::uint32_t* sample_ids = nullptr;
};

class Layer {
 public:
  Layer(std::string name, Shape in, Shape out)
      : name_(std::move(name)), in_(std::move(in)), out_(std::move(out)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& name() const { return name_; }
  virtual std::string kind() const = 0;               // "conv2d 96@11x11 s4 +relu"
  const Shape& input_shape() const { return in_; }    // per sample
  const Shape& output_shape() const { return out_; }  // per sample
  virtual std::vector<ParamSpec> param_specs() const { return {}; }

  // Called once by the model: creates the backend ops and hands over the parameter pointers, in
  // param_specs() order (grads[i] is null for state that is not trainable).
  virtual void bind(Backend& be, const std::vector<float*>& params,
                    const std::vector<float*>& grads) = 0;

  virtual void forward(const StepContext& ctx, int n, const float* x, float* y) = 0;
  // x, y: this layer's input and output from forward. dy may be overwritten (it is scratch).
  // dx is null when no gradient for the input is wanted. Parameter gradients are overwritten.
  virtual void backward(const StepContext& ctx, int n, const float* x, const float* y, float* dy,
                        float* dx) = 0;

 protected:
  Backend* be_ = nullptr;

 private:
  std::string name_;
  Shape in_, out_;
};

struct Conv2dSpec {
  int c_out = 0, kernel = 0, stride = 1, pad = 0;
  Activation act = Activation::none;
};

std::unique_ptr<Layer> make_conv2d(std::string name, const Shape& in, const Conv2dSpec& s);
std::unique_ptr<Layer> make_max_pool(std::string name, const Shape& in, int kernel, int stride);
// Average pooling to a fixed out_h x out_w whatever the input size (torchvision's
// AdaptiveAvgPool2d).
std::unique_ptr<Layer> make_adaptive_avg_pool(std::string name, const Shape& in, int out_h,
                                              int out_w);
// Dense flattens its input (C x H x W -> C*H*W), as Gluon's Dense does.
std::unique_ptr<Layer> make_dense(std::string name, const Shape& in, int out, Activation act);
std::unique_ptr<Layer> make_dropout(std::string name, const Shape& in, float p_drop,
                                    std::uint32_t layer_id);
std::unique_ptr<Layer> make_batch_norm(std::string name, const Shape& in, float momentum, float eps,
                                       Activation act);
std::unique_ptr<Layer> make_flatten(std::string name, const Shape& in);

}  // namespace distnet
