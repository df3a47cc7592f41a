// Dense (fully connected) layers on oneDNN's inner product, all in plain layouts: the weights
// stay (out, in) in the flat parameter buffer, and oneDNN runs these shapes as GEMMs.
#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

using dnnl::memory;

struct DensePlan {
  dnnl::inner_product_forward fwd;
  dnnl::inner_product_backward_data bwd_data;
  dnnl::inner_product_backward_weights bwd_weights;
  memory x, w, b, y, dy, dx, dw, db;
};

class CpuDense final : public DenseOp {
 public:
  CpuDense(std::shared_ptr<DnnlContext> ctx, int in, int out)
      : ctx_(std::move(ctx)), in_(in), out_(out) {}

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    if (n == 0) return;
    DensePlan& p = plan(n);
    bind(p.x, x), bind(p.w, w), bind(p.b, b), bind(p.y, y);
    p.fwd.execute(
        ctx_->stream,
        {{DNNL_ARG_SRC, p.x}, {DNNL_ARG_WEIGHTS, p.w}, {DNNL_ARG_BIAS, p.b}, {DNNL_ARG_DST, p.y}});
    ctx_->stream.wait();
  }

  void backward(int n, const float* x, const float* w, const float* dy, float* dx, float* dw,
                float* db) override {
    DensePlan& p = plan(n);
    bind(p.dy, dy);
    if (dx) {
      bind(p.w, w), bind(p.dx, dx);
      p.bwd_data.execute(
          ctx_->stream,
          {{DNNL_ARG_DIFF_DST, p.dy}, {DNNL_ARG_WEIGHTS, p.w}, {DNNL_ARG_DIFF_SRC, p.dx}});
    }
    bind(p.x, x), bind(p.dw, dw), bind(p.db, db);
    p.bwd_weights.execute(ctx_->stream, {{DNNL_ARG_SRC, p.x},
                                         {DNNL_ARG_DIFF_DST, p.dy},
                                         {DNNL_ARG_DIFF_WEIGHTS, p.dw},
                                         {DNNL_ARG_DIFF_BIAS, p.db}});
    ctx_->stream.wait();
  }

 private:
  static void bind(memory& m, const float* ptr) { m.set_data_handle(const_cast<float*>(ptr)); }

  DensePlan& plan(int n) {
    return plans_.get(n, [this](int batch) { return build(batch); });
  }

  std::unique_ptr<DensePlan> build(int n) const {
    const auto& e = ctx_->engine;
    const auto x = md({n, in_}, tag::nc), w = md({out_, in_}, tag::oi), b = md({out_}, tag::x);
    const auto y = md({n, out_}, tag::nc);
    dnnl::inner_product_forward::primitive_desc fpd({dnnl::prop_kind::forward_training, x, w, b, y},
                                                    e);
    dnnl::inner_product_backward_data::primitive_desc dpd({x, w, y}, e, fpd);
    dnnl::inner_product_backward_weights::primitive_desc wpd({x, w, b, y}, e, fpd);
    auto p = std::make_unique<DensePlan>();
    p->fwd = dnnl::inner_product_forward(fpd);
    p->bwd_data = dnnl::inner_product_backward_data(dpd);
    p->bwd_weights = dnnl::inner_product_backward_weights(wpd);
    for (auto* m : {&p->x, &p->dx}) *m = memory(x, e, DNNL_MEMORY_NONE);
    for (auto* m : {&p->w, &p->dw}) *m = memory(w, e, DNNL_MEMORY_NONE);
    for (auto* m : {&p->b, &p->db}) *m = memory(b, e, DNNL_MEMORY_NONE);
    for (auto* m : {&p->y, &p->dy}) *m = memory(y, e, DNNL_MEMORY_NONE);
    return p;
  }

  std::shared_ptr<DnnlContext> ctx_;
  int in_, out_;
  PlanCache<DensePlan> plans_;
};

}  // namespace

std::unique_ptr<DenseOp> CpuBackend::make_dense(int in, int out) {
  auto op = std::make_unique<CpuDense>(ctx_, in, out);
  if (options_.math == CpuOptions::Math::tf32)
    return tf32_dense(std::move(op), in, out, options_.tf32_rounding);
  return op;
}

}  // namespace distnet::cpu
