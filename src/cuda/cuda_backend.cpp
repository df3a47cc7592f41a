#include "cuda_backend.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "host_wait.hpp"
#include "kernels.hpp"

namespace distnet {
namespace gpu {

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options) {
  std::string why;
  const int visible = usable_devices(&why);
  if (visible == 0) throw UsageError("--device cuda: " + why);
  if (options.device < 0 || options.device >= visible) {
    throw UsageError("GPU " + std::to_string(options.device) + " requested but only " +
                     std::to_string(visible) + " visible (CUDA_VISIBLE_DEVICES)");
  }
  return std::make_unique<cuda::CudaBackend>(options);
}

}  // namespace gpu

namespace cuda {

namespace {

// Moves `x` to the heap and never frees it: on the way to an abort, freeing page-locked memory
// (cudaFreeHost) could wait for device work that never ends.
template <typename T>
void leak(T& x) {
  (void)new T(std::move(x));
}

}  // namespace

Context::~Context() {
  if (!leak_handles) return;  // the members' destructors destroy the handles
  cudnn.release();
  cublas.release();
}

void* Context::workspace(std::size_t bytes) {
  if (bytes > workspace_.bytes()) workspace_ = DeviceAllocator::of(device).allocate(bytes);
  return workspace_.data();
}

CudaBackend::CudaBackend(const gpu::CudaOptions& options) : ctx_(std::make_shared<Context>()) {
  ctx_->device = options.device;
  ctx_->options = options;
  DISTNET_CUDA_CHECK(cudaSetDevice(options.device));
  ctx_->stream = make_stream();
  DeviceAllocator::of(options.device).set_wait_timeout(options.host_wait_timeout_s);

  cudnnHandle_t dnn = nullptr;
  DISTNET_CUDNN_CHECK(cudnnCreate(&dnn));
  ctx_->cudnn = CudnnHandle(dnn);
  DISTNET_CUDNN_CHECK(cudnnSetStream(dnn, ctx_->stream));

  cublasHandle_t blas = nullptr;
  DISTNET_CUBLAS_CHECK(cublasCreate(&blas));
  ctx_->cublas = CublasHandle(blas);
  DISTNET_CUBLAS_CHECK(cublasSetStream(blas, ctx_->stream));
  DISTNET_CUBLAS_CHECK(cublasSetMathMode(blas, options.math == gpu::CudaOptions::Math::tf32
                                                   ? CUBLAS_TF32_TENSOR_OP_MATH
                                                   : CUBLAS_DEFAULT_MATH));
  // cuBLAS's own workspace from our allocator, so it never allocates inside a step (32 MiB is
  // what NVIDIA recommends for Hopper).
  ctx_->cublas_workspace = allocate(32u << 20);
  DISTNET_CUBLAS_CHECK(
      cublasSetWorkspace(blas, ctx_->cublas_workspace.data(), ctx_->cublas_workspace.bytes()));
}

// Nothing queued may outlive the buffers it uses, so the queue is drained first -- with a bound:
// after a failure the queue may hold work that waits for a collective a dead peer never joins
// (the abort path has revoked and aborted NCCL's side by then, see abort.hpp). If the wait gives
// up, nothing that would wait for the device is destroyed: the cuDNN and cuBLAS handles (their
// destroy synchronises the device) and the page-locked buffers (cudaFreeHost) are leaked, and
// the process leaves (it is on its way to an abort or an error exit).
CudaBackend::~CudaBackend() {
  bool drained = false;
  try {
    drained = wait_event_for(record_marker(), ctx_->options.host_wait_timeout_s);
    if (!drained)
      std::fprintf(stderr,
                   "alexnet: warning: GPU work still queued at exit after %g s; leaving it (its "
                   "handles and page-locked buffers are not freed)\n",
                   ctx_->options.host_wait_timeout_s);
  } catch (const std::exception&) {
    // A device error at exit: the queue will not run any more; freeing is safe.
    drained = true;
  }
  if (drained) return;
  ctx_->leak_handles = true;
  leak(bounce_);
  for (auto& [staging, p] : pinned_) leak(p.host[0]), leak(p.host[1]);
}

cudaEvent_t CudaBackend::record_marker() {
  if (!marker_.get()) marker_ = make_event();
  DISTNET_CUDA_CHECK(cudaEventRecord(marker_, ctx_->stream));
  return marker_;
}

void CudaBackend::wait_idle(const char* what) {
  if (!marker_.get()) marker_ = make_event();
  wait_stream(ctx_->stream, marker_, ctx_->options.host_wait_timeout_s, what);
}

std::string CudaBackend::description() const {
  const gpu::DeviceInfo info = gpu::device_info(ctx_->device);
  const std::size_t v = cudnnGetVersion();
  return "cuda:" + std::to_string(ctx_->device) + " " + info.name + " (sm_" +
         std::to_string(info.major) + std::to_string(info.minor) + ", cuDNN " +
         std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + ", math " +
         (ctx_->options.math == gpu::CudaOptions::Math::tf32 ? "tf32" : "fp32") +
         ", conv algorithms by " +
         (ctx_->options.conv_search == gpu::CudaOptions::ConvSearch::find ? "find" : "heuristic") +
         (ctx_->options.deterministic ? ", deterministic only" : "") + ")";
}

Buffer CudaBackend::allocate(std::size_t bytes) {
  return DeviceAllocator::of(ctx_->device).allocate(bytes);
}

void* CudaBackend::bounce(std::size_t bytes) {
  // The buffer's last copy (one whose wait timed out, say) must be done before the host writes
  // into it, reads it again or frees it -- never while the device may still use it.
  if (bounce_used_.get() && !wait_event_for(bounce_used_, ctx_->options.host_wait_timeout_s))
    throw Error(
        "the page-locked copy buffer was still in use after --comm-timeout; the GPU's queue "
        "is stuck behind a collective that a peer rank never joined");
  const std::size_t want = std::min(bytes, kBounceChunk);
  if (bounce_.bytes() < want) bounce_ = allocate_pinned(want);
  return bounce_.data();
}

void CudaBackend::bounce_queued() {
  if (!bounce_used_.get()) bounce_used_ = make_event();
  DISTNET_CUDA_CHECK(cudaEventRecord(bounce_used_, ctx_->stream));
}

// Host memory -> page-locked bounce buffer -> device, a chunk at a time. A copy from pageable
// memory may synchronise with the stream before it starts (CUDA's "API synchronization
// behavior"), i.e. wait without a bound for whatever is queued; from page-locked memory it is
// queued, and the host waits for it with a bound.
void CudaBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(bytes - done, kBounceChunk);
    void* b = bounce(n);  // waits (bounded) for the previous chunk's copy out of it
    std::memcpy(b, static_cast<const char*>(host_src) + done, n);
    DISTNET_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + done, b, n, cudaMemcpyHostToDevice,
                                       ctx_->stream));
    bounce_queued();
    done += n;
  }
  if (bytes) wait_idle("copying to the GPU");
}

