// x *= alpha over a flat buffer on the GPU: the gradient's clipping (--clip-grad-norm).
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void scale_kernel(std::int64_t count, float alpha, float* __restrict__ x) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    x[i] *= alpha;
}

}  // namespace

void launch_scale(std::int64_t count, float alpha, float* x, cudaStream_t stream) {
  if (count == 0) return;
  scale_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, alpha, x);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
