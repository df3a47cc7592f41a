// The layers that join branches of the model's graph: the residual add and the channel concat.
// Neither has parameters. Backward hands each input its part of the output's gradient; the
// model sums the parts where an output feeds several layers.
#include <string>

#include "distnet/layer.hpp"

namespace distnet {
namespace {

std::string shapes_text(const std::vector<Shape>& in) {
  std::string s;
  for (const Shape& x : in) s += (s.empty() ? "" : ", ") + x.str();
  return s;
}

class AddLayer final : public Layer {
 public:
  AddLayer(std::string name, const std::vector<Shape>& in, Activation act)
      : Layer(std::move(name), in.at(0), in.at(0)), in_(in), act_(act) {}

  std::string kind() const override {
    return "add " + std::to_string(in_.size()) + (act_ == Activation::relu ? " +relu" : "");
  }
  std::vector<Shape> input_shapes() const override { return in_; }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }

  void forward(const StepContext&, int, const float*, float*) override {
    DISTNET_CHECK(false, "add " + name() + " called with one input");
  }
  void backward(const StepContext&, int, const float*, const float*, float*, float*) override {
    DISTNET_CHECK(false, "add " + name() + " called with one input");
  }

  void forward_inputs(const StepContext&, int n, const std::vector<const float*>& xs,
                      float* y) override {
    const std::int64_t count = n * output_shape().numel();
    be_->add(count, xs[0], xs[1], y);
    for (std::size_t k = 2; k < xs.size(); ++k) be_->add(count, y, xs[k], y);
    if (act_ == Activation::relu) be_->relu_forward(count, y, y);
  }

  void backward_inputs(const StepContext&, int n, const std::vector<const float*>&, const float* y,
                       float* dy, const std::vector<float*>& dxs) override {
    const std::int64_t count = n * output_shape().numel();
    if (act_ == Activation::relu) be_->relu_backward(count, y, dy, dy);
    for (float* dx : dxs)
      if (dx) be_->copy(dx, dy, sizeof(float) * static_cast<std::size_t>(count));
  }

 private:
  std::vector<Shape> in_;
  Activation act_;
};

class ConcatLayer final : public Layer {
 public:
  ConcatLayer(std::string name, const std::vector<Shape>& in, const Shape& out)
      : Layer(std::move(name), in.at(0), out), in_(in) {}

  std::string kind() const override { return "concat " + std::to_string(in_.size()); }
  std::vector<Shape> input_shapes() const override { return in_; }
  void bind(Backend& be, const std::vector<float*>&, const std::vector<float*>&) override {
    be_ = &be;
  }

  void forward(const StepContext&, int, const float*, float*) override {
    DISTNET_CHECK(false, "concat " + name() + " called with one input");
  }
  void backward(const StepContext&, int, const float*, const float*, float*, float*) override {
    DISTNET_CHECK(false, "concat " + name() + " called with one input");
  }

  // Sample i's block of input k goes to channels [offset_k, offset_k + c_k) of sample i.
  void forward_inputs(const StepContext&, int n, const std::vector<const float*>& xs,
                      float* y) override {
    const std::int64_t out = output_shape().numel();
    std::int64_t at = 0;
    for (std::size_t k = 0; k < xs.size(); ++k) {
      const std::int64_t block = in_[k].numel();
      be_->copy_rows(n, block, xs[k], block, y + at, out);
      at += block;
    }
  }

  void backward_inputs(const StepContext&, int n, const std::vector<const float*>&, const float*,
                       float* dy, const std::vector<float*>& dxs) override {
    const std::int64_t out = output_shape().numel();
    std::int64_t at = 0;
    for (std::size_t k = 0; k < dxs.size(); ++k) {
      const std::int64_t block = in_[k].numel();
      if (dxs[k]) be_->copy_rows(n, block, dy + at, out, dxs[k], block);
      at += block;
    }
  }

 private:
  std::vector<Shape> in_;
};

}  // namespace

std::unique_ptr<Layer> make_add(std::string name, const std::vector<Shape>& in, Activation act) {
  if (in.size() < 2)
    throw UsageError("layer " + name + " (add) needs at least two inputs, got " +
                     std::to_string(in.size()));
  for (const Shape& s : in)
    if (s != in[0])
      throw UsageError("layer " + name + " (add) joins inputs of shapes " + shapes_text(in) +
                       "; expected one shape (a shortcut with a 1x1 convolution can match the " +
                       "channels and stride of the body)");
  return std::make_unique<AddLayer>(std::move(name), in, act);
}

std::unique_ptr<Layer> make_concat(std::string name, const std::vector<Shape>& in) {
  if (in.size() < 2)
    throw UsageError("layer " + name + " (concat) needs at least two inputs, got " +
                     std::to_string(in.size()));
  std::int64_t channels = 0;
  for (const Shape& s : in) {
    if (s.rank() != 3 || s[1] != in[0][1] || s[2] != in[0][2] || in[0].rank() != 3)
      throw UsageError("layer " + name + " (concat) joins inputs of shapes " + shapes_text(in) +
                       "; expected C x H x W inputs of one height and width");
    channels += s[0];
  }
  return std::make_unique<ConcatLayer>(std::move(name), in, Shape{channels, in[0][1], in[0][2]});
}

}  // namespace distnet
