// The CUDA backend: one GPU, one compute stream on which every op of this rank is queued in
// order, cuDNN and cuBLAS handles bound to that stream, one convolution workspace sized for the
// largest algorithm chosen, and device memory from the caching allocator. Private to src/cuda.
#pragma once

#include <map>
#include <memory>

#include "allocator.hpp"
#include "core/plan_cache.hpp"
#include "distnet/backend.hpp"
#include "distnet/gpu.hpp"
#include "handles.hpp"
#include "stream_clock.hpp"

namespace distnet::cuda {

// What every op of one backend shares.
struct Context {
  Context() = default;
  // Destroys the cuDNN and cuBLAS handles -- each destroy synchronises the device -- unless
  // `leak_handles` is set (the backend's bounded wait at exit failed): then they are given up.
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device = 0;
  gpu::CudaOptions options;
  Stream stream;
  CudnnHandle cudnn;
  CublasHandle cublas;
  Buffer cublas_workspace;

  // The convolution workspace, grown (never shrunk) when an algorithm that needs more is chosen.
  // Growing happens only while plans are made, i.e. in the first step of each batch size.
  void* workspace(std::size_t bytes);
  std::size_t workspace_bytes() const { return workspace_.bytes(); }

  bool leak_handles = false;

  cudnnMathType_t conv_math() const {
    return options.math == gpu::CudaOptions::Math::tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  }

 private:
  Buffer workspace_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const gpu::CudaOptions& options);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda(ctx_->device); }
  std::string description() const override;
  cudaStream_t stream() const { return ctx_->stream; }

  Buffer allocate(std::size_t bytes) override;
  void upload(void* dst, const void* host_src, std::size_t bytes) override;
  void download(void* host_dst, const void* src, std::size_t bytes) override;
  void fill_zero(void* dst, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void synchronize() override;
  const void* stage(const void* host, std::size_t bytes, Buffer& staging) override;
  std::unique_ptr<AsyncRead> make_async_read(std::size_t bytes) override;

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
  bool transforms_images() const override { return true; }
  DeviceClock* device_clock() override;

 private:
  // Page-locked copies of host data for one staging buffer: two, used in turn, each reused once
  // its event says the upload from it (two calls ago, i.e. normally two steps) has finished.
  struct Pinned {
    Buffer host[2];
    Event uploaded[2];
    int next = 0;
  };

  cudaEvent_t record_marker();       // an event recorded now on the compute stream
  void wait_idle(const char* what);  // bounded wait for the compute stream (Error on timeout)
  // The page-locked bounce buffer of upload() and download(), at least min(bytes, kBounceChunk)
  // long; returned (made, grown) only once its last copy is known to be done (bounded wait).
  void* bounce(std::size_t bytes);
  void bounce_queued();  // records bounce_used_ after a copy from or into the buffer
  static constexpr std::size_t kBounceChunk = std::size_t(64) << 20;

  std::shared_ptr<Context> ctx_;
  Event marker_;
  std::map<const Buffer*, Pinned> pinned_;
  Buffer bounce_;                       // page-locked; see bounce()
  Event bounce_used_;                   // recorded after its last copy
  std::unique_ptr<StreamClock> clock_;  // of the compute stream, made on first use
};

// Op factories, one per file (conv2d.cpp, max_pool.cpp, avg_pool.cpp, dense.cpp,
// batch_norm.cpp, sync_batch_norm.cpp).
std::unique_ptr<Conv2dOp> make_conv2d_op(std::shared_ptr<Context> ctx, const Conv2dGeom& g);
std::unique_ptr<MaxPoolOp> make_max_pool_op(std::shared_ptr<Context> ctx, const PoolGeom& g);
std::unique_ptr<AvgPoolOp> make_avg_pool_op(std::shared_ptr<Context> ctx, const PoolGeom& g,
                                            bool count_padding);
std::unique_ptr<DenseOp> make_dense_op(std::shared_ptr<Context> ctx, int in, int out);
std::unique_ptr<BatchNormOp> make_batch_norm_op(std::shared_ptr<Context> ctx, int channels,
                                                int spatial, float eps);
std::unique_ptr<SyncBatchNormOp> make_sync_batch_norm_op(std::shared_ptr<Context> ctx, int channels,
                                                         int spatial, float eps);

}  // namespace distnet::cuda
