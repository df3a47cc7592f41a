// Max-pooling on oneDNN, plain NCHW. Training forward keeps oneDNN's workspace (the argmax
// positions) per batch size, which backward consumes. oneDNN pads a max pool with -inf, so
// padding never wins; the right/bottom padding equals the left/top, which with oneDNN's
// rounded-down output size is PyTorch's floor rule.
#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

using dnnl::memory;

struct PoolPlan {
  dnnl::pooling_forward fwd_train, fwd_infer;
  dnnl::pooling_backward bwd;
  memory src, dst, workspace, diff_dst, diff_src;
};

class CpuMaxPool final : public MaxPoolOp {
 public:
  CpuMaxPool(std::shared_ptr<DnnlContext> ctx, const PoolGeom& g) : ctx_(std::move(ctx)), g_(g) {}

  void forward(int n, const float* x, float* y, bool training) override {
    if (n == 0) return;
    PoolPlan& p = plan(n);
    p.src.set_data_handle(const_cast<float*>(x));
    p.dst.set_data_handle(y);
    if (training) {
      p.fwd_train.execute(
          ctx_->stream,
          {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}, {DNNL_ARG_WORKSPACE, p.workspace}});
    } else {
      p.fwd_infer.execute(ctx_->stream, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}});
    }
    ctx_->stream.wait();
  }

  void backward(int n, const float* dy, float* dx) override {
    if (n == 0) return;
    PoolPlan& p = plan(n);
    p.diff_dst.set_data_handle(const_cast<float*>(dy));
    p.diff_src.set_data_handle(dx);
    p.bwd.execute(ctx_->stream, {{DNNL_ARG_DIFF_DST, p.diff_dst},
                                 {DNNL_ARG_DIFF_SRC, p.diff_src},
                                 {DNNL_ARG_WORKSPACE, p.workspace}});
    ctx_->stream.wait();
  }

 private:
  PoolPlan& plan(int n) {
    return plans_.get(n, [this](int batch) { return build(batch); });
  }

  std::unique_ptr<PoolPlan> build(int n) const {
    const auto& e = ctx_->engine;
    const auto src = md({n, g_.c, g_.h_in, g_.w_in}, tag::nchw);
    const auto dst = md({n, g_.c, g_.h_out(), g_.w_out()}, tag::nchw);
    const memory::dims k{g_.kernel, g_.kernel}, s{g_.stride, g_.stride}, pad{g_.pad, g_.pad};
    dnnl::pooling_forward::primitive_desc train_pd(
        {dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, src, dst, s, k, pad, pad},
        e);
    dnnl::pooling_forward::primitive_desc infer_pd(
        {dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src, dst, s, k, pad,
         pad},
        e);
    dnnl::pooling_backward::primitive_desc bwd_pd(
        {dnnl::algorithm::pooling_max, src, dst, s, k, pad, pad}, e, train_pd);
    auto p = std::make_unique<PoolPlan>();
    p->fwd_train = dnnl::pooling_forward(train_pd);
    p->fwd_infer = dnnl::pooling_forward(infer_pd);
    p->bwd = dnnl::pooling_backward(bwd_pd);
    p->src = memory(src, e, DNNL_MEMORY_NONE);
    p->dst = memory(dst, e, DNNL_MEMORY_NONE);
    p->diff_src = memory(src, e, DNNL_MEMORY_NONE);
    p->diff_dst = memory(dst, e, DNNL_MEMORY_NONE);
    p->workspace = memory(train_pd.workspace_desc(), e);
    return p;
  }

  std::shared_ptr<DnnlContext> ctx_;
  PoolGeom g_;
  PlanCache<PoolPlan> plans_;
};

}  // namespace

std::unique_ptr<MaxPoolOp> CpuBackend::make_max_pool(const PoolGeom& g) {
  return std::make_unique<CpuMaxPool>(ctx_, g);
}

}  // namespace distnet::cpu
