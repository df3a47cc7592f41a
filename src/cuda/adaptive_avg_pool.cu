// Adaptive average pooling (Backend::adaptive_avg_pool_*): cuDNN's pooling takes a fixed window
// and stride, which an adaptive grid does not have when the input is not a multiple of the
// output. Forward: one thread per output cell. Backward: one thread per input pixel, gathering
// from the cells that cover it (they may overlap), so no atomics and a fixed summation order.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__device__ int cell_begin(int i, int in, int out) {
  return int((static_cast<long long>(i) * in) / out);
}
__device__ int cell_end(int i, int in, int out) {
  return int((static_cast<long long>(i + 1) * in + out - 1) / out);
}

__global__ void adaptive_avg_pool_forward_kernel(std::int64_t total, AdaptivePoolGeom g,
                                                 const float* __restrict__ x,
                                                 float* __restrict__ y) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    const int j = int(k % g.ow), i = int((k / g.ow) % g.oh);
    const std::int64_t plane = k / (std::int64_t(g.oh) * g.ow);
    const float* in = x + plane * g.h * g.w;
    const int r0 = cell_begin(i, g.h, g.oh), r1 = cell_end(i, g.h, g.oh);
    const int c0 = cell_begin(j, g.w, g.ow), c1 = cell_end(j, g.w, g.ow);
    float sum = 0.0f;
    for (int r = r0; r < r1; ++r)
      for (int c = c0; c < c1; ++c) sum += in[r * g.w + c];
    y[k] = sum / float((r1 - r0) * (c1 - c0));
  }
}

__global__ void adaptive_avg_pool_backward_kernel(std::int64_t total, AdaptivePoolGeom g,
                                                  const float* __restrict__ dy,
                                                  float* __restrict__ dx) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += stride) {
    const int c = int(k % g.w), r = int((k / g.w) % g.h);
    const std::int64_t plane = k / (std::int64_t(g.h) * g.w);
    const float* out = dy + plane * g.oh * g.ow;
    float sum = 0.0f;
    for (int i = 0; i < g.oh; ++i) {
      const int r0 = cell_begin(i, g.h, g.oh), r1 = cell_end(i, g.h, g.oh);
      if (r < r0 || r >= r1) continue;
      for (int j = 0; j < g.ow; ++j) {
        const int c0 = cell_begin(j, g.w, g.ow), c1 = cell_end(j, g.w, g.ow);
        if (c < c0 || c >= c1) continue;
        sum += out[i * g.ow + j] / float((r1 - r0) * (c1 - c0));
      }
    }
    dx[k] = sum;
  }
}

}  // namespace

void launch_adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x, float* y,
                                      cudaStream_t stream) {
  const std::int64_t total = std::int64_t(n) * g.c * g.oh * g.ow;
  if (total == 0) return;
  constexpr int kBlock = 256;
  adaptive_avg_pool_forward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(total, g, x, y);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy, float* dx,
                                       cudaStream_t stream) {
  const std::int64_t total = std::int64_t(n) * g.c * g.h * g.w;
  if (total == 0) return;
  constexpr int kBlock = 256;
  adaptive_avg_pool_backward_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(total, g, dy,
                                                                                    dx);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
