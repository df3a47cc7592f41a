// The layer types. Each checks its geometry at construction (so a bad input shape is reported
// before any memory is allocated) and forwards to backend ops at run time.
#include <string>

#include "distnet/layer.hpp"

namespace distnet {
namespace {

void check_output(const std::string& layer, const Shape& in, const Shape& out,
                  const std::string& what) {
  for (auto d : out.dims()) {
    if (d < 1) {
      throw UsageError("layer " + layer + " (" + what +
                       ") would produce an empty output from input " + in.str());
    }
  }
}

std::string act_suffix(Activation a) {
  return a == Activation::relu ? " +relu" : "";
}

// "3/2", and " p1" only with padding (the zoo's tables predate it).
std::string pool_text(const PoolGeom& g) {
  return std::to_string(g.kernel) + "/" + std::to_string(g.stride) +
         (g.pad > 0 ? " p" + std::to_string(g.pad) : "");
}

// A pooling layer's geometry, checked: padding at most half the kernel (PyTorch's rule: every
// window then holds an input position) and a non-empty output.
PoolGeom pool_geom(const std::string& op, const std::string& name, const Shape& in, int kernel,
                   int stride, int pad) {
  DISTNET_CHECK(in.rank() == 3, op + " " + name + " needs a C x H x W input, got " + in.str());
  DISTNET_CHECK_USAGE(pad >= 0 && pad <= kernel / 2,
                      "layer " + name + " (" + op + "): padding must be at most half the kernel (" +
                          std::to_string(kernel / 2) + " for kernel " + std::to_string(kernel) +
                          "), got " + std::to_string(pad));
  PoolGeom g;
  g.c = static_cast<int>(in[0]), g.h_in = static_cast<int>(in[1]), g.w_in = static_cast<int>(in[2]);
  g.kernel = kernel, g.stride = stride, g.pad = pad;
  const Shape out{g.c, g.h_in + 2 * pad < kernel ? 0 : g.h_out(),
                  g.w_in + 2 * pad < kernel ? 0 : g.w_out()};
  check_output(name, in, out, "pool " + pool_text(g));
  return g;
}

class Conv2dLayer final : public Layer {
 public:
  Conv2dLayer(std::string name, const Shape& in, const Conv2dSpec& s, const Conv2dGeom& g)
      : Layer(std::move(name), in, Shape{s.c_out, g.h_out(), g.w_out()}), s_(s), g_(g) {}

  // Groups and a missing bias show only where they are set, so the zoo's tables stay as they were.
  std::string kind() const override {
    return "conv2d " + std::to_string(s_.c_out) + "@" + std::to_string(s_.kernel) + "x" +
           std::to_string(s_.kernel) + " s" + std::to_string(s_.stride) + " p" +
           std::to_string(s_.pad) + (g_.groups > 1 ? " g" + std::to_string(g_.groups) : "") +
           (g_.bias ? "" : " nobias") + act_suffix(s_.act);
  }

  // Fans as PyTorch and MXNet count them for a grouped weight: in = (c_in / groups) k^2 (what
  // one output sees), out = c_out k^2 (the weight's first dimension).
  std::vector<ParamSpec> param_specs() const override {
    const std::int64_t k2 = static_cast<std::int64_t>(g_.kernel) * g_.kernel;
    std::vector<ParamSpec> specs{{name() + ".weight",
                                  Shape{g_.c_out, g_.c_in_per_group(), g_.kernel, g_.kernel},
                                  ParamRole::weight, g_.c_in_per_group() * k2, g_.c_out * k2}};
    if (g_.bias) specs.push_back({name() + ".bias", Shape{g_.c_out}, ParamRole::bias});
    return specs;
  }

  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    be_ = &be;
    op_ = be.make_conv2d(g_);
    w_ = p[0], dw_ = g[0];
    if (g_.bias) b_ = p[1], db_ = g[1];
  }

  void forward(const StepContext&, int n, const float* x, float* y) override {
    op_->forward(n, x, w_, b_, y);
    if (s_.act == Activation::relu) be_->relu_forward(n * output_shape().numel(), y, y);
  }

  void backward(const StepContext&, int n, const float* x, const float* y, float* dy,
                float* dx) override {
    if (s_.act == Activation::relu) be_->relu_backward(n * output_shape().numel(), y, dy, dy);
    op_->backward(n, x, w_, dy, dx, dw_, db_);
  }

 private:
  Conv2dSpec s_;
  Conv2dGeom g_;
  std::unique_ptr<Conv2dOp> op_;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
};

class MaxPoolLayer final : public Layer {
 public:
  MaxPoolLayer(std::string name, const Shape& in, const PoolGeom& g)
      : Layer(std::move(name), in, Shape{g.c, g.h_out(), g.w_out()}), g_(g) {}

