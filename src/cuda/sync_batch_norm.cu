// Kernels of the batch-norm over the ranks' samples (--sync-bn; the op is sync_batch_norm.cpp).
// The per-channel sums run one block per channel: each thread adds a strided share of the
// channel's n x spatial values in double, then the block adds the threads' sums in a fixed tree,
// so a result does not depend on scheduling. They mirror the CPU backend's loops
// (src/cpu/sync_batch_norm.cpp), which are the reference in tests/cuda/test_cuda_ops.cpp.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

// Where value k of channel c lies in an NCHW (n x channels x spatial) tensor.
__device__ std::int64_t value_at(std::int64_t k, int c, int channels, int spatial) {
  const std::int64_t i = k / spatial;
  return (i * channels + c) * spatial + (k - i * spatial);
}

// The sum of `v` over the block's kThreads threads, valid in thread 0. `part` is the block's own
// shared array (one per sum, so two sums need no barrier between them).
__device__ double block_sum(double v, double* part) {
  part[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
    __syncthreads();
  }
  return part[0];
}

__global__ void sync_bn_sum_kernel(int n, int channels, int spatial, const float* __restrict__ x,
                                   float* __restrict__ sums) {
  __shared__ double part[kThreads];
  const int c = blockIdx.x;
  const std::int64_t values = std::int64_t(n) * spatial;
  double s = 0;
  for (std::int64_t k = threadIdx.x; k < values; k += kThreads)
    s += x[value_at(k, c, channels, spatial)];
  s = block_sum(s, part);
  if (threadIdx.x != 0) return;
  sums[c] = float(s);
  if (c == 0) sums[channels] = float(n);
}

__global__ void sync_bn_sum_squares_kernel(int n, int channels, int spatial,
                                           const float* __restrict__ x,
                                           const float* __restrict__ sums,
                                           float* __restrict__ squares) {
  __shared__ double part[kThreads];
  const int c = blockIdx.x;
  const double count = double(sums[channels]) * spatial;
  const double mean = count > 0 ? sums[c] / count : 0.0;
  const std::int64_t values = std::int64_t(n) * spatial;
  double s = 0;
  for (std::int64_t k = threadIdx.x; k < values; k += kThreads) {
    const double d = x[value_at(k, c, channels, spatial)] - mean;
    s += d * d;
  }
  s = block_sum(s, part);
  if (threadIdx.x == 0) squares[c] = float(s);
}

// saved: mean (c), 1 / sqrt(var + eps) (c), the global sample count (1).
__global__ void sync_bn_stats_kernel(int channels, int spatial, float eps, float momentum,
                                     const float* __restrict__ sums,
                                     const float* __restrict__ squares, float* __restrict__ saved,
                                     float* __restrict__ running_mean,
                                     float* __restrict__ running_var) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  if (c == 0) saved[2 * channels] = sums[channels];
  const double count = double(sums[channels]) * spatial;
  if (count <= 0) return;
  const double mean = sums[c] / count, var = squares[c] / count;
  saved[c] = float(mean);
  saved[channels + c] = float(1.0 / sqrt(var + double(eps)));
  running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * float(mean);
  running_var[c] = momentum * running_var[c] + (1.0f - momentum) * float(var);
}

__global__ void sync_bn_normalize_kernel(std::int64_t total, int channels, int spatial,
                                         const float* __restrict__ x,
                                         const float* __restrict__ gamma,
                                         const float* __restrict__ beta,
                                         const float* __restrict__ saved, float* __restrict__ y) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int c = int((t / spatial) % channels);
    const float a = gamma[c] * saved[channels + c];
    y[t] = (x[t] - saved[c]) * a + beta[c];
  }
}

