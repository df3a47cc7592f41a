// Average pooling on oneDNN, plain NCHW: pooling_avg_include_padding (the divisor is always
// kernel^2, PyTorch's count_include_pad=True) or pooling_avg_exclude_padding (the input positions
// of the window only). Nothing is kept between forward and backward.
#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

using dnnl::memory;

struct AvgPoolPlan {
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward bwd;
  memory src, dst, diff_dst, diff_src;
};

class CpuAvgPool final : public AvgPoolOp {
 public:
  CpuAvgPool(std::shared_ptr<DnnlContext> ctx, const PoolGeom& g, bool count_padding)
      : ctx_(std::move(ctx)),
        g_(g),
        algo_(count_padding ? dnnl::algorithm::pooling_avg_include_padding
                            : dnnl::algorithm::pooling_avg_exclude_padding) {}

  void forward(int n, const float* x, float* y) override {
    if (n == 0) return;
    AvgPoolPlan& p = plan(n);
    p.src.set_data_handle(const_cast<float*>(x));
    p.dst.set_data_handle(y);
    p.fwd.execute(ctx_->stream, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_DST, p.dst}});
    ctx_->stream.wait();
  }

  void backward(int n, const float*, const float*, const float* dy, float* dx) override {
    if (n == 0) return;
    AvgPoolPlan& p = plan(n);
    p.diff_dst.set_data_handle(const_cast<float*>(dy));
    p.diff_src.set_data_handle(dx);
    p.bwd.execute(ctx_->stream, {{DNNL_ARG_DIFF_DST, p.diff_dst}, {DNNL_ARG_DIFF_SRC, p.diff_src}});
    ctx_->stream.wait();
  }

 private:
  AvgPoolPlan& plan(int n) {
    return plans_.get(n, [this](int batch) { return build(batch); });
  }

  std::unique_ptr<AvgPoolPlan> build(int n) const {
    const auto& e = ctx_->engine;
    const auto src = md({n, g_.c, g_.h_in, g_.w_in}, tag::nchw);
    const auto dst = md({n, g_.c, g_.h_out(), g_.w_out()}, tag::nchw);
    const memory::dims k{g_.kernel, g_.kernel}, s{g_.stride, g_.stride}, pad{g_.pad, g_.pad};
    // forward_training: the hint backward needs (average pooling has no workspace).
    dnnl::pooling_forward::primitive_desc fwd_pd(
        {dnnl::prop_kind::forward_training, algo_, src, dst, s, k, pad, pad}, e);
    dnnl::pooling_backward::primitive_desc bwd_pd({algo_, src, dst, s, k, pad, pad}, e, fwd_pd);
    auto p = std::make_unique<AvgPoolPlan>();
    p->fwd = dnnl::pooling_forward(fwd_pd);
    p->bwd = dnnl::pooling_backward(bwd_pd);
    p->src = memory(src, e, DNNL_MEMORY_NONE);
    p->dst = memory(dst, e, DNNL_MEMORY_NONE);
    p->diff_src = memory(src, e, DNNL_MEMORY_NONE);
    p->diff_dst = memory(dst, e, DNNL_MEMORY_NONE);
    return p;
  }

  std::shared_ptr<DnnlContext> ctx_;
  PoolGeom g_;
  dnnl::algorithm algo_;
  PlanCache<AvgPoolPlan> plans_;
};

}  // namespace

std::unique_ptr<AvgPoolOp> CpuBackend::make_avg_pool(const PoolGeom& g, bool count_padding) {
  return std::make_unique<CpuAvgPool>(ctx_, g, count_padding);
}

}  // namespace distnet::cpu