  std::string kind() const override { return "max_pool " + pool_text(g_); }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
    op_ = be.make_max_pool(g_);
  }
  void forward(const StepContext& ctx, int n, const float* x, float* y) override {
    op_->forward(n, x, y, ctx.training);
  }
  void backward(const StepContext&, int n, const float*, const float*, float* dy,
                float* dx) override {
    if (dx) op_->backward(n, dy, dx);
  }

 private:
  PoolGeom g_;
  std::unique_ptr<MaxPoolOp> op_;
};

class AvgPoolLayer final : public Layer {
 public:
  AvgPoolLayer(std::string name, const Shape& in, const PoolGeom& g, bool count_padding)
      : Layer(std::move(name), in, Shape{g.c, g.h_out(), g.w_out()}),
        g_(g),
        count_padding_(count_padding) {}

  // "excl-pad" where padding exists and is left out of the divisor.
  std::string kind() const override {
    return "avg_pool " + pool_text(g_) + (g_.pad > 0 && !count_padding_ ? " excl-pad" : "");
  }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
    op_ = be.make_avg_pool(g_, count_padding_);
  }
  void forward(const StepContext&, int n, const float* x, float* y) override {
    op_->forward(n, x, y);
  }
  void backward(const StepContext&, int n, const float* x, const float* y, float* dy,
                float* dx) override {
    if (dx) op_->backward(n, x, y, dy, dx);
  }

 private:
  PoolGeom g_;
  bool count_padding_;
  std::unique_ptr<AvgPoolOp> op_;
};

// torchvision's AdaptiveAvgPool2d: a fixed output size whatever the input's. At AlexNet's 224x224
// input the features are already 6x6, and the layer is a copy.
class AdaptiveAvgPoolLayer final : public Layer {
 public:
  AdaptiveAvgPoolLayer(std::string name, const Shape& in, const AdaptivePoolGeom& g)
      : Layer(std::move(name), in, Shape{g.c, g.oh, g.ow}), g_(g) {}

  std::string kind() const override {
    return "adaptive_avg_pool " + std::to_string(g_.oh) + "x" + std::to_string(g_.ow);
  }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }
  void forward(const StepContext&, int n, const float* x, float* y) override {
    if (identity())
      be_->copy(y, x, bytes(n));
    else
      be_->adaptive_avg_pool_forward(n, g_, x, y);
  }
  void backward(const StepContext&, int n, const float*, const float*, float* dy,
                float* dx) override {
    if (!dx) return;
    if (identity())
      be_->copy(dx, dy, bytes(n));
    else
      be_->adaptive_avg_pool_backward(n, g_, dy, dx);
  }

 private:
  bool identity() const { return g_.h == g_.oh && g_.w == g_.ow; }
  std::size_t bytes(int n) const {
    return std::size_t(n) * std::size_t(output_shape().numel()) * sizeof(float);
  }
  AdaptivePoolGeom g_;
};

class DenseLayer final : public Layer {
 public:
  DenseLayer(std::string name, const Shape& in, int out, Activation act)
      : Layer(std::move(name), in, Shape{out}),
        in_(static_cast<int>(in.numel())),
        out_(out),
        act_(act) {}

  std::string kind() const override {
    return "dense " + std::to_string(in_) + "->" + std::to_string(out_) + act_suffix(act_);
  }
  std::vector<ParamSpec> param_specs() const override {
    return {{name() + ".weight", Shape{out_, in_}, ParamRole::weight, in_, out_},
            {name() + ".bias", Shape{out_}, ParamRole::bias}};
  }
  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    be_ = &be;
    op_ = be.make_dense(in_, out_);
    w_ = p[0], b_ = p[1], dw_ = g[0], db_ = g[1];
  }
  void forward(const StepContext&, int n, const float* x, float* y) override {
    op_->forward(n, x, w_, b_, y);
    if (act_ == Activation::relu) be_->relu_forward(static_cast<std::int64_t>(n) * out_, y, y);
  }
  void backward(const StepContext&, int n, const float* x, const float* y, float* dy,
                float* dx) override {
    if (act_ == Activation::relu)
      be_->relu_backward(static_cast<std::int64_t>(n) * out_, y, dy, dy);
    op_->backward(n, x, w_, dy, dx, dw_, db_);
  }

 private:
  int in_, out_;
  Activation act_;
  std::unique_ptr<DenseOp> op_;
  float *w_ = nullptr, *b_ = nullptr, *dw_ = nullptr, *db_ = nullptr;
};

