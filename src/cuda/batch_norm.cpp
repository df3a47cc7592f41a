// Spatial batch-norm through cuDNN (per channel over n x h x w). cuDNN normalises and keeps the
// batch mean and inverse standard deviation for backward; the running statistics are updated by
// our kernel with the biased variance (see batch_norm.cu).
#include "cuda_backend.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

struct BnPlan {
  TensorDesc x;
};

class CudaBatchNorm final : public BatchNormOp {
 public:
  CudaBatchNorm(std::shared_ptr<Context> ctx, int channels, int spatial, float eps)
      : ctx_(std::move(ctx)),
        c_(channels),
        spatial_(spatial),
        eps_(eps),
        param_(make_tensor(1, channels, 1, 1)) {
    DISTNET_CHECK_USAGE(eps >= CUDNN_BN_MIN_EPSILON,
                        "batch-norm epsilon must be >= " + std::to_string(CUDNN_BN_MIN_EPSILON) +
                            " for cuDNN, got " + std::to_string(eps));
    saved_ = DeviceAllocator::of(ctx_->device).allocate(4 * sizeof(float) * std::size_t(c_));
  }

  void forward_train(int n, const float* x, const float* gamma, const float* beta, float* y,
                     float* running_mean, float* running_var, float momentum) override {
    if (n == 0) return;
    const float one = 1.0f, zero = 0.0f;
    // cuDNN's own running averages (unbiased variance) go to a scratch pair that is never read;
    // ours are updated from the saved batch statistics below.
    DISTNET_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        ctx_->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, plan(n).x, x, plan(n).x, y, param_,
        gamma, beta, 1.0, scratch(), scratch() + c_, eps_, mean(), inv_std()));
    launch_bn_running_update(c_, mean(), inv_std(), eps_, momentum, running_mean, running_var,
                             ctx_->stream);
    last_n_ = n;
  }

  void forward_infer(int n, const float* x, const float* gamma, const float* beta,
                     const float* running_mean, const float* running_var, float* y) override {
    if (n == 0) return;
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
        ctx_->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, plan(n).x, x, plan(n).x, y, param_,
        gamma, beta, running_mean, running_var, eps_));
  }

  void backward(int n, const float* x, const float* gamma, const float* dy, float* dx,
                float* dgamma, float* dbeta) override {
    if (n == 0) return;
    DISTNET_CHECK(last_n_ == n, "batch_norm backward for batch " + std::to_string(n) +
                                    " without a training forward of that batch");
    const float one = 1.0f, zero = 0.0f;
    const cudnnTensorDescriptor_t d = plan(n).x;
    DISTNET_CUDNN_CHECK(cudnnBatchNormalizationBackward(
        ctx_->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, d, x, d, dy, d, dx, param_,
        gamma, dgamma, dbeta, eps_, mean(), inv_std()));
  }

 private:
  float* mean() const { return static_cast<float*>(saved_.data()); }
  float* inv_std() const { return static_cast<float*>(saved_.data()) + c_; }
  float* scratch() const { return static_cast<float*>(saved_.data()) + 2 * c_; }
  BnPlan& plan(int n) {
    return plans_.get(n, [&](int batch) {
      auto p = std::make_unique<BnPlan>();
      p->x = make_tensor(batch, c_, spatial_, 1);
      return p;
    });
  }

  std::shared_ptr<Context> ctx_;
  int c_, spatial_;
  float eps_;
  TensorDesc param_;
  Buffer saved_;  // batch mean and inverse std of the last training forward; 2c floats scratch
  PlanCache<BnPlan> plans_;
  int last_n_ = 0;
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batch_norm_op(std::shared_ptr<Context> ctx, int channels,
                                                int spatial, float eps) {
  return std::make_unique<CudaBatchNorm>(std::move(ctx), channels, spatial, eps);
}

}  // namespace distnet::cuda
