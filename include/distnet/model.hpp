// A model: a graph of layers built from a definition and an input shape, run as a schedule (the
// order written: every layer's inputs come before it), with all parameters in one contiguous
// buffer, all gradients in a second and all optimizer state in a third. Parameters are laid out
// in backward order (the last layer's first), so every gradient bucket that becomes ready during
// backward is one contiguous range. Every layer's output is kept for backward; the gradients of
// the outputs live in a few shared buffers assigned by liveness (two for a sequence), and where
// an output feeds several layers their gradients for it are summed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/layer.hpp"
#include "distnet/timeline.hpp"

namespace distnet {

struct InitConfig {
  enum class Kind { xavier, normal };
  Kind kind = Kind::xavier;
  float xavier_magnitude = 2.24f;  // MXNet's Xavier(rnd_type='uniform', factor_type='avg')
  float normal_sigma = 0.01f;      // the d2l from-scratch notebooks' normal(0, 0.01)
  std::uint64_t seed = 0;
};

struct ModelConfig {
  std::string name = "alexnet";
  Shape input{1, 224, 224};  // C x H x W of one sample
  int classes = 10;
  float dropout = 0.5f;
  float bn_momentum = 0.9f;  // weight of the old running value (Gluon's convention)
  float bn_eps = 1e-5f;
  // --sync-bn: batch-norm layers train with the statistics of the global batch, summed over
  // `sync_bn_ranks` (the data-parallel world's communicator, not owned; needed by the Model,
  // not by build_layers alone). Off: each rank's own slice (docs/training.md).
  bool sync_bn = false;
  Communicator* sync_bn_ranks = nullptr;
};

// The zoo's names (models/*.yaml), for help texts and error messages. ModelConfig::name is one
// of them or the path of a definition file (docs/models.md).
const std::vector<std::string>& model_names();
// The input side a model was designed for, its definition's input_size (28 for lenet, 224 for
// the AlexNets; --resize auto); 0 when it has none or cannot be read.
int default_resize(const std::string& model);

// Reads the definition (distnet/model_spec.hpp) and makes its layers. Throws UsageError for an
// unknown name, a bad definition (naming the file, the line and the layer), classes < 1, or an
// input that some layer would shrink to nothing (the message names the layer and the smallest
// square input that works).
// `split`: the hybrid grid's split of the dense layers (default: none, today's model).
std::vector<std::unique_ptr<Layer>> build_layers(const ModelConfig& cfg,
                                                 const LayerSplit& split = {});

// The optimizer's state slots by name, as checkpoints store them: sgd and lars {"momentum"},
// adamw {"exp_avg", "exp_avg_sq"} (PyTorch's names). Throws UsageError for another name.
std::vector<std::string> optimizer_slot_names(const std::string& optimizer);

// One tensor inside a flat buffer.
struct ParamEntry {
  ParamSpec spec;
  int layer = 0;            // index into layers()
  std::int64_t offset = 0;  // in floats, 16-float aligned
};

// Per-layer wall time of the last passes, filled only when profiling is switched on (profiling
// synchronizes the device after every layer, so it is for benchmarks, never for training).
struct LayerTimes {
  std::vector<double> forward_ms, backward_ms;
  double optimizer_ms = 0;  // the update of this rank's parameters (timed by the trainer)
};

class Model {
 public:
  // `split` (the hybrid grid, docs/process-grid.md): the dense layers hold this rank's shard, and
  // forward/backward exchange activations with the group. Default: the whole model, as always.
  Model(const ModelConfig& cfg, Backend& be, int max_batch, const LayerSplit& split = {});
  // The same from layers built elsewhere (the tests compare two builds of one network).
  Model(const ModelConfig& cfg, std::vector<std::unique_ptr<Layer>> layers, Backend& be,
        int max_batch, const LayerSplit& split = {});

  // Bytes the constructor allocates on the device for `max_batch` (parameters, gradients,
  // momentum, running statistics, every layer's output, two gradient scratch buffers); ops add
  // their own workspaces on top. For a clear message before a GPU runs out of memory.
  // `state_slots`: the optimizer's state buffers (optimizer_slot_names(...).size()).
  static std::int64_t device_bytes(const ModelConfig& cfg, int max_batch, int state_slots = 1);

