// Batch-norm with the global batch's statistics (--sync-bn; docs/training.md, "Batch-norm across
// ranks"), as PyTorch's SyncBatchNorm and Horovod's. Each rank holds its own rows; per channel,
// a training pass needs three sums over all ranks, each an in-place all-reduce of the world's
// communicator between two calls of the op:
//
//   forward:  sum x, and the sample count        -> mean                    (c + 1 floats)
//             sum (x - mean)^2                    -> biased variance         (c floats)
//             normalise; running statistics updated from the global figures (the same on all)
//   backward: sum dy, sum dy * x_hat              -> dx of the whole batch   (2c floats)
//
// The variance is the two-pass one (squared deviations from the global mean, not E[x^2] -
// mean^2), as accurate as one process's. gamma's and beta's gradients are this rank's sums, which
// the gradient all-reduce then sums like any other parameter's. A rank with an empty slice adds
// zeros and still joins every sum (and updates its running statistics), so the layer is
// collective. Inference normalises with the running statistics: no communication.
#include "distnet/layer.hpp"

namespace distnet {
namespace {

class SyncBatchNormLayer final : public Layer {
 public:
  SyncBatchNormLayer(std::string name, const Shape& in, float momentum, float eps, Activation act,
                     Communicator* ranks)
      : Layer(std::move(name), in, in),
        momentum_(momentum),
        eps_(eps),
        act_(act),
        ranks_(ranks),
        c_(static_cast<int>(in[0])) {}

  std::string kind() const override {
    return std::string("batch_norm sync") + (act_ == Activation::relu ? " +relu" : "");
  }
  // Those of the per-rank batch-norm, so checkpoints of either load into the other.
  std::vector<ParamSpec> param_specs() const override {
    const Shape c{c_};
    return {{name() + ".gamma", c, ParamRole::gamma},
            {name() + ".beta", c, ParamRole::beta},
            {name() + ".running_mean", c, ParamRole::running_mean},
            {name() + ".running_var", c, ParamRole::running_var}};
  }
  void bind(Backend& be, const std::vector<float*>& p, const std::vector<float*>& g) override {
    DISTNET_CHECK(ranks_ != nullptr,
                  "batch_norm " + name() + ": --sync-bn needs the communicator of the ranks");
    be_ = &be;
    const int spatial = static_cast<int>(input_shape().numel() / c_);
    op_ = be.make_sync_batch_norm(c_, spatial, eps_);
    infer_ = be.make_batch_norm(c_, spatial, eps_);
    gamma_ = p[0], beta_ = p[1], mean_ = p[2], var_ = p[3], dgamma_ = g[0], dbeta_ = g[1];
    sums_ = be.allocate(sizeof(float) * std::size_t(4 * c_ + 1));
    be.fill_zero(sums_.data(), sums_.bytes());
  }
  bool collective() const override { return true; }

  void forward(const StepContext& ctx, int n, const float* x, float* y) override {
    if (!ctx.training) {
      if (n > 0) infer_->forward_infer(n, x, gamma_, beta_, mean_, var_, y);
    } else {
      float* sums = stats();           // c + 1
      float* squares = sums + c_ + 1;  // c
      op_->sum(n, x, sums);
      ranks_->allreduce_sum_in_pass(sums, std::size_t(c_) + 1);
      op_->sum_squares(n, x, sums, squares);
      ranks_->allreduce_sum_in_pass(squares, std::size_t(c_));
      op_->normalize(n, x, gamma_, beta_, sums, squares, y, mean_, var_, momentum_);
    }
    if (act_ == Activation::relu && n > 0) be_->relu_forward(n * output_shape().numel(), y, y);
  }

  void backward(const StepContext&, int n, const float* x, const float* y, float* dy,
                float* dx) override {
    DISTNET_CHECK(dx != nullptr, "batch_norm " + name() + " cannot be the first layer");
    if (act_ == Activation::relu && n > 0)
      be_->relu_backward(n * output_shape().numel(), y, dy, dy);
    float* grad_sums = stats() + 2 * c_ + 1;  // 2c
    op_->grad_sums(n, x, dy, grad_sums, dgamma_, dbeta_);
    ranks_->allreduce_sum_in_pass(grad_sums, 2 * std::size_t(c_));
    op_->grad_input(n, x, gamma_, dy, grad_sums, dx);
  }

 private:
  float* stats() const { return static_cast<float*>(sums_.data()); }

  float momentum_, eps_;
  Activation act_;
  Communicator* ranks_;
  int c_;
  std::unique_ptr<SyncBatchNormOp> op_;
  std::unique_ptr<BatchNormOp> infer_;
  Buffer sums_;  // the all-reduced sums: forward's c + 1 and c, backward's 2c
  float *gamma_ = nullptr, *beta_ = nullptr, *mean_ = nullptr, *var_ = nullptr;
  float *dgamma_ = nullptr, *dbeta_ = nullptr;
};

}  // namespace

std::unique_ptr<Layer> make_sync_batch_norm(std::string name, const Shape& in, float momentum,
                                            float eps, Activation act, Communicator* ranks) {
  DISTNET_CHECK_USAGE(momentum >= 0.0f && momentum <= 1.0f,
                      "batch-norm momentum must be in [0, 1], got " + std::to_string(momentum));
  return std::make_unique<SyncBatchNormLayer>(std::move(name), in, momentum, eps, act, ranks);
}

}  // namespace distnet
