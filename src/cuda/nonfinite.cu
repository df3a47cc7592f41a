// The divergence check on the GPU: how many values of a buffer are NaN or infinite, added to a
// device counter, queued on the stream like any op.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void count_nonfinite_kernel(std::int64_t count, const float* __restrict__ x,
                                       double* __restrict__ acc) {
  __shared__ unsigned long long part[kThreads];
  unsigned long long bad = 0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    bad += isfinite(x[i]) ? 0ull : 1ull;
  part[threadIdx.x] = bad;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  // Counts are integers, exact in a double up to 2^53: the order of the atomic adds is immaterial.
  if (threadIdx.x == 0 && part[0] != 0) atomicAdd(acc, static_cast<double>(part[0]));
}

}  // namespace

void launch_count_nonfinite(std::int64_t count, const float* x, double* acc, cudaStream_t stream) {
  if (count == 0) return;
  count_nonfinite_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, x, acc);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