__global__ void sync_bn_grad_sums_kernel(int n, int channels, int spatial,
                                         const float* __restrict__ x, const float* __restrict__ dy,
                                         const float* __restrict__ saved,
                                         float* __restrict__ grad_sums, float* __restrict__ dgamma,
                                         float* __restrict__ dbeta) {
  __shared__ double part_dy[kThreads], part_dyx[kThreads];
  const int c = blockIdx.x;
  const float m = saved[c], r = saved[channels + c];
  const std::int64_t values = std::int64_t(n) * spatial;
  double sdy = 0, sdyx = 0;
  for (std::int64_t k = threadIdx.x; k < values; k += kThreads) {
    const std::int64_t at = value_at(k, c, channels, spatial);
    sdy += dy[at];
    sdyx += double(dy[at]) * ((x[at] - m) * r);
  }
  sdy = block_sum(sdy, part_dy);
  sdyx = block_sum(sdyx, part_dyx);
  if (threadIdx.x != 0) return;
  grad_sums[c] = dbeta[c] = float(sdy);
  grad_sums[channels + c] = dgamma[c] = float(sdyx);
}

__global__ void sync_bn_grad_input_kernel(
    std::int64_t total, int channels, int spatial, const float* __restrict__ x,
    const float* __restrict__ gamma, const float* __restrict__ dy, const float* __restrict__ saved,
    const float* __restrict__ grad_sums, float* __restrict__ dx) {
  const double count = double(saved[2 * channels]) * spatial;
  if (count <= 0) return;
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const int c = int((t / spatial) % channels);
    const float m = saved[c], r = saved[channels + c];
    const float mean_dy = float(grad_sums[c] / count);
    const float mean_dyx = float(grad_sums[channels + c] / count);
    dx[t] = gamma[c] * r * (dy[t] - mean_dy - (x[t] - m) * r * mean_dyx);
  }
}

}  // namespace

void launch_sync_bn_sum(int n, int channels, int spatial, const float* x, float* sums,
                        cudaStream_t stream) {
  sync_bn_sum_kernel<<<channels, kThreads, 0, stream>>>(n, channels, spatial, x, sums);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_sync_bn_sum_squares(int n, int channels, int spatial, const float* x, const float* sums,
                                float* squares, cudaStream_t stream) {
  sync_bn_sum_squares_kernel<<<channels, kThreads, 0, stream>>>(n, channels, spatial, x, sums,
                                                                squares);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_sync_bn_normalize(int n, int channels, int spatial, float eps, float momentum,
                              const float* x, const float* gamma, const float* beta,
                              const float* sums, const float* squares, float* saved, float* y,
                              float* running_mean, float* running_var, cudaStream_t stream) {
  sync_bn_stats_kernel<<<(channels + 255) / 256, 256, 0, stream>>>(
      channels, spatial, eps, momentum, sums, squares, saved, running_mean, running_var);
  DISTNET_CUDA_CHECK(cudaGetLastError());
  const std::int64_t total = std::int64_t(n) * channels * spatial;
  if (total == 0) return;
  sync_bn_normalize_kernel<<<grid_for(total, 256), 256, 0, stream>>>(total, channels, spatial, x,
                                                                     gamma, beta, saved, y);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_sync_bn_grad_sums(int n, int channels, int spatial, const float* x, const float* dy,
                              const float* saved, float* grad_sums, float* dgamma, float* dbeta,
                              cudaStream_t stream) {
  sync_bn_grad_sums_kernel<<<channels, kThreads, 0, stream>>>(n, channels, spatial, x, dy, saved,
                                                              grad_sums, dgamma, dbeta);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_sync_bn_grad_input(int n, int channels, int spatial, const float* x, const float* gamma,
                               const float* dy, const float* saved, const float* grad_sums,
                               float* dx, cudaStream_t stream) {
  const std::int64_t total = std::int64_t(n) * channels * spatial;
  if (total == 0) return;
  sync_bn_grad_input_kernel<<<grid_for(total, 256), 256, 0, stream>>>(
      total, channels, spatial, x, gamma, dy, saved, grad_sums, dx);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
