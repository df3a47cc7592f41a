#include "cuda_backend.hpp"

#include <cstring>

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

void* Context::workspace(std::size_t bytes) {
  if (bytes > workspace_.bytes()) workspace_ = DeviceAllocator::of(device).allocate(bytes);
  return workspace_.data();
}

CudaBackend::CudaBackend(const gpu::CudaOptions& options) : ctx_(std::make_shared<Context>()) {
  ctx_->device = options.device;
  ctx_->options = options;
  DISTNET_CUDA_CHECK(cudaSetDevice(options.device));
  ctx_->stream = make_stream();

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

  cudnnActivationDescriptor_t act = nullptr;
  DISTNET_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act));
  relu_ = ActDesc(act);
  DISTNET_CUDNN_CHECK(
      cudnnSetActivationDescriptor(act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(ctx_->stream);  // nothing queued may outlive the buffers it uses
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
         ")";
}

Buffer CudaBackend::allocate(std::size_t bytes) {
  return DeviceAllocator::of(ctx_->device).allocate(bytes);
}

void CudaBackend::upload(void* dst, const void* host_src, std::size_t bytes) {
  if (!bytes) return;
  DISTNET_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx_->stream));
  DISTNET_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
}

void CudaBackend::download(void* host_dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  DISTNET_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx_->stream));
  DISTNET_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
}

void CudaBackend::fill_zero(void* dst, std::size_t bytes) {
  if (bytes) DISTNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, ctx_->stream));
}

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes && dst != src)
    DISTNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx_->stream));
}

void CudaBackend::synchronize() {
  DISTNET_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
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
  DISTNET_CUDA_CHECK(cudaEventSynchronize(p.uploaded[k]));
  if (p.host[k].bytes() < bytes) p.host[k] = allocate_pinned(bytes);
  std::memcpy(p.host[k].data(), host, bytes);
  DISTNET_CUDA_CHECK(cudaMemcpyAsync(staging.data(), p.host[k].data(), bytes,
                                     cudaMemcpyHostToDevice, ctx_->stream));
  DISTNET_CUDA_CHECK(cudaEventRecord(p.uploaded[k], ctx_->stream));
  return staging.data();
}

std::unique_ptr<Conv2dOp> CudaBackend::make_conv2d(const Conv2dGeom& g) {
  return make_conv2d_op(ctx_, g);
}
std::unique_ptr<MaxPoolOp> CudaBackend::make_max_pool(const PoolGeom& g) {
  return make_max_pool_op(ctx_, g);
}
std::unique_ptr<DenseOp> CudaBackend::make_dense(int in, int out) {
  return make_dense_op(ctx_, in, out);
}
std::unique_ptr<BatchNormOp> CudaBackend::make_batch_norm(int channels, int spatial, float eps) {
  return make_batch_norm_op(ctx_, channels, spatial, eps);
}

// ReLU through cuDNN on a flat view: `count` elements as a (count, 1, 1, 1) tensor.
cudnnTensorDescriptor_t CudaBackend::flat_desc(std::int64_t count) {
  DISTNET_CHECK(count <= INT32_MAX, "activation of " + std::to_string(count) +
                                        " elements is larger than cuDNN's int dimensions");
  auto it = flat_descs_.find(count);
  if (it == flat_descs_.end())
    it = flat_descs_.emplace(count, make_tensor(static_cast<int>(count), 1, 1, 1)).first;
  return it->second;
}

void CudaBackend::relu_forward(std::int64_t count, const float* x, float* y) {
  if (count == 0) return;
  const float one = 1.0f, zero = 0.0f;
  const cudnnTensorDescriptor_t d = flat_desc(count);
  DISTNET_CUDNN_CHECK(cudnnActivationForward(ctx_->cudnn, relu_, &one, d, x, &zero, d, y));
}

// The gradient is taken from the output: y > 0 exactly where x > 0, so y stands in for x.
void CudaBackend::relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) {
  if (count == 0) return;
  const float one = 1.0f, zero = 0.0f;
  const cudnnTensorDescriptor_t d = flat_desc(count);
  DISTNET_CUDNN_CHECK(
      cudnnActivationBackward(ctx_->cudnn, relu_, &one, d, y, d, dy, d, y, &zero, d, dx));
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
                               float grad_scale, float* dlogits, double* stats) {
  launch_softmax_xent(n, classes, logits, labels, grad_scale, dlogits, stats, ctx_->stream);
}

void CudaBackend::sgd_update(std::int64_t count, float* w, const float* g, float* v,
                             const SgdParams& p) {
  launch_sgd(count, w, g, v, p, ctx_->stream);
}

void CudaBackend::resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                                   float* out) {
  launch_resize_normalize(n, spec, images, out, ctx_->stream);
}

}  // namespace cuda
}  // namespace distnet
