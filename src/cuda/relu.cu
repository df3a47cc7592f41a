// ReLU forward and backward as element-wise kernels over flat buffers. (cuDNN's activation calls
// need a tensor descriptor, and a flat (count, 1, 1, 1) view puts up to hundreds of millions in
// the batch dimension, beyond what its kernels are tuned or, for some versions, tested for.)
// Exact: max(x, 0), and dy where y > 0 -- bit for bit the CPU backend's results. Layers run them
// in place (y == x, dx == dy), so no pointer is __restrict__: that would promise the compiler
// the buffers never overlap.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void relu_forward_kernel(std::int64_t count, const float* x, float* y) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// The gradient is taken from the output: y > 0 exactly where x > 0.
__global__ void relu_backward_kernel(std::int64_t count, const float* y, const float* dy,
                                     float* dx) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

}  // namespace

void launch_relu_forward(std::int64_t count, const float* x, float* y, cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kBlock = 256;
  relu_forward_kernel<<<grid_for(count, kBlock), kBlock, 0, stream>>>(count, x, y);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_relu_backward(std::int64_t count, const float* y, const float* dy, float* dx,
                          cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kBlock = 256;
  relu_backward_kernel<<<grid_for(count, kBlock), kBlock, 0, stream>>>(count, y, dy, dx);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
