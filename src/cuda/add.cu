// The graph's element-wise add as a kernel over a flat buffer; a + b in FP32, bit for bit the
// CPU backend's result. In place is allowed (y == a or y == b), so no pointer is __restrict__.
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void add_kernel(std::int64_t count, const float* a, const float* b, float* y) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    y[i] = a[i] + b[i];
}

}  // namespace

void launch_add(std::int64_t count, const float* a, const float* b, float* y, cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kBlock = 256;
  add_kernel<<<grid_for(count, kBlock), kBlock, 0, stream>>>(count, a, b, y);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
