// Convolution through cuDNN. Each batch size gets its own plan: tensor descriptors and, for each
// direction (forward, backward-data, backward-filter), a convolution descriptor of its own whose
// math type is the one its algorithm was chosen with -- cuDNN picks a kernel from the pair
// (algorithm, math type), so a plan made later for another batch size must never change it.
// Directions are planned on first use: an evaluation batch size gets only a forward plan, and the
// first layer, whose input gradient is never asked for, never gets a backward-data algorithm or
// its workspace. Algorithms are chosen by timing every candidate on the real buffers
// (cudnnFind*Ex, with scratch memory from the caching allocator) or from cuDNN's ranked
// heuristics; either way the first candidate that cuDNN accepts for this descriptor, whose
// workspace fits --cudnn-workspace-mb and which respects --math, is kept.
#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "conv_choice.hpp"
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
  // Every descriptor of the op carries the group count (the search's and each direction's), so
  // the algorithms are chosen, and run, for the grouped convolution.
  DISTNET_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, g.groups));
  DISTNET_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
  return owned;
}

// One direction's choice: the algorithm, its workspace, and the descriptor that carries the math
// type it runs with.
template <typename Algo>
struct Choice {
  ConvDesc conv;
  Algo algo{};
  std::size_t workspace = 0;
};

// cuDNN's ranked candidates (fastest first) through pick_algorithm's rules (conv_choice.hpp):
// the first that ran or was suggested without error, has an allowed math type (never FP16
// down-conversion; no tensor cores under --math fp32), is deterministic under --deterministic, and
// that cuDNN accepts on a descriptor set to its math type with a workspace within the limit.
// `workspace_of` returns cuDNN's status for the descriptor and writes the bytes it needs.
template <typename Algo, typename Perf, typename WorkspaceOf>
Choice<Algo> choose(const std::vector<Perf>& perf, int count, const Context& ctx,
                    const Conv2dGeom& g, int n, const char* direction, WorkspaceOf workspace_of) {
  const bool fp32 = ctx.options.math == gpu::CudaOptions::Math::fp32;
  std::vector<AlgoCandidate> candidates;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[std::size_t(i)];
    candidates.push_back({int(p.algo), p.status == CUDNN_STATUS_SUCCESS,
                          p.mathType == CUDNN_TENSOR_OP_MATH ? CandidateMath::tensor_op
                          : p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
                              ? CandidateMath::tensor_op_allow_conversion
                              : CandidateMath::fma,
                          p.determinism == CUDNN_DETERMINISTIC});
  }
  ConvDesc last;  // the descriptor of the candidate asked last: the one kept, if any
  const AlgoPick pick = pick_algorithm(
      candidates, fp32, ctx.options.deterministic, ctx.options.workspace_limit, [&](std::size_t i) {
        const Perf& p = perf[i];
        last = make_conv_desc(g, fp32 ? CUDNN_FMA_MATH : p.mathType);
        WorkspaceAnswer a;
        const cudnnStatus_t s = workspace_of(last.get(), p.algo, &a.bytes);
        a.accepted = s == CUDNN_STATUS_SUCCESS;
        if (!a.accepted) a.error = cudnnGetErrorString(s);
        return a;
      });
  if (pick.index >= 0)
    return Choice<Algo>{std::move(last), perf[std::size_t(pick.index)].algo, pick.workspace};
  throw Error(
      std::string("cuDNN offers no ") + direction + " convolution algorithm for batch " +
      std::to_string(n) + ", " + std::to_string(g.c_in) + "x" + std::to_string(g.h_in) + "x" +
      std::to_string(g.w_in) + " -> " + std::to_string(g.c_out) + " channels, " +
      std::to_string(g.kernel) + "x" + std::to_string(g.kernel) +
      (g.groups > 1 ? " in " + std::to_string(g.groups) + " groups" : "") + " within " +
      std::to_string(ctx.options.workspace_limit >> 20) + " MiB of workspace" +
      (fp32 ? " in FP32 math (try --math tf32)" : "") +
      (ctx.options.deterministic ? " among deterministic algorithms (--deterministic)" : "") +
      (pick.rejected.empty() ? "" : " (rejected algorithms: " + pick.rejected + ")"));
}