  const ModelConfig& config() const { return cfg_; }
  const LayerSplit& split() const { return split_; }
  bool is_split() const { return split_.shards > 1; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  // Which outputs feed layer i (indices into layers(); -1: the model's input).
  const std::vector<int>& inputs(std::size_t layer) const { return in_[layer]; }
  // Whether a pass is a collective of the ranks (a split model, or layers that exchange data such
  // as synchronised batch-norm): then every rank runs every pass, also with no rows of its own,
  // and a stop request is honoured only between steps.
  bool collective() const { return collective_; }
  int max_batch() const { return max_batch_; }
  Backend& backend() const { return *be_; }

  const std::vector<ParamEntry>& params() const { return params_; }  // trainable, buffer order
  const std::vector<ParamEntry>& state() const { return state_; }    // running statistics
  std::int64_t num_trainable() const;                                // without alignment padding
  std::int64_t flat_size() const { return flat_size_; }              // floats in each flat buffer
  float* param_data() const { return param_.data<float>(); }
  float* grad_data() const { return grad_.data<float>(); }
  float* momentum_data() const { return momentum_.data<float>(); }
  // The optimizer's state, named slots laid out as the flat parameter buffer: slot 0 is the
  // buffer above (SGD's and LARS's momentum, AdamW's first moment), slot 1 AdamW's second
  // moment, allocated only for AdamW. set_optimizer() ("sgd", the default, "lars" or "adamw")
  // allocates what the optimizer needs and zeroes every slot when the optimizer changes; the
  // same name again changes nothing (a checkpoint loaded before the trainer is made keeps its
  // state).
  void set_optimizer(const std::string& name);
  const std::string& optimizer() const { return optimizer_; }
  const std::vector<std::string>& slot_names() const { return slot_names_; }
  float* slot_data(std::size_t k) const {
    return k == 0 ? momentum_data() : extra_slots_[k - 1].data<float>();
  }
  float* state_data() const { return state_buf_.data<float>(); }
  std::int64_t state_size() const { return state_size_; }

  // Fills parameters and state from the initialiser (generated on the host from the seed, so
  // every rank and both backends start from the same values), zeroes momentum.
  void initialize(const InitConfig& init);

  // x: n samples of input_shape on the backend's device. Returns the logits (n x classes), or
  // null when `cancel` returned true between two layers (a stop request: the step is abandoned).
  // A split model is a collective of its group: every rank of it calls forward and backward,
  // also with n == 0, with the same ctx.slice_rows (>= every rank's n); `cancel` is not consulted
  // inside its passes (a stop is handled at the step boundary). The same holds for any model with
  // a collective layer (--sync-bn), over the ranks of that layer's communicator.
  const float* forward(const StepContext& ctx, int n, const float* x,
                       const std::function<bool()>& cancel = {});
  // Where the loss writes d(loss)/d(logits) before backward().
  float* dlogits() const { return slots_[std::size_t(grad_slot_.back())].data<float>(); }
  // Writes all gradients; with n == 0 (an empty slice) they are zero. `on_layer_done(i)` is
  // called after layer i's parameter gradients are written (buckets use it). Once `cancel`
  // returns true the remaining layers are skipped, but `on_layer_done` is still called for each
  // of them, so every rank issues the same collectives; returns false then (the gradients are
  // not valid and the step must not be applied).
  bool backward(const StepContext& ctx, int n, const float* x,
                const std::function<void(int)>& on_layer_done = {},
                const std::function<bool()>& cancel = {});

  // Gradient accumulation over the micro-batches of one optimizer step (--accumulate). Ops
  // overwrite the gradient buffer (and backward of an empty slice zeroes it), so the earlier
  // micro-batches' sum is kept in a fourth flat buffer, allocated by the first call:
  // after the backward of every micro-batch but the step's last, keep_gradients(first) copies
  // the gradients there (first) or adds them; during the last micro-batch's backward,
  // add_kept_gradients(i) in on_layer_done adds the kept sum of layer i's tensors to the fresh
  // ones, before any bucket holding them is released, so the all-reduce sees the step's whole
  // gradient and overlaps the last backward as without accumulation.
  void keep_gradients(bool first);
  void add_kept_gradients(int layer);
  // Bytes the accumulation buffer takes (one more flat buffer), for memory estimates.
  static std::int64_t accumulation_bytes(const ModelConfig& cfg);

  void set_profiling(LayerTimes* times) { times_ = times; }
  LayerTimes* profiling() const { return times_; }
  // Records each layer's forward and backward as a span on the compute track (null: off).
  void set_timeline(Timeline* timeline) { timeline_ = timeline; }

 private:
  ModelConfig cfg_;
  Backend* be_;
  int max_batch_;
  LayerSplit split_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::vector<int>> in_;  // per layer: the layers feeding it (-1: the input)
  bool collective_ = false;
  // Rows of the last pass and their global sample ids: of the input, and of each layer's output.
  int input_rows_ = 0;
  const std::uint32_t* input_ids_ = nullptr;
  std::vector<int> rows_;
  std::vector<const std::uint32_t*> ids_;
  int rows_in(std::size_t layer) const;
  StepContext step_;  // of the last forward (a collective model's backward)
  StepContext layer_context(const StepContext& step, std::size_t layer) const;
  std::vector<ParamEntry> params_, state_;
  std::int64_t flat_size_ = 0, state_size_ = 0;
  Tensor param_, grad_, momentum_, state_buf_;
  Tensor kept_;  // --accumulate: the earlier micro-batches' gradient sum (empty until used)
  // Per layer: the range [begin, end) of its trainable tensors in the flat buffers (empty: none).
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_range_;
  std::string optimizer_ = "sgd";
  std::vector<std::string> slot_names_{"momentum"};
  std::vector<Tensor> extra_slots_;  // slots 1.. (AdamW's second moment)
  std::vector<Tensor> acts_;         // output of each layer
  // Gradients of the outputs: slots_ by liveness; layer i's in grad_slot_[i]; where an output
  // already has a gradient from a later layer, layer i writes its part to temp_slot_[i][k] and
  // adds it (-1: written in place).
  std::vector<Tensor> slots_;
  std::vector<int> grad_slot_;
  std::vector<std::vector<int>> temp_slot_;
  // The inputs and input gradients of the layer being run (kept: no allocation inside a step).
  std::vector<const float*> xs_;
  std::vector<float*> dxs_;
  LayerTimes* times_ = nullptr;
  Timeline* timeline_ = nullptr;
};

}  // namespace distnet
