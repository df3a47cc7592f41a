// The two small kernels around the dense layer's GEMMs: the bias broadcast before the forward
// GEMM accumulates onto it, and the bias gradient (column sums, summed in a fixed order per
// column, so the result does not depend on scheduling).
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void broadcast_rows_kernel(std::int64_t total, int width, const float* __restrict__ row,
                                      float* __restrict__ out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride)
    out[t] = row[t % width];
}

__global__ void column_sums_kernel(int n, int width, const float* __restrict__ in,
                                   float* __restrict__ out) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= width) return;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += in[static_cast<std::int64_t>(i) * width + j];
  out[j] = sum;
}

}  // namespace

void launch_broadcast_rows(int n, int width, const float* row, float* out, cudaStream_t stream) {
  const std::int64_t total = static_cast<std::int64_t>(n) * width;
  if (total == 0) return;
  broadcast_rows_kernel<<<grid_for(total, 256), 256, 0, stream>>>(total, width, row, out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_column_sums(int n, int width, const float* in, float* out, cudaStream_t stream) {
  if (width == 0) return;
  column_sums_kernel<<<(width + 255) / 256, 256, 0, stream>>>(n, width, in, out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
