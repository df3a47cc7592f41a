// The optimizer step over the model's flat buffers: SGD with momentum (the default), LARS and
// AdamW (docs/training.md#optimizers). It owns a segment table built once from the model's
// tensors and the parameter groups (--freeze-through, --lr-mult): each range of the flat buffers
// with its learning-rate factor and whether it is decayed (and, for LARS, adapted); a frozen
// tensor is never touched, its state included. The state lives in the model's named slots
// (Model::set_optimizer), which checkpoints store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/model.hpp"
#include "distnet/param_groups.hpp"

namespace distnet {

struct OptimizerConfig {
  std::string name = "sgd";  // sgd, lars or adamw
  double momentum = 0.0;     // sgd and lars
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double lars_trust = 0.001;                      // lars: the trust coefficient (eta)
  // sgd and adamw: biases and batch-norm's gamma and beta without weight decay (LARS always
  // leaves them out of adaptation and decay).
  bool no_decay_bias_bn = false;
};

// Biases and batch-norm's gamma and beta: what LARS does not adapt and --no-decay-bias-bn does
// not decay.
bool is_bias_or_norm(const ParamSpec& spec);

class Optimizer {
 public:
  // Sets the model's optimizer (allocating its state slots). A split model's LARS norms of the
  // pieces of a tensor are summed over the model's group (LayerSplit::group).
  Optimizer(Model& model, const ParamGroups& groups, const OptimizerConfig& config);
  const OptimizerConfig& config() const { return c_; }

  // One update with the schedule's learning rate `lr`. `t`: this update's number, from 1,
  // counting applied updates only (AdamW's bias correction).
  void step(double lr, std::int64_t t);

 private:
  struct Range {
    std::int64_t offset = 0, count = 0;
    double lr_factor = 1.0;
    bool decay = true;
  };
  Model& m_;
  OptimizerConfig c_;
  std::vector<Range> ranges_;  // sgd, adamw: contiguous, neighbours with equal settings merged
  // lars: one segment per tensor that is not frozen, the pieces of split tensors first.
  std::vector<LarsSegment> segments_;
  int pieces_ = 0;
  Buffer segments_dev_, sums_;
};

}  // namespace distnet
