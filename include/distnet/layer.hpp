// Layers: each knows its parameter shapes and its output shape, and calls backend ops in forward
// and backward. Parameters live in the model's flat buffers; a layer only holds pointers into them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/comm.hpp"
#include "distnet/tensor.hpp"

namespace distnet {

enum class Activation { none, relu };

enum class ParamRole { weight, bias, gamma, beta, running_mean, running_var };

// Over which ranks a gradient is summed: all of them (data-parallel), or the ranks that hold the
// same shard of a dense layer split by the hybrid grid, one per group (docs/process-grid.md).
enum class GradSum { world, shard };

struct ParamSpec {
  std::string name;  // "conv1.weight"
  Shape shape;       // framework-neutral: conv OIHW, dense (out, in); a piece: the piece's shape
  ParamRole role = ParamRole::weight;
  std::int64_t fan_in = 0, fan_out = 0;  // for initialisers (of the whole tensor)
  GradSum sum = GradSum::world;
  // A piece of a larger tensor (the hybrid grid splits dense layers by neurons): the whole
  // tensor's shape and the first index along `axis` held here; `full` is empty for a whole one.
  Shape full = {};
  int axis = 0;
  std::int64_t begin = 0;
  bool is_piece() const { return full.rank() > 0; }
  const Shape& whole_shape() const { return is_piece() ? full : shape; }
  // Running statistics are state, not parameters: no gradient, not all-reduced, not counted.
  bool trainable() const {
    return role != ParamRole::running_mean && role != ParamRole::running_var;
  }
};

// What a pass needs besides the data. sample_ids are global sample indices on the backend's
// device (one per row), so per-sample randomness does not depend on how a batch was split.
// With the hybrid grid, the layers between the gather and the scatter of a group see the rows
// of every rank of the group, each rank's slice padded to slice_rows (the largest slice of the
// step, the same on every rank); `rows` is this rank's own sample count.
struct StepContext {
  bool training = false;
  std::uint64_t seed = 0;
  std::uint32_t step = 0;
  const std::uint32_t* sample_ids = nullptr;
  int rows = 0, slice_rows = 0;  // set by Model::forward when zero
};

// Copies between a piece of a tensor and the whole: `whole` has shape `full`, the piece holds
// [begin, begin + piece_len) along `axis`. On host memory.
void extract_piece(const Shape& full, int axis, std::int64_t begin, std::int64_t piece_len,
                   const float* whole, float* piece);
void insert_piece(const Shape& full, int axis, std::int64_t begin, std::int64_t piece_len,
                  const float* piece, float* whole);

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

  // The hybrid grid's dense layers move rows between the ranks of a group: how many rows follow
  // `n` input rows, and their global sample ids (`step` is the model's own context). A
  // collective layer runs on every rank even with no rows of its own.
  virtual int rows_out(const StepContext&, int n) const { return n; }
  virtual const std::uint32_t* ids_out(const StepContext&, const std::uint32_t* in) const {
    return in;
  }
  virtual bool collective() const { return false; }

  // The model's graph: the layers whose outputs feed this one, as indices into the model's
  // layers (-1: the model's input). Empty: the layer before it (the input for the first), so a
  // sequence needs no wiring. Set by build_layers(); the model checks it.
  const std::vector<int>& inputs() const { return inputs_; }
  void set_inputs(std::vector<int> inputs) { inputs_ = std::move(inputs); }

  // Layers with several inputs (add, concat) override these; the rest take their one input
  // through forward() and backward(). dxs[k] is null where no gradient is wanted.
  virtual std::vector<Shape> input_shapes() const { return {in_}; }
  virtual void forward_inputs(const StepContext& ctx, int n, const std::vector<const float*>& xs,
                              float* y) {
    forward(ctx, n, xs[0], y);
  }
  virtual void backward_inputs(const StepContext& ctx, int n, const std::vector<const float*>& xs,
                               const float* y, float* dy, const std::vector<float*>& dxs) {
    backward(ctx, n, xs[0], y, dy, dxs[0]);
  }

 protected:
  Backend* be_ = nullptr;

