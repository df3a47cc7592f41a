// The CPU backend: oneDNN primitives for conv, pooling, dense and batch-norm; OpenMP loops of ours
// for the element-wise ops, the loss and the optimizer. Private to src/cpu.
#pragma once

#include <map>
#include <memory>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/plan_cache.hpp"
#include "distnet/backend.hpp"

namespace distnet::cpu {

// One engine and one stream for the whole backend; ops keep a shared pointer to it.
struct DnnlContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

// Moves data between a user layout (plain NCHW / OIHW, what the rest of distnet sees) and the
// layout a primitive asked for (often blocked, e.g. nChw16c). When the two agree nothing is copied.
class Staged {
 public:
  Staged() = default;
  Staged(const dnnl::memory::desc& user, const dnnl::memory::desc& want, const dnnl::engine& eng);

  // An input: memory in the wanted layout holding the data at `ptr`.
  dnnl::memory in(const void* ptr, dnnl::stream& s);
  // An output: memory for the primitive to write; call finish() afterwards to land it at `ptr`.
  dnnl::memory out(void* ptr);
  void finish(dnnl::stream& s);

 private:
  dnnl::memory user_;
  dnnl::memory scratch_;
  dnnl::reorder to_want_, to_user_;
  bool same_ = true;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuOptions& options);
  Device device() const override { return Device::cpu(); }
  std::string description() const override;

  Buffer allocate(std::size_t bytes) override;
  void upload(void* dst, const void* host_src, std::size_t bytes) override;
  void download(void* host_dst, const void* src, std::size_t bytes) override;
  void fill_zero(void* dst, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void synchronize() override;
  const void* stage(const void* host, std::size_t, Buffer&) override { return host; }

  std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dGeom& g) override;
  std::unique_ptr<MaxPoolOp> make_max_pool(const PoolGeom& g) override;
  std::unique_ptr<AvgPoolOp> make_avg_pool(const PoolGeom& g, bool count_padding) override;
  std::unique_ptr<DenseOp> make_dense(int in, int out) override;
  std::unique_ptr<BatchNormOp> make_batch_norm(int channels, int spatial, float eps) override;
  std::unique_ptr<SyncBatchNormOp> make_sync_batch_norm(int channels, int spatial,
                                                        float eps) override;

  void adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x,
                                 float* y) override;
  void adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy,
                                  float* dx) override;
  void add(std::int64_t count, const float* a, const float* b, float* y) override;
  void copy_rows(std::int64_t rows, std::int64_t row_floats, const float* src,
                 std::int64_t src_stride, float* dst, std::int64_t dst_stride) override;
  void relu_forward(std::int64_t count, const float* x, float* y) override;
  void relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) override;
  void dropout_forward(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                       const std::uint32_t* sample_ids, const float* x, float* y) override;
  void dropout_backward(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                        const std::uint32_t* sample_ids, const float* dy, float* dx) override;
  void softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                    float grad_scale, float* dlogits, double* stats,
                    float label_smoothing) override;
  void count_nonfinite(std::int64_t count, const float* x, double* acc) override;
  void sum_squares(std::int64_t count, const float* x, double* acc) override;
  void scale(std::int64_t count, float alpha, float* x) override;
  void sgd_update(std::int64_t count, float* w, const float* g, float* v,
                  const SgdParams& p) override;
  void adamw_update(std::int64_t count, float* w, const float* g, float* m, float* v,
                    const AdamWParams& p) override;
  void lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                 double* sums) override;
  void lars_update(int n, const LarsSegment* segments, const double* sums, float* w, const float* g,
                   float* v, const LarsParams& p) override;
  void resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                        float* out) override;

 private:
  std::shared_ptr<DnnlContext> ctx_;
  CpuOptions options_;
};

// CpuOptions::math = tf32: wrappers that round the operands of an FP32 op to TF32 (tf32.cpp).
std::unique_ptr<Conv2dOp> tf32_conv2d(std::unique_ptr<Conv2dOp> fp32, const Conv2dGeom& g,
                                      Tf32Rounding r);
std::unique_ptr<DenseOp> tf32_dense(std::unique_ptr<DenseOp> fp32, int in, int out, Tf32Rounding r);

// Short names for oneDNN descriptors used by every op file.
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
inline dnnl::memory::desc md(const dnnl::memory::dims& d, tag t) {
  return {d, dt::f32, t};
}

}  // namespace distnet::cpu
