// The CPU backend's TF32 emulation (CpuOptions::math = tf32): convolution and dense ops whose
// operands are rounded to TF32 before the FP32 op runs. That is what a tensor core computes:
// products of two TF32 values are exact in FP32 (11 + 11 significant bits fit in 24), and the
// accumulation is FP32. Bias terms are added and summed in FP32, as cuDNN's cudnnAddTensor and
// cudnnConvolutionBackwardBias and our dense bias kernels do, so the bias and its gradient see
// the unrounded values.
#include <algorithm>
#include <vector>

#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

// A rounded copy of n floats, in a buffer kept between calls.
const float* rounded(const float* x, std::size_t n, Tf32Rounding r, std::vector<float>& buf) {
  buf.resize(n);
  std::transform(x, x + n, buf.begin(), [r](float v) { return to_tf32(v, r); });
  return buf.data();
}

// db[c] = sum over n and `spatial` of dy, in double (the bias gradient is FP32 on the GPU, and
// this reference must not carry TF32 rounding into it).
void bias_gradient(int n, int channels, std::int64_t spatial, const float* dy, float* db) {
  for (int c = 0; c < channels; ++c) {
    double s = 0;
    for (int i = 0; i < n; ++i) {
      const float* p = dy + (std::int64_t(i) * channels + c) * spatial;
      for (std::int64_t k = 0; k < spatial; ++k) s += p[k];
    }
    db[c] = float(s);
  }
}

class Tf32Conv2d final : public Conv2dOp {
 public:
  Tf32Conv2d(std::unique_ptr<Conv2dOp> fp32, const Conv2dGeom& g, Tf32Rounding r)
      : op_(std::move(fp32)), g_(g), r_(r) {}

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    op_->forward(n, rounded(x, x_count(n), r_, x_), rounded(w, w_count(), r_, w_), b, y);
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    const std::size_t ny = std::size_t(n) * g_.c_out * g_.h_out() * g_.w_out();
    op_->backward(n, rounded(x, x_count(n), r_, x_), rounded(w, w_count(), r_, w_),
                  rounded(dy, ny, r_, dy_), dx, dw, db);
    if (db) bias_gradient(n, g_.c_out, std::int64_t(g_.h_out()) * g_.w_out(), dy, db);
  }

 private:
  std::size_t x_count(int n) const { return std::size_t(n) * g_.c_in * g_.h_in * g_.w_in; }
  std::size_t w_count() const {
    return std::size_t(g_.c_out) * g_.c_in_per_group() * g_.kernel * g_.kernel;
  }

  std::unique_ptr<Conv2dOp> op_;
  Conv2dGeom g_;
  Tf32Rounding r_;
  std::vector<float> x_, w_, dy_;
};

class Tf32Dense final : public DenseOp {
 public:
  Tf32Dense(std::unique_ptr<DenseOp> fp32, int in, int out, Tf32Rounding r)
      : op_(std::move(fp32)), in_(in), out_(out), r_(r) {}

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    op_->forward(n, rounded(x, std::size_t(n) * in_, r_, x_),
                 rounded(w, std::size_t(in_) * out_, r_, w_), b, y);
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    op_->backward(n, rounded(x, std::size_t(n) * in_, r_, x_),
                  rounded(w, std::size_t(in_) * out_, r_, w_),
                  rounded(dy, std::size_t(n) * out_, r_, dy_), dx, dw, db);
    bias_gradient(n, out_, 1, dy, db);
  }

 private:
  std::unique_ptr<DenseOp> op_;
  int in_, out_;
  Tf32Rounding r_;
  std::vector<float> x_, w_, dy_;
};

}  // namespace

std::unique_ptr<Conv2dOp> tf32_conv2d(std::unique_ptr<Conv2dOp> fp32, const Conv2dGeom& g,
                                      Tf32Rounding r) {
  return std::make_unique<Tf32Conv2d>(std::move(fp32), g, r);
}

std::unique_ptr<DenseOp> tf32_dense(std::unique_ptr<DenseOp> fp32, int in, int out,
                                    Tf32Rounding r) {
  return std::make_unique<Tf32Dense>(std::move(fp32), in, out, r);
}

}  // namespace distnet::cpu
