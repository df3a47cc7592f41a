// AdamW over a range of the flat buffers on the GPU: one pass, one element per thread.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void adamw_kernel(std::int64_t count, float* __restrict__ w, const float* __restrict__ g,
                             float* __restrict__ m, float* __restrict__ v, AdamWParams p) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    const float gi = g[i];
    const float mi = p.beta1 * m[i] + (1.0f - p.beta1) * gi;
    const float vi = p.beta2 * v[i] + (1.0f - p.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * p.decay - p.step_size * mi / (sqrtf(vi) / p.bias_correction2_sqrt + p.eps);
  }
}

}  // namespace

void launch_adamw(std::int64_t count, float* w, const float* g, float* m, float* v,
                  const AdamWParams& p, cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kBlock = 256;
  adamw_kernel<<<grid_for(count, kBlock), kBlock, 0, stream>>>(count, w, g, m, v, p);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
