// Convolution through cuDNN. For each batch size the three algorithms (forward, backward-data,
// backward-filter) are chosen once -- by timing them all (find) or by cuDNN's heuristics -- among
// those that fit the workspace limit and respect the math setting, and kept. Each direction has
// its own convolution descriptor so each can carry the math type of its chosen algorithm.
#include <algorithm>
#include <vector>

#include "cuda_backend.hpp"

namespace distnet::cuda {
namespace {

ConvDesc make_conv_desc(const Conv2dGeom& g, cudnnMathType_t math) {
  cudnnConvolutionDescriptor_t d = nullptr;
  DISTNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
  ConvDesc owned(d);
  // CROSS_CORRELATION: the weights are applied unflipped, as in every DL framework.
  DISTNET_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, g.pad, g.pad, g.stride, g.stride, 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  DISTNET_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
  return owned;
}

// Picks from cuDNN's ranked list (fastest first): the first that succeeded, fits the limit and,
// with --math fp32, is not a tensor-core algorithm (which would round inputs to TF32).
template <typename Perf>
const Perf& choose(const std::vector<Perf>& perf, int count, const Context& ctx,
                   const char* direction, const Conv2dGeom& g, int n) {
  const bool fp32 = ctx.options.math == gpu::CudaOptions::Math::fp32;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[std::size_t(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > ctx.options.workspace_limit) continue;
    if (fp32 &&
        (p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
      continue;
    return p;
  }
  throw Error(std::string("cuDNN offers no ") + direction + " convolution algorithm for batch " +
              std::to_string(n) + ", " + std::to_string(g.c_in) + "x" + std::to_string(g.h_in) +
              "x" + std::to_string(g.w_in) + " -> " + std::to_string(g.c_out) + " channels, " +
              std::to_string(g.kernel) + "x" + std::to_string(g.kernel) + " within " +
              std::to_string(ctx.options.workspace_limit >> 20) + " MiB of workspace" +
              (fp32 ? " in FP32 math (try --math tf32)" : ""));
}

// The math type a chosen algorithm runs with: its own, except that --math fp32 pins FMA math.
template <typename Perf>
cudnnMathType_t math_of(const Perf& p, const Context& ctx) {
  return ctx.options.math == gpu::CudaOptions::Math::fp32 ? CUDNN_FMA_MATH : p.mathType;
}

struct ConvPlan {
  TensorDesc x, y;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  std::size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
};

class CudaConv2d final : public Conv2dOp {
 public:
  CudaConv2d(std::shared_ptr<Context> ctx, const Conv2dGeom& g)
      : ctx_(std::move(ctx)),
        g_(g),
        fwd_conv_(make_conv_desc(g, ctx_->conv_math())),
        bwd_data_conv_(make_conv_desc(g, ctx_->conv_math())),
        bwd_filter_conv_(make_conv_desc(g, ctx_->conv_math())),
        bias_(make_tensor(1, g.c_out, 1, 1)) {
    cudnnFilterDescriptor_t w = nullptr;
    DISTNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    w_ = FilterDesc(w);
    DISTNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.c_out,
                                                   g.c_in, g.kernel, g.kernel));
  }

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    if (n == 0) return;
    ConvPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnConvolutionForward(ctx_->cudnn, &one, p.x, x, w_, w, fwd_conv_, p.fwd,
                                                ctx_->workspace(p.fwd_ws), p.fwd_ws, &zero, p.y,
                                                y));
    DISTNET_CUDNN_CHECK(cudnnAddTensor(ctx_->cudnn, &one, bias_, b, &one, p.y, y));
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    if (n == 0) return;
    ConvPlan& p = plan(n);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnConvolutionBackwardBias(ctx_->cudnn, &one, p.y, dy, &zero, bias_, db));
    DISTNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        ctx_->cudnn, &one, p.x, x, p.y, dy, bwd_filter_conv_, p.bwd_filter,
        ctx_->workspace(p.bwd_filter_ws), p.bwd_filter_ws, &zero, w_, dw));
    if (dx) {
      DISTNET_CUDNN_CHECK(cudnnConvolutionBackwardData(
          ctx_->cudnn, &one, w_, w, p.y, dy, bwd_data_conv_, p.bwd_data,
          ctx_->workspace(p.bwd_data_ws), p.bwd_data_ws, &zero, p.x, dx));
    }
  }

 private:
  ConvPlan& plan(int n) {
    return plans_.get(n, [&](int batch) { return make_plan(batch); });
  }

  std::unique_ptr<ConvPlan> make_plan(int n) {
    auto p = std::make_unique<ConvPlan>();
    p->x = make_tensor(n, g_.c_in, g_.h_in, g_.w_in);
    p->y = make_tensor(n, g_.c_out, g_.h_out(), g_.w_out());
    const bool find = ctx_->options.conv_search == gpu::CudaOptions::ConvSearch::find;
    cudnnHandle_t h = ctx_->cudnn;
    int count = 0;

    // Timing runs by cuDNN's Find allocate their own buffers; they happen once per batch size.
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    DISTNET_CUDNN_CHECK(
        find ? cudnnFindConvolutionForwardAlgorithm(h, p->x, w_, fwd_conv_, p->y, int(fwd.size()),
                                                    &count, fwd.data())
             : cudnnGetConvolutionForwardAlgorithm_v7(h, p->x, w_, fwd_conv_, p->y, int(fwd.size()),
                                                      &count, fwd.data()));
    const auto& f = choose(fwd, count, *ctx_, "forward", g_, n);
    p->fwd = f.algo;
    DISTNET_CUDNN_CHECK(cudnnSetConvolutionMathType(fwd_conv_, math_of(f, *ctx_)));
    DISTNET_CUDNN_CHECK(
        cudnnGetConvolutionForwardWorkspaceSize(h, p->x, w_, fwd_conv_, p->y, p->fwd, &p->fwd_ws));

    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> bd(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    DISTNET_CUDNN_CHECK(
        find ? cudnnFindConvolutionBackwardDataAlgorithm(h, w_, p->y, bwd_data_conv_, p->x,
                                                         int(bd.size()), &count, bd.data())
             : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_, p->y, bwd_data_conv_, p->x,
                                                           int(bd.size()), &count, bd.data()));
    const auto& d = choose(bd, count, *ctx_, "backward-data", g_, n);
    p->bwd_data = d.algo;
    DISTNET_CUDNN_CHECK(cudnnSetConvolutionMathType(bwd_data_conv_, math_of(d, *ctx_)));
    DISTNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
        h, w_, p->y, bwd_data_conv_, p->x, p->bwd_data, &p->bwd_data_ws));

    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> bf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    DISTNET_CUDNN_CHECK(
        find ? cudnnFindConvolutionBackwardFilterAlgorithm(h, p->x, p->y, bwd_filter_conv_, w_,
                                                           int(bf.size()), &count, bf.data())
             : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->x, p->y, bwd_filter_conv_, w_,
                                                             int(bf.size()), &count, bf.data()));
    const auto& wf = choose(bf, count, *ctx_, "backward-filter", g_, n);
    p->bwd_filter = wf.algo;
    DISTNET_CUDNN_CHECK(cudnnSetConvolutionMathType(bwd_filter_conv_, math_of(wf, *ctx_)));
    DISTNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, p->x, p->y, bwd_filter_conv_, w_, p->bwd_filter, &p->bwd_filter_ws));

    // One workspace for all layers: grow it now, outside any step's steady state.
    ctx_->workspace(std::max({p->fwd_ws, p->bwd_data_ws, p->bwd_filter_ws}));
    return p;
  }

  std::shared_ptr<Context> ctx_;
  Conv2dGeom g_;
  ConvDesc fwd_conv_, bwd_data_conv_, bwd_filter_conv_;
  FilterDesc w_;
  TensorDesc bias_;
  PlanCache<ConvPlan> plans_;
};

}  // namespace

std::unique_ptr<Conv2dOp> make_conv2d_op(std::shared_ptr<Context> ctx, const Conv2dGeom& g) {
  return std::make_unique<CudaConv2d>(std::move(ctx), g);
}

}  // namespace distnet::cuda
