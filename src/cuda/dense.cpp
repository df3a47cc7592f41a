// Dense layers through cuBLAS. distnet's matrices are row-major (x: n x in, w: out x in, as the
// checkpoint stores them); cuBLAS is column-major, where the same memory holds the transposes:
// x^T (in x n), w^T (in x out), y^T (out x n). So
//   forward    y^T  = w  x^T    : gemm(T, N) with m = out, n = n,   k = in
//   input grad dx^T = w^T dy^T  : gemm(N, N) with m = in,  n = n,   k = out
//   weight grad dw^T = x^T dy   : gemm(N, T) with m = in,  n = out, k = n
// and the bias: broadcast before the forward GEMM (beta = 1 adds onto it), column sums for db.
#include "cuda_backend.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

class CudaDense final : public DenseOp {
 public:
  CudaDense(std::shared_ptr<Context> ctx, int in, int out)
      : ctx_(std::move(ctx)), in_(in), out_(out) {}

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    if (n == 0) return;
    launch_broadcast_rows(n, out_, b, y, ctx_->stream);
    const float one = 1.0f;
    DISTNET_CUBLAS_CHECK(cublasSgemm(ctx_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, out_, n, in_, &one, w,
                                     in_, x, in_, &one, y, out_));
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    if (n == 0) return;
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUBLAS_CHECK(cublasSgemm(ctx_->cublas, CUBLAS_OP_N, CUBLAS_OP_T, in_, out_, n, &one, x,
                                     in_, dy, out_, &zero, dw, in_));
    launch_column_sums(n, out_, dy, db, ctx_->stream);
    if (dx) {
      DISTNET_CUBLAS_CHECK(cublasSgemm(ctx_->cublas, CUBLAS_OP_N, CUBLAS_OP_N, in_, n, out_, &one,
                                       w, in_, dy, out_, &zero, dx, in_));
    }
  }

 private:
  std::shared_ptr<Context> ctx_;
  int in_, out_;
};

}  // namespace

std::unique_ptr<DenseOp> make_dense_op(std::shared_ptr<Context> ctx, int in, int out) {
  return std::make_unique<CudaDense>(std::move(ctx), in, out);
}

}  // namespace distnet::cuda