// Device -> page-locked bounce buffer -> host memory, a chunk at a time. cudaMemcpyAsync into
// pageable memory returns only once the copy is done -- after everything queued before it, which
// may wait for a collective that never completes; into page-locked memory it is queued, and the
// wait for it is bounded by --comm-timeout.
void CudaBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(bytes - done, kBounceChunk);
    void* b = bounce(n);
    DISTNET_CUDA_CHECK(cudaMemcpyAsync(b, static_cast<const char*>(src) + done, n,
                                       cudaMemcpyDeviceToHost, ctx_->stream));
    bounce_queued();
    if (!wait_event_for(bounce_used_, ctx_->options.host_wait_timeout_s))
      throw Error("GPU work did not finish within --comm-timeout " +
                  std::to_string(int(ctx_->options.host_wait_timeout_s)) +
                  " s while copying from the GPU; it waits for a collective that a peer rank "
                  "never joined");
    std::memcpy(static_cast<char*>(host_dst) + done, b, n);
    done += n;
  }
}

void CudaBackend::fill_zero(void* dst, std::size_t bytes) {
  if (bytes) DISTNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, ctx_->stream));
}

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src)
    DISTNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx_->stream));
}

void CudaBackend::synchronize() {
  wait_idle("waiting for the GPU");
}