 private:
  std::string name_;
  Shape in_, out_;
  std::vector<int> inputs_;
};

struct Conv2dSpec {
  int c_out = 0, kernel = 0, stride = 1, pad = 0;
  Activation act = Activation::none;
  bool bias = true;  // false: no bias parameter at all (a batch norm follows)
  int groups = 1;    // must divide the input and output channels
};

std::unique_ptr<Layer> make_conv2d(std::string name, const Shape& in, const Conv2dSpec& s);
// Pooling over kernel x kernel windows at `stride`, the input padded by `pad` <= kernel / 2.
std::unique_ptr<Layer> make_max_pool(std::string name, const Shape& in, int kernel, int stride,
                                     int pad = 0);
// count_padding: padded positions count in the divisor (PyTorch's count_include_pad=True).
std::unique_ptr<Layer> make_avg_pool(std::string name, const Shape& in, int kernel, int stride,
                                     int pad = 0, bool count_padding = true);
// Average pooling to a fixed out_h x out_w whatever the input size (torchvision's
// AdaptiveAvgPool2d).
std::unique_ptr<Layer> make_adaptive_avg_pool(std::string name, const Shape& in, int out_h,
                                              int out_w);
// Dense flattens its input (C x H x W -> C*H*W), as Gluon's Dense does.
std::unique_ptr<Layer> make_dense(std::string name, const Shape& in, int out, Activation act);
// element_offset: where `in` starts within the full layer's row when the layer is split.
std::unique_ptr<Layer> make_dropout(std::string name, const Shape& in, float p_drop,
                                    std::uint32_t layer_id, std::uint32_t element_offset = 0);
std::unique_ptr<Layer> make_batch_norm(std::string name, const Shape& in, float momentum, float eps,
                                       Activation act);
// --sync-bn: batch-norm whose training statistics are those of the global batch, summed over
// `ranks` (the data-parallel world; not owned) in every forward and backward pass, so that N
// ranks take the step of one process with the whole batch (src/model/sync_batch_norm.cpp). The
// same parameters and state as make_batch_norm's; inference uses the running statistics alone.
// A collective layer: every rank runs it in every training pass, also with no rows.
std::unique_ptr<Layer> make_sync_batch_norm(std::string name, const Shape& in, float momentum,
                                            float eps, Activation act, Communicator* ranks);
std::unique_ptr<Layer> make_flatten(std::string name, const Shape& in);
// ReLU on its own (conv, dense and batch-norm can also apply it fused: Activation::relu).
std::unique_ptr<Layer> make_relu(std::string name, const Shape& in);
// The graph's joins (src/model/join.cpp). Add: the element-wise sum of inputs of one shape (a
// residual block), then the activation. Concat: inputs of the same height and width joined along
// channels, in order (an Inception block). Both throw UsageError naming the layer and the shapes
// when the inputs do not fit.
std::unique_ptr<Layer> make_add(std::string name, const std::vector<Shape>& in, Activation act);
std::unique_ptr<Layer> make_concat(std::string name, const std::vector<Shape>& in);

// The hybrid grid's split of the dense layers (docs/process-grid.md, src/model/split_dense.cpp).
struct LayerSplit {
  Communicator* group = nullptr;  // the M ranks of this rank's group
  int shards = 1, shard = 0;      // M, and this rank's shard (its rank in the group)
};
// Gathers the group's rows of its input, then computes output neurons [lo, hi) of `out` for all
// of them (the shard's rows of the weight); backward reduce-scatters the input gradient.
std::unique_ptr<Layer> make_dense_output_shard(std::string name, const Shape& in, int out,
                                               Activation act, const LayerSplit& split);
// Takes the input neurons [lo, hi) of `in_full` (the previous layer's shard) for the group's
// rows, reduce-scatters the partial sums so each rank has its own rows' outputs; backward
// all-gathers the output gradient of the group's rows.
std::unique_ptr<Layer> make_dense_input_shard(std::string name, const Shape& in_piece, int in_full,
                                              int out, Activation act, const LayerSplit& split);

}  // namespace distnet
