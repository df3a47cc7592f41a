// Average pooling through cuDNN: CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING (the divisor is
// always kernel^2, PyTorch's count_include_pad=True) or ..._EXCLUDE_PADDING (the window's input
// positions only). Both directions are deterministic (cuDNN's non-deterministic pooling is the
// plain max mode only). cuDNN's backward takes the forward's input and output as well.
#include "cuda_backend.hpp"

namespace distnet::cuda {
namespace {

struct AvgPoolPlan {
  TensorDesc x, y;
};

class CudaAvgPool final : public AvgPoolOp {
 public:
  CudaAvgPool(std::shared_ptr<Context> ctx, const PoolGeom& g, bool count_padding)
      : ctx_(std::move(ctx)), g_(g) {
    cudnnPoolingDescriptor_t d = nullptr;
    DISTNET_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&d));
    pool_ = PoolDesc(d);
    DISTNET_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
        d,
        count_padding ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                      : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
        CUDNN_NOT_PROPAGATE_NAN, g.kernel, g.kernel, g.pad, g.pad, g.stride, g.stride));
  }

  void forward(int n, const float* x, float* y) override {
    if (n == 0) return;
    AvgPoolPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnPoolingForward(ctx_->cudnn, pool_, &one, p.x, x, &zero, p.y, y));
  }

  void backward(int n, const float* x, const float* y, const float* dy, float* dx) override {
    if (n == 0) return;
    AvgPoolPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(
        cudnnPoolingBackward(ctx_->cudnn, pool_, &one, p.y, y, p.y, dy, p.x, x, &zero, p.x, dx));
  }

 private:
  AvgPoolPlan& plan(int n) {
    return plans_.get(n, [&](int batch) {
      auto p = std::make_unique<AvgPoolPlan>();
      p->x = make_tensor(batch, g_.c, g_.h_in, g_.w_in);
      p->y = make_tensor(batch, g_.c, g_.h_out(), g_.w_out());
      return p;
    });
  }

  std::shared_ptr<Context> ctx_;
  PoolGeom g_;
  PoolDesc pool_;
  PlanCache<AvgPoolPlan> plans_;
};

}  // namespace

std::unique_ptr<AvgPoolOp> make_avg_pool_op(std::shared_ptr<Context> ctx, const PoolGeom& g,
                                            bool count_padding) {
  return std::make_unique<CudaAvgPool>(std::move(ctx), g, count_padding);
}

}  // namespace distnet::cuda