DeviceClock* CudaBackend::device_clock() {
  if (!clock_)
    clock_ = std::make_unique<StreamClock>(ctx_->stream, ctx_->options.host_wait_timeout_s);
  return clock_.get();
}

// Host data -> pinned copy -> device, queued on the compute stream; the host returns as soon as
// the pinned copy is made. Two pinned copies per staging buffer take turns, so the wait for the
// older upload's event is, in a training loop, a wait for the step before last: none.
const void* CudaBackend::stage(const void* host, std::size_t bytes, Buffer& staging) {
  if (staging.bytes() < bytes) staging = allocate(bytes);
  if (bytes == 0) return staging.data();
  Pinned& p = pinned_[&staging];
  const int k = p.next;
  p.next = 1 - k;
  if (!p.uploaded[k].get()) p.uploaded[k] = make_event();
  if (!wait_event_for(p.uploaded[k], ctx_->options.host_wait_timeout_s))
    throw Error(
        "an input upload did not finish within --comm-timeout; the GPU's queue is stuck "
        "behind a collective that a peer rank never joined");
  if (p.host[k].bytes() < bytes) p.host[k] = allocate_pinned(bytes);
  std::memcpy(p.host[k].data(), host, bytes);
  DISTNET_CUDA_CHECK(cudaMemcpyAsync(staging.data(), p.host[k].data(), bytes,
                                     cudaMemcpyHostToDevice, ctx_->stream));
  DISTNET_CUDA_CHECK(cudaEventRecord(p.uploaded[k], ctx_->stream));
  return staging.data();
}

namespace {

// A device-to-host copy into page-locked memory, queued on the compute stream; an event says when
// it has arrived. The host never waits for it.
class PinnedRead final : public AsyncRead {
 public:
  PinnedRead(cudaStream_t stream, std::size_t bytes)
      : stream_(stream), host_(allocate_pinned(bytes)), arrived_(make_event()) {}
  void start(const void* src) override {
    DISTNET_CUDA_CHECK(
        cudaMemcpyAsync(host_.data(), src, host_.bytes(), cudaMemcpyDeviceToHost, stream_));
    DISTNET_CUDA_CHECK(cudaEventRecord(arrived_, stream_));
  }
  bool ready() override {
    const cudaError_t q = cudaEventQuery(arrived_);
    if (q == cudaErrorNotReady) return false;
    DISTNET_CUDA_CHECK(q);
    return true;
  }
  const void* data() const override { return host_.data(); }

 private:
  cudaStream_t stream_;
  Buffer host_;
  Event arrived_;
};

}  // namespace

std::unique_ptr<AsyncRead> CudaBackend::make_async_read(std::size_t bytes) {
  return std::make_unique<PinnedRead>(ctx_->stream, bytes);
}

std::unique_ptr<Conv2dOp> CudaBackend::make_conv2d(const Conv2dGeom& g) {
  return make_conv2d_op(ctx_, g);
}
std::unique_ptr<MaxPoolOp> CudaBackend::make_max_pool(const PoolGeom& g) {
  return make_max_pool_op(ctx_, g);
}
std::unique_ptr<AvgPoolOp> CudaBackend::make_avg_pool(const PoolGeom& g, bool count_padding) {
  return make_avg_pool_op(ctx_, g, count_padding);
}
std::unique_ptr<DenseOp> CudaBackend::make_dense(int in, int out) {
  return make_dense_op(ctx_, in, out);
}
std::unique_ptr<BatchNormOp> CudaBackend::make_batch_norm(int channels, int spatial, float eps) {
  return make_batch_norm_op(ctx_, channels, spatial, eps);
}
std::unique_ptr<SyncBatchNormOp> CudaBackend::make_sync_batch_norm(int channels, int spatial,
                                                                   float eps) {
  return make_sync_batch_norm_op(ctx_, channels, spatial, eps);
}

void CudaBackend::adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x,
                                            float* y) {
  launch_adaptive_avg_pool_forward(n, g, x, y, ctx_->stream);
}