class DropoutLayer final : public Layer {
 public:
  DropoutLayer(std::string name, const Shape& in, float p, std::uint32_t id, std::uint32_t offset)
      : Layer(std::move(name), in, in), p_(p), id_(id), offset_(offset) {}

  std::string kind() const override { return "dropout " + std::to_string(p_).substr(0, 4); }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }
  void forward(const StepContext& ctx, int n, const float* x, float* y) override {
    const std::int64_t per = input_shape().numel();
    if (ctx.training && p_ > 0.0f) {
      be_->dropout_forward(n, per, p_, key(ctx), ctx.sample_ids, x, y);
    } else {
      be_->copy(y, x, sizeof(float) * static_cast<std::size_t>(n * per));
    }
  }
  void backward(const StepContext& ctx, int n, const float*, const float*, float* dy,
                float* dx) override {
    if (!dx) return;
    const std::int64_t per = input_shape().numel();
    if (p_ > 0.0f) {
      be_->dropout_backward(n, per, p_, key(ctx), ctx.sample_ids, dy, dx);
    } else {
      be_->copy(dx, dy, sizeof(float) * static_cast<std::size_t>(n * per));
    }
  }

 private:
  DropoutKey key(const StepContext& ctx) const { return {ctx.seed, id_, ctx.step, offset_}; }
  float p_;
  std::uint32_t id_, offset_;
};

class BatchNormLayer final : public Layer {
 public:
  BatchNormLayer(std::string name, const Shape& in, float momentum, float eps, Activation act)
      : Layer(std::move(name), in, in), momentum_(momentum), eps_(eps), act_(act) {}

  std::string kind() const override { return "batch_norm" + act_suffix(act_); }
  std::vector<ParamSpec> param_specs() const override {
    const Shape c{input_shape()[0]};
    return {{name() + ".gamma", c, ParamRole::gamma},
            {name() + ".beta", c, ParamRole::beta},
            {name() + ".running_mean", c, ParamRole::running_mean},
            {name() + ".running_var", c, ParamRole::running_var}};
  }
  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    be_ = &be;
    const auto c = static_cast<int>(input_shape()[0]);
    op_ = be.make_batch_norm(c, static_cast<int>(input_shape().numel() / c), eps_);
    gamma_ = p[0], beta_ = p[1], mean_ = p[2], var_ = p[3], dgamma_ = g[0], dbeta_ = g[1];
  }
  void forward(const StepContext& ctx, int n, const float* x, float* y) override {
    if (ctx.training) {
      op_->forward_train(n, x, gamma_, beta_, y, mean_, var_, momentum_);
    } else {
      op_->forward_infer(n, x, gamma_, beta_, mean_, var_, y);
    }
    if (act_ == Activation::relu) be_->relu_forward(n * output_shape().numel(), y, y);
  }
  void backward(const StepContext&, int n, const float* x, const float* y, float* dy,
                float* dx) override {
    DISTNET_CHECK(dx != nullptr, "batch_norm " + name() + " cannot be the first layer");
    if (act_ == Activation::relu) be_->relu_backward(n * output_shape().numel(), y, dy, dy);
    op_->backward(n, x, gamma_, dy, dx, dgamma_, dbeta_);
  }

 private:
  float momentum_, eps_;
  Activation act_;
  std::unique_ptr<BatchNormOp> op_;
  float *gamma_ = nullptr, *beta_ = nullptr, *mean_ = nullptr, *var_ = nullptr;
  float *dgamma_ = nullptr, *dbeta_ = nullptr;
};

// NCHW memory is already "flat" per sample: flatten only changes the shape, so forward and
// backward are copies (kept as a layer for models that want the step visible).
class FlattenLayer final : public Layer {
 public:
  FlattenLayer(std::string name, const Shape& in) : Layer(std::move(name), in, Shape{in.numel()}) {}
  std::string kind() const override { return "flatten"; }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }
  void forward(const StepContext&, int n, const float* x, float* y) override {
    be_->copy(y, x, sizeof(float) * static_cast<std::size_t>(n * input_shape().numel()));
  }
  void backward(const StepContext&, int n, const float*, const float*, float* dy,
                float* dx) override {
    if (dx) be_->copy(dx, dy, sizeof(float) * static_cast<std::size_t>(n * input_shape().numel()));
  }
};

