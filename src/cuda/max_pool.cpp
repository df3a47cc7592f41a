// Max-pooling through cuDNN (the deterministic variant, so backward gives the same gradients on
// every run). cuDNN's backward needs the forward's input and output; the op remembers where they
// were in the last training forward (both stay in place until backward: the model keeps every
// layer's output).
#include "cuda_backend.hpp"

namespace distnet::cuda {
namespace {

struct PoolPlan {
  TensorDesc x, y;
};

class CudaMaxPool final : public MaxPoolOp {
 public:
  CudaMaxPool(std::shared_ptr<Context> ctx, const PoolGeom& g) : ctx_(std::move(ctx)), g_(g) {
    cudnnPoolingDescriptor_t d = nullptr;
    DISTNET_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&d));
    pool_ = PoolDesc(d);
    // Padded positions never win a cuDNN max (they are not part of the input).
    DISTNET_CUDNN_CHECK(cudnnSetPooling2dDescriptor(d, CUDNN_POOLING_MAX_DETERMINISTIC,
                                                    CUDNN_NOT_PROPAGATE_NAN, g.kernel, g.kernel,
                                                    g.pad, g.pad, g.stride, g.stride));
  }

  void forward(int n, const float* x, float* y, bool training) override {
    if (n == 0) return;
    PoolPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnPoolingForward(ctx_->cudnn, pool_, &one, p.x, x, &zero, p.y, y));
    if (training) last_ = {n, x, y};
  }

  void backward(int n, const float* dy, float* dx) override {
    if (n == 0) return;
    DISTNET_CHECK(last_.n == n && last_.x != nullptr,
                  "max_pool backward for batch " + std::to_string(n) +
                      " without a training forward of that batch");
    PoolPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnPoolingBackward(ctx_->cudnn, pool_, &one, p.y, last_.y, p.y, dy, p.x,
                                             last_.x, &zero, p.x, dx));
  }

 private:
  PoolPlan& plan(int n) {
    return plans_.get(n, [&](int batch) {
      auto p = std::make_unique<PoolPlan>();
      p->x = make_tensor(batch, g_.c, g_.h_in, g_.w_in);
      p->y = make_tensor(batch, g_.c, g_.h_out(), g_.w_out());
      return p;
    });
  }

  struct Last {
    int n = 0;
    const float* x = nullptr;
    const float* y = nullptr;
  };
  std::shared_ptr<Context> ctx_;
  PoolGeom g_;
  PoolDesc pool_;
  PlanCache<PoolPlan> plans_;
  Last last_;
};

}  // namespace

std::unique_ptr<MaxPoolOp> make_max_pool_op(std::shared_ptr<Context> ctx, const PoolGeom& g) {
  return std::make_unique<CudaMaxPool>(std::move(ctx), g);
}

}  // namespace distnet::cuda