void CudaBackend::adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy,
                                             float* dx) {
  launch_adaptive_avg_pool_backward(n, g, dy, dx, ctx_->stream);
}

void CudaBackend::add(std::int64_t count, const float* a, const float* b, float* y) {
  launch_add(count, a, b, y, ctx_->stream);
}

void CudaBackend::copy_rows(std::int64_t rows, std::int64_t row_floats, const float* src,
                            std::int64_t src_stride, float* dst, std::int64_t dst_stride) {
  if (rows == 0 || row_floats == 0) return;
  constexpr std::size_t f = sizeof(float);
  DISTNET_CUDA_CHECK(cudaMemcpy2DAsync(
      dst, f * static_cast<std::size_t>(dst_stride), src, f * static_cast<std::size_t>(src_stride),
      f * static_cast<std::size_t>(row_floats), static_cast<std::size_t>(rows),
      cudaMemcpyDeviceToDevice, ctx_->stream));
}

void CudaBackend::relu_forward(std::int64_t count, const float* x, float* y) {
  launch_relu_forward(count, x, y, ctx_->stream);
}

void CudaBackend::relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) {
  launch_relu_backward(count, y, dy, dx, ctx_->stream);
}

void CudaBackend::dropout_forward(int n, std::int64_t per_sample, float p_drop,
                                  const DropoutKey& key, const std::uint32_t* sample_ids,
                                  const float* x, float* y) {
  launch_dropout(n, per_sample, p_drop, key, sample_ids, x, y, ctx_->stream);
}

// The mask is drawn again from the same counters; scaling dy by it is the gradient.
void CudaBackend::dropout_backward(int n, std::int64_t per_sample, float p_drop,
                                   const DropoutKey& key, const std::uint32_t* sample_ids,
                                   const float* dy, float* dx) {
  launch_dropout(n, per_sample, p_drop, key, sample_ids, dy, dx, ctx_->stream);
}

void CudaBackend::softmax_xent(int n, int classes, const float* logits, const std::int32_t* labels,
                               float grad_scale, float* dlogits, double* stats,
                               float label_smoothing) {
  DISTNET_CHECK(label_smoothing >= 0.0f && label_smoothing < 1.0f,
                "label smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  // The blocks' partial sums in a block of the caching allocator: freed right after the launch,
  // which is safe, as every use of it is ordered on the compute stream (allocator.hpp).
  Buffer partials = allocate(3 * sizeof(double) * std::size_t(softmax_xent_blocks(n)));
  launch_softmax_xent(n, classes, logits, labels, grad_scale, label_smoothing, dlogits, stats,
                      static_cast<double*>(partials.data()), ctx_->stream);
}

void CudaBackend::count_nonfinite(std::int64_t count, const float* x, double* acc) {
  launch_count_nonfinite(count, x, acc, ctx_->stream);
}

void CudaBackend::sum_squares(std::int64_t count, const float* x, double* acc) {
  launch_sum_squares(count, x, acc, ctx_->stream);
}

void CudaBackend::scale(std::int64_t count, float alpha, float* x) {
  launch_scale(count, alpha, x, ctx_->stream);
}

void CudaBackend::sgd_update(std::int64_t count, float* w, const float* g, float* v,
                             const SgdParams& p) {
  launch_sgd(count, w, g, v, p, ctx_->stream);
}

void CudaBackend::adamw_update(std::int64_t count, float* w, const float* g, float* m, float* v,
                               const AdamWParams& p) {
  launch_adamw(count, w, g, m, v, p, ctx_->stream);
}

void CudaBackend::lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                            double* sums) {
  launch_lars_sums(n, segments, w, g, sums, ctx_->stream);
}

void CudaBackend::lars_update(int n, const LarsSegment* segments, const double* sums, float* w,
                              const float* g, float* v, const LarsParams& p) {
  launch_lars_update(n, segments, sums, w, g, v, p, ctx_->stream);
}

void CudaBackend::resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                                   float* out) {
  launch_resize_normalize(n, spec, images, out, ctx_->stream);
}

}  // namespace cuda
}  // namespace distnet
