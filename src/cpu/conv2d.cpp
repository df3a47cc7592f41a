// Convolution on oneDNN. The primitives pick their preferred (blocked) layouts via format `any`,
// and with convolution_auto their algorithm (direct or Winograd) as well;
// Staged moves data between those and the plain NCHW/OIHW buffers the rest of distnet uses.
#include <string>
#include <unordered_map>

#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

using dnnl::memory;
using dnnl::prop_kind;

struct ConvPlan {
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  Staged f_src, f_w, f_dst;     // forward
  Staged bd_dy, bd_w, bd_dx;    // backward data
  Staged bw_src, bw_dy, bw_dw;  // backward weights
  memory bias, dbias;
  // Backward-data and backward-weights often want dy in the same layout: reorder it once.
  bool dy_layouts_match = false;
};

class CpuConv2d final : public Conv2dOp {
 public:
  CpuConv2d(std::shared_ptr<DnnlContext> ctx, const Conv2dGeom& g, dnnl::algorithm algo)
      : ctx_(std::move(ctx)), g_(g), algo_(algo) {}

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    DISTNET_CHECK((b != nullptr) == g_.bias, bias_mismatch("forward", "b"));
    if (n == 0) return;
    ConvPlan& p = plan(n);
    auto& s = ctx_->stream;
    memory dst = p.f_dst.out(y);
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, p.f_src.in(x, s)}, {DNNL_ARG_WEIGHTS, p.f_w.in(w, s)}, {DNNL_ARG_DST, dst}};
    if (g_.bias) {
      p.bias.set_data_handle(const_cast<float*>(b));
      args[DNNL_ARG_BIAS] = p.bias;
    }
    p.fwd.execute(s, args);
    p.f_dst.finish(s);
    s.wait();
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    DISTNET_CHECK((db != nullptr) == g_.bias, bias_mismatch("backward", "db"));
    ConvPlan& p = plan(n);
    auto& s = ctx_->stream;
    memory dy_staged;
    if (dx) {
      dy_staged = p.bd_dy.in(dy, s);
      memory diff_src = p.bd_dx.out(dx);
      p.bwd_data.execute(s, {{DNNL_ARG_DIFF_DST, dy_staged},
                             {DNNL_ARG_WEIGHTS, p.bd_w.in(w, s)},
                             {DNNL_ARG_DIFF_SRC, diff_src}});
      p.bd_dx.finish(s);
    }
    memory diff_w = p.bw_dw.out(dw);
    const memory dy_for_weights = dx && p.dy_layouts_match ? dy_staged : p.bw_dy.in(dy, s);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.bw_src.in(x, s)},
                                         {DNNL_ARG_DIFF_DST, dy_for_weights},
                                         {DNNL_ARG_DIFF_WEIGHTS, diff_w}};
    if (g_.bias) {
      p.dbias.set_data_handle(db);
      args[DNNL_ARG_DIFF_BIAS] = p.dbias;
    }
    p.bwd_weights.execute(s, args);
    p.bw_dw.finish(s);
    s.wait();
  }

 private:
  ConvPlan& plan(int n) {
    return plans_.get(n, [this](int batch) { return build(batch); });
  }

  std::string bias_mismatch(const char* pass, const char* arg) const {
    return std::string("conv2d ") + pass + ": " + arg + " must be " +
           (g_.bias ? "given (the op has a bias)" : "null (the op has no bias)");
  }

  std::unique_ptr<ConvPlan> build(int n) const {
    const auto& e = ctx_->engine;
    const memory::dims src{n, g_.c_in, g_.h_in, g_.w_in};
    // Grouped weights are (groups, c_out / groups, c_in / groups, k, k): the same bytes as the
    // OIHW tensor (c_out, c_in / groups, k, k) that the rest of distnet (and PyTorch) keeps.
    const int gr = g_.groups;
    const memory::dims wts =
        gr == 1 ? memory::dims{g_.c_out, g_.c_in, g_.kernel, g_.kernel}
                : memory::dims{gr, g_.c_out / gr, g_.c_in / gr, g_.kernel, g_.kernel};
    const memory::dims bias{g_.c_out};
    const memory::dims dst{n, g_.c_out, g_.h_out(), g_.w_out()};
    const memory::dims strides{g_.stride, g_.stride}, pad{g_.pad, g_.pad};
    const auto src_any = md(src, tag::any), w_any = md(wts, tag::any), dst_any = md(dst, tag::any);
    const auto bias_md = md(bias, tag::x);
    const auto src_u = md(src, tag::nchw), dst_u = md(dst, tag::nchw);
    const auto w_u = md(wts, gr == 1 ? tag::oihw : tag::goihw);

    using fwd_desc = dnnl::convolution_forward::desc;
    using wts_desc = dnnl::convolution_backward_weights::desc;
    dnnl::convolution_forward::primitive_desc fpd(
        g_.bias ? fwd_desc(prop_kind::forward_training, algo_, src_any, w_any, bias_md, dst_any,
                           strides, pad, pad)
                : fwd_desc(prop_kind::forward_training, algo_, src_any, w_any, dst_any, strides,
                           pad, pad),
        e);
    dnnl::convolution_backward_data::primitive_desc dpd(
        {algo_, src_any, w_any, dst_any, strides, pad, pad}, e, fpd);
    dnnl::convolution_backward_weights::primitive_desc wpd(
        g_.bias ? wts_desc(algo_, src_any, w_any, bias_md, dst_any, strides, pad, pad)
                : wts_desc(algo_, src_any, w_any, dst_any, strides, pad, pad),
        e, fpd);

    auto p = std::make_unique<ConvPlan>();
    p->fwd = dnnl::convolution_forward(fpd);
    p->bwd_data = dnnl::convolution_backward_data(dpd);
    p->bwd_weights = dnnl::convolution_backward_weights(wpd);
    p->f_src = Staged(src_u, fpd.src_desc(), e);
    p->f_w = Staged(w_u, fpd.weights_desc(), e);
    p->f_dst = Staged(dst_u, fpd.dst_desc(), e);
    p->bd_dy = Staged(dst_u, dpd.diff_dst_desc(), e);
    p->bd_w = Staged(w_u, dpd.weights_desc(), e);
    p->bd_dx = Staged(src_u, dpd.diff_src_desc(), e);
    p->bw_src = Staged(src_u, wpd.src_desc(), e);
    p->bw_dy = Staged(dst_u, wpd.diff_dst_desc(), e);
    p->bw_dw = Staged(w_u, wpd.diff_weights_desc(), e);
    p->dy_layouts_match = dpd.diff_dst_desc() == wpd.diff_dst_desc();
    p->bias = memory(bias_md, e, DNNL_MEMORY_NONE);
    p->dbias = memory(bias_md, e, DNNL_MEMORY_NONE);
    return p;
  }

  std::shared_ptr<DnnlContext> ctx_;
  Conv2dGeom g_;
  dnnl::algorithm algo_;
  PlanCache<ConvPlan> plans_;
};

}  // namespace

std::unique_ptr<Conv2dOp> CpuBackend::make_conv2d(const Conv2dGeom& g) {
  const auto algo = options_.conv == CpuOptions::ConvAlgorithm::direct
                        ? dnnl::algorithm::convolution_direct
                        : dnnl::algorithm::convolution_auto;
  auto op = std::make_unique<CpuConv2d>(ctx_, g, algo);
  if (options_.math == CpuOptions::Math::tf32)
    return tf32_conv2d(std::move(op), g, options_.tf32_rounding);
  return op;
}

}  // namespace distnet::cpu