// Searches so far (conv_search_counts()), atomic: backends on other threads may search too.
std::atomic<long> searches_forward{0}, searches_backward_data{0}, searches_backward_filter{0};
std::atomic<std::size_t> largest_find_scratch{0};

void count_scratch(const Buffer& scratch) {
  std::size_t seen = largest_find_scratch.load();
  while (scratch.bytes() > seen &&
         !largest_find_scratch.compare_exchange_weak(seen, scratch.bytes()))
    ;
}

// Scratch memory for cudnnFind*Ex, from the caching allocator: the workspace limit, or less when
// the device cannot spare that much (candidates that need more are then reported as failed).
Buffer find_scratch(const Context& ctx) {
  for (std::size_t bytes = ctx.options.workspace_limit;; bytes /= 2) {
    try {
      return DeviceAllocator::of(ctx.device).allocate(bytes);
    } catch (const OutOfMemory&) {
      if (bytes < (std::size_t(1) << 20)) return Buffer();
    }
  }
}

struct ConvPlan {
  TensorDesc x, y;
  std::optional<Choice<cudnnConvolutionFwdAlgo_t>> fwd;
  std::optional<Choice<cudnnConvolutionBwdDataAlgo_t>> bwd_data;
  std::optional<Choice<cudnnConvolutionBwdFilterAlgo_t>> bwd_filter;
};

