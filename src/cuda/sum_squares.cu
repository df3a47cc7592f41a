// The sum of squares of a buffer on the GPU, in double, added to a device accumulator and queued
// on the stream like any op: the gradient norm of --tensorboard, read with the step's checks.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void sum_squares_kernel(std::int64_t count, const float* __restrict__ x,
                                   double* __restrict__ acc) {
  __shared__ double part[kThreads];
  double sum = 0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const double v = x[i];
    sum += v * v;
  }
  part[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  // The blocks' order of arrival decides the last bits: a figure to plot, not to compare bitwise.
  if (threadIdx.x == 0) atomicAdd(acc, part[0]);
}

}  // namespace

void launch_sum_squares(std::int64_t count, const float* x, double* acc, cudaStream_t stream) {
  if (count == 0) return;
  sum_squares_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, x, acc);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
