// Spatial batch-norm on oneDNN (plain NCHW, viewed as n x c x spatial x 1). oneDNN produces the
// batch mean and biased variance; the running statistics are updated here.

#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

using dnnl::memory;
using flags = dnnl::normalization_flags;

struct BnPlan {
  dnnl::batch_normalization_forward fwd_train, fwd_infer;
  dnnl::batch_normalization_backward bwd;
  memory x, y, dy, dx, gamma, beta, dgamma, dbeta, run_mean, run_var;
  memory mean, var;  // batch statistics of the last training forward, owned
  // oneDNN 2.6 requires a shift argument in backward although the gradient does not read it.
  memory unused_shift;
};

class CpuBatchNorm final : public BatchNormOp {
 public:
  CpuBatchNorm(std::shared_ptr<DnnlContext> ctx, int channels, int spatial, float eps)
      : ctx_(std::move(ctx)), c_(channels), spatial_(spatial), eps_(eps) {}

  void forward_train(int n, const float* x, const float* gamma, const float* beta, float* y,
                     float* running_mean, float* running_var, float momentum) override {
    if (n == 0) return;
    BnPlan& p = plan(n);
    bind(p.x, x), bind(p.y, y), bind(p.gamma, gamma), bind(p.beta, beta);
    p.fwd_train.execute(ctx_->stream, {{DNNL_ARG_SRC, p.x},
                                       {DNNL_ARG_DST, p.y},
                                       {DNNL_ARG_SCALE, p.gamma},
                                       {DNNL_ARG_SHIFT, p.beta},
                                       {DNNL_ARG_MEAN, p.mean},
                                       {DNNL_ARG_VARIANCE, p.var}});
    ctx_->stream.wait();
    const auto* mean = static_cast<const float*>(p.mean.get_data_handle());
    const auto* var = static_cast<const float*>(p.var.get_data_handle());
    for (int ch = 0; ch < c_; ++ch) {
      running_mean[ch] = momentum * running_mean[ch] + (1.0f - momentum) * mean[ch];
      running_var[ch] = momentum * running_var[ch] + (1.0f - momentum) * var[ch];
    }
  }

  void forward_infer(int n, const float* x, const float* gamma, const float* beta,
                     const float* running_mean, const float* running_var, float* y) override {
    if (n == 0) return;
    BnPlan& p = plan(n);
    bind(p.x, x), bind(p.y, y), bind(p.gamma, gamma), bind(p.beta, beta);
    bind(p.run_mean, running_mean), bind(p.run_var, running_var);
    p.fwd_infer.execute(ctx_->stream, {{DNNL_ARG_SRC, p.x},
                                       {DNNL_ARG_DST, p.y},
                                       {DNNL_ARG_SCALE, p.gamma},
                                       {DNNL_ARG_SHIFT, p.beta},
                                       {DNNL_ARG_MEAN, p.run_mean},
                                       {DNNL_ARG_VARIANCE, p.run_var}});
    ctx_->stream.wait();
  }

  void backward(int n, const float* x, const float* gamma, const float* dy, float* dx,
                float* dgamma, float* dbeta) override {
    BnPlan& p = plan(n);
    bind(p.x, x), bind(p.dy, dy), bind(p.dx, dx), bind(p.gamma, gamma);
    bind(p.dgamma, dgamma), bind(p.dbeta, dbeta);
    p.bwd.execute(ctx_->stream, {{DNNL_ARG_SRC, p.x},
                                 {DNNL_ARG_MEAN, p.mean},
                                 {DNNL_ARG_VARIANCE, p.var},
                                 {DNNL_ARG_DIFF_DST, p.dy},
                                 {DNNL_ARG_SCALE, p.gamma},
                                 {DNNL_ARG_SHIFT, p.unused_shift},
                                 {DNNL_ARG_DIFF_SRC, p.dx},
                                 {DNNL_ARG_DIFF_SCALE, p.dgamma},
                                 {DNNL_ARG_DIFF_SHIFT, p.dbeta}});
    ctx_->stream.wait();
  }

 private:
  static void bind(memory& m, const float* ptr) { m.set_data_handle(const_cast<float*>(ptr)); }

  BnPlan& plan(int n) {
    return plans_.get(n, [this](int batch) { return build(batch); });
  }

  std::unique_ptr<BnPlan> build(int n) const {
    const auto& e = ctx_->engine;
    const auto data = md({n, c_, spatial_, 1}, tag::nchw);
    const auto chan = md({c_}, tag::x);
    const auto ss = flags::use_scale | flags::use_shift;
    dnnl::batch_normalization_forward::primitive_desc train_pd(
        {dnnl::prop_kind::forward_training, data, eps_, ss}, e);
    dnnl::batch_normalization_forward::primitive_desc infer_pd(
        {dnnl::prop_kind::forward_inference, data, eps_, ss | flags::use_global_stats}, e);
    dnnl::batch_normalization_backward::primitive_desc bwd_pd(
        {dnnl::prop_kind::backward, data, data, eps_, ss}, e, train_pd);
    auto p = std::make_unique<BnPlan>();
    p->fwd_train = dnnl::batch_normalization_forward(train_pd);
    p->fwd_infer = dnnl::batch_normalization_forward(infer_pd);
    p->bwd = dnnl::batch_normalization_backward(bwd_pd);
    for (auto* m : {&p->x, &p->y, &p->dy, &p->dx}) *m = memory(data, e, DNNL_MEMORY_NONE);
    for (auto* m : {&p->gamma, &p->beta, &p->dgamma, &p->dbeta, &p->run_mean, &p->run_var})
      *m = memory(chan, e, DNNL_MEMORY_NONE);
    p->mean = memory(chan, e);
    p->var = memory(chan, e);
    p->unused_shift = memory(chan, e);
    return p;
  }

  std::shared_ptr<DnnlContext> ctx_;
  int c_, spatial_;
  float eps_;
  PlanCache<BnPlan> plans_;
};

}  // namespace

std::unique_ptr<BatchNormOp> CpuBackend::make_batch_norm(int channels, int spatial, float eps) {
  return std::make_unique<CpuBatchNorm>(ctx_, channels, spatial, eps);
}

}  // namespace distnet::cpu