class CudaConv2d final : public Conv2dOp {
 public:
  CudaConv2d(std::shared_ptr<Context> ctx, const Conv2dGeom& g)
      : ctx_(std::move(ctx)), g_(g), bias_(make_tensor(1, g.c_out, 1, 1)) {
    cudnnFilterDescriptor_t w = nullptr;
    DISTNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    w_ = FilterDesc(w);
    // (c_out, c_in / groups, k, k): cuDNN's grouped filter is PyTorch's and the CPU's OIHW.
    DISTNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.c_out,
                                                   g.c_in_per_group(), g.kernel, g.kernel));
  }

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    DISTNET_CHECK((b != nullptr) == g_.bias, bias_mismatch("forward", "b"));
    if (n == 0) return;
    ConvPlan& p = plan(n);
    if (!p.fwd) p.fwd = choose_forward(p, n, x, w, y);
    const float one = 1.0f, zero = 0.0f;
    DISTNET_CUDNN_CHECK(cudnnConvolutionForward(ctx_->cudnn, &one, p.x, x, w_, w, p.fwd->conv,
                                                p.fwd->algo, ctx_->workspace(p.fwd->workspace),
                                                p.fwd->workspace, &zero, p.y, y));
    if (g_.bias) DISTNET_CUDNN_CHECK(cudnnAddTensor(ctx_->cudnn, &one, bias_, b, &one, p.y, y));
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    DISTNET_CHECK((db != nullptr) == g_.bias, bias_mismatch("backward", "db"));
    if (n == 0) return;
    ConvPlan& p = plan(n);
    if (!p.bwd_filter) p.bwd_filter = choose_backward_filter(p, n, x, dy, dw);
    if (dx && !p.bwd_data) p.bwd_data = choose_backward_data(p, n, w, dy, dx);
    const float one = 1.0f, zero = 0.0f;
    if (g_.bias)
      DISTNET_CUDNN_CHECK(
          cudnnConvolutionBackwardBias(ctx_->cudnn, &one, p.y, dy, &zero, bias_, db));
    DISTNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        ctx_->cudnn, &one, p.x, x, p.y, dy, p.bwd_filter->conv, p.bwd_filter->algo,
        ctx_->workspace(p.bwd_filter->workspace), p.bwd_filter->workspace, &zero, w_, dw));
    if (dx) {
      DISTNET_CUDNN_CHECK(cudnnConvolutionBackwardData(
          ctx_->cudnn, &one, w_, w, p.y, dy, p.bwd_data->conv, p.bwd_data->algo,
          ctx_->workspace(p.bwd_data->workspace), p.bwd_data->workspace, &zero, p.x, dx));
    }
  }

 private:
  ConvPlan& plan(int n) {
    return plans_.get(n, [&](int batch) {
      auto p = std::make_unique<ConvPlan>();
      p->x = make_tensor(batch, g_.c_in, g_.h_in, g_.w_in);
      p->y = make_tensor(batch, g_.c_out, g_.h_out(), g_.w_out());
      return p;
    });
  }

  bool find() const { return ctx_->options.conv_search == gpu::CudaOptions::ConvSearch::find; }

  std::string bias_mismatch(const char* pass, const char* arg) const {
    return std::string("conv2d ") + pass + ": " + arg + " must be " +
           (g_.bias ? "given (the op has a bias)" : "null (the op has no bias)");
  }

  // The descriptor the search runs on: the search's math (tensor cores allowed with tf32).
  ConvDesc search_desc() const { return make_conv_desc(g_, ctx_->conv_math()); }

  // Each choice grows the shared workspace now, outside any step's steady state.
  template <typename C>
  C keep(C c) {
    ctx_->workspace(c.workspace);
    return c;
  }

  Choice<cudnnConvolutionFwdAlgo_t> choose_forward(ConvPlan& p, int n, const float* x,
                                                   const float* w, float* y) {
    ++searches_forward;
    cudnnHandle_t h = ctx_->cudnn;
    const ConvDesc search = search_desc();
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    int count = 0;
    if (find()) {
      Buffer scratch = find_scratch(*ctx_);
      count_scratch(scratch);
      DISTNET_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
          h, p.x, x, w_, w, search, p.y, y, int(perf.size()), &count, perf.data(), scratch.data(),
          scratch.bytes()));
    } else {
      DISTNET_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
          h, p.x, w_, search, p.y, int(perf.size()), &count, perf.data()));
    }
    return keep(choose<cudnnConvolutionFwdAlgo_t>(
        perf, count, *ctx_, g_, n, "forward",
        [&](cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo, std::size_t* ws) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, w_, conv, p.y, algo, ws);
        }));
  }

  Choice<cudnnConvolutionBwdDataAlgo_t> choose_backward_data(ConvPlan& p, int n, const float* w,
                                                             const float* dy, float* dx) {
    ++searches_backward_data;
    cudnnHandle_t h = ctx_->cudnn;
    const ConvDesc search = search_desc();
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    int count = 0;
    if (find()) {
      Buffer scratch = find_scratch(*ctx_);
      count_scratch(scratch);
      DISTNET_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          h, w_, w, p.y, dy, search, p.x, dx, int(perf.size()), &count, perf.data(), scratch.data(),
          scratch.bytes()));
    } else {
      DISTNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          h, w_, p.y, search, p.x, int(perf.size()), &count, perf.data()));
    }
    return keep(choose<cudnnConvolutionBwdDataAlgo_t>(
        perf, count, *ctx_, g_, n, "backward-data",
        [&](cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
            std::size_t* ws) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_, p.y, conv, p.x, algo, ws);
        }));
  }

  Choice<cudnnConvolutionBwdFilterAlgo_t> choose_backward_filter(ConvPlan& p, int n, const float* x,
                                                                 const float* dy, float* dw) {
    ++searches_backward_filter;
    cudnnHandle_t h = ctx_->cudnn;
    const ConvDesc search = search_desc();
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    int count = 0;
    if (find()) {
      Buffer scratch = find_scratch(*ctx_);
      count_scratch(scratch);
      DISTNET_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          h, p.x, x, p.y, dy, search, w_, dw, int(perf.size()), &count, perf.data(), scratch.data(),
          scratch.bytes()));
    } else {
      DISTNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          h, p.x, p.y, search, w_, int(perf.size()), &count, perf.data()));
    }
    return keep(choose<cudnnConvolutionBwdFilterAlgo_t>(
        perf, count, *ctx_, g_, n, "backward-filter",
        [&](cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
            std::size_t* ws) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, conv, w_, algo, ws);
        }));
  }

  std::shared_ptr<Context> ctx_;
  Conv2dGeom g_;
  FilterDesc w_;
  TensorDesc bias_;
  PlanCache<ConvPlan> plans_;
};

}  // namespace

ConvSearchCounts conv_search_counts() {
  return {searches_forward.load(), searches_backward_data.load(), searches_backward_filter.load(),
          largest_find_scratch.load()};
}

std::unique_ptr<Conv2dOp> make_conv2d_op(std::shared_ptr<Context> ctx, const Conv2dGeom& g) {
  return std::make_unique<CudaConv2d>(std::move(ctx), g);
}

}  // namespace distnet::cuda