// ReLU as a layer of its own, for definitions that write it apart from the layer before (a
// residual block's ReLU after its add); conv, dense and batch-norm also apply it fused.
class ReluLayer final : public Layer {
 public:
  ReluLayer(std::string name, const Shape& in) : Layer(std::move(name), in, in) {}
  std::string kind() const override { return "relu"; }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }
  void forward(const StepContext&, int n, const float* x, float* y) override {
    be_->relu_forward(n * input_shape().numel(), x, y);
  }
  void backward(const StepContext&, int n, const float*, const float* y, float* dy,
                float* dx) override {
    if (dx) be_->relu_backward(n * input_shape().numel(), y, dy, dx);
  }
};

}  // namespace

std::unique_ptr<Layer> make_conv2d(std::string name, const Shape& in, const Conv2dSpec& s) {
  DISTNET_CHECK(in.rank() == 3, "conv2d " + name + " needs a C x H x W input, got " + in.str());
  Conv2dGeom g;
  g.c_in = static_cast<int>(in[0]), g.h_in = static_cast<int>(in[1]),
  g.w_in = static_cast<int>(in[2]);
  g.c_out = s.c_out, g.kernel = s.kernel, g.stride = s.stride, g.pad = s.pad;
  g.groups = s.groups, g.bias = s.bias;
  DISTNET_CHECK_USAGE(s.groups >= 1 && g.c_in % s.groups == 0 && s.c_out % s.groups == 0,
                      "layer " + name + " (conv): groups must divide the input's " +
                          std::to_string(g.c_in) + " channels and the " + std::to_string(s.c_out) +
                          " output channels, got " + std::to_string(s.groups));
  const Shape out{s.c_out, g.h_in + 2 * s.pad < s.kernel ? 0 : g.h_out(),
                  g.w_in + 2 * s.pad < s.kernel ? 0 : g.w_out()};
  check_output(name, in, out, "conv " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel));
  return std::make_unique<Conv2dLayer>(std::move(name), in, s, g);
}

std::unique_ptr<Layer> make_max_pool(std::string name, const Shape& in, int kernel, int stride,
                                     int pad) {
  const PoolGeom g = pool_geom("max_pool", name, in, kernel, stride, pad);
  return std::make_unique<MaxPoolLayer>(std::move(name), in, g);
}

std::unique_ptr<Layer> make_avg_pool(std::string name, const Shape& in, int kernel, int stride,
                                     int pad, bool count_padding) {
  const PoolGeom g = pool_geom("avg_pool", name, in, kernel, stride, pad);
  return std::make_unique<AvgPoolLayer>(std::move(name), in, g, count_padding);
}

std::unique_ptr<Layer> make_adaptive_avg_pool(std::string name, const Shape& in, int out_h,
                                              int out_w) {
  DISTNET_CHECK(in.rank() == 3,
                "adaptive_avg_pool " + name + " needs a C x H x W input, got " + in.str());
  DISTNET_CHECK_USAGE(in[1] >= 1 && in[2] >= 1,
                      name + ": adaptive average pooling needs an input of at least 1x1, got " +
                          in.str() + " (use a larger resize)");
  AdaptivePoolGeom g;
  g.c = int(in[0]), g.h = int(in[1]), g.w = int(in[2]), g.oh = out_h, g.ow = out_w;
  return std::make_unique<AdaptiveAvgPoolLayer>(std::move(name), in, g);
}

std::unique_ptr<Layer> make_dense(std::string name, const Shape& in, int out, Activation act) {
  return std::make_unique<DenseLayer>(std::move(name), in, out, act);
}

std::unique_ptr<Layer> make_dropout(std::string name, const Shape& in, float p_drop,
                                    std::uint32_t layer_id, std::uint32_t element_offset) {
  DISTNET_CHECK_USAGE(p_drop >= 0.0f && p_drop < 1.0f,
                      "dropout probability must be in [0, 1), got " + std::to_string(p_drop));
  return std::make_unique<DropoutLayer>(std::move(name), in, p_drop, layer_id, element_offset);
}

std::unique_ptr<Layer> make_batch_norm(std::string name, const Shape& in, float momentum, float eps,
                                       Activation act) {
  DISTNET_CHECK_USAGE(momentum >= 0.0f && momentum <= 1.0f,
                      "batch-norm momentum must be in [0, 1], got " + std::to_string(momentum));
  return std::make_unique<BatchNormLayer>(std::move(name), in, momentum, eps, act);
}

std::unique_ptr<Layer> make_flatten(std::string name, const Shape& in) {
  return std::make_unique<FlattenLayer>(std::move(name), in);
}

std::unique_ptr<Layer> make_relu(std::string name, const Shape& in) {
  return std::make_unique<ReluLayer>(std::move(name), in);
}

}  // namespace distnet
