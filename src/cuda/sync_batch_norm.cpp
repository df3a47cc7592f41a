// Batch-norm over the ranks' samples (--sync-bn) on the GPU: our kernels (sync_batch_norm.cu) on
// the compute stream. cuDNN's batch-norm computes its statistics from the batch it is given and
// offers no entry point for statistics summed elsewhere, so the sums, the normalisation and dx
// are ours; inference stays with cuDNN (the layer uses the ordinary BatchNormOp for it).
#include "cuda_backend.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

class CudaSyncBatchNorm final : public SyncBatchNormOp {
 public:
  CudaSyncBatchNorm(std::shared_ptr<Context> ctx, int channels, int spatial, float eps)
      : ctx_(std::move(ctx)), c_(channels), spatial_(spatial), eps_(eps) {
    saved_ = DeviceAllocator::of(ctx_->device).allocate(sizeof(float) * std::size_t(2 * c_ + 1));
    DISTNET_CUDA_CHECK(cudaMemsetAsync(saved_.data(), 0, saved_.bytes(), ctx_->stream));
  }

  void sum(int n, const float* x, float* sums) override {
    launch_sync_bn_sum(n, c_, spatial_, x, sums, ctx_->stream);
  }
  void sum_squares(int n, const float* x, const float* sums, float* squares) override {
    launch_sync_bn_sum_squares(n, c_, spatial_, x, sums, squares, ctx_->stream);
  }
  void normalize(int n, const float* x, const float* gamma, const float* beta, const float* sums,
                 const float* squares, float* y, float* running_mean, float* running_var,
                 float momentum) override {
    launch_sync_bn_normalize(n, c_, spatial_, eps_, momentum, x, gamma, beta, sums, squares,
                             saved(), y, running_mean, running_var, ctx_->stream);
  }
  void grad_sums(int n, const float* x, const float* dy, float* grad_sums, float* dgamma,
                 float* dbeta) override {
    launch_sync_bn_grad_sums(n, c_, spatial_, x, dy, saved(), grad_sums, dgamma, dbeta,
                             ctx_->stream);
  }
  void grad_input(int n, const float* x, const float* gamma, const float* dy,
                  const float* grad_sums, float* dx) override {
    launch_sync_bn_grad_input(n, c_, spatial_, x, gamma, dy, saved(), grad_sums, dx, ctx_->stream);
  }

 private:
  float* saved() const { return static_cast<float*>(saved_.data()); }

  std::shared_ptr<Context> ctx_;
  int c_, spatial_;
  float eps_;
  Buffer saved_;  // mean, 1 / sqrt(var + eps), global sample count: see kernels.hpp
};

}  // namespace

std::unique_ptr<SyncBatchNormOp> make_sync_batch_norm_op(std::shared_ptr<Context> ctx, int channels,
                                                         int spatial, float eps) {
  return std::make_unique<CudaSyncBatchNorm>(std::move(ctx), channels, spatial, eps);
}

}  // namespace distnet::cuda
