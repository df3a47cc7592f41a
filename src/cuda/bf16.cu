// Conversions between float gradients and their bfloat16 wire copy (--grad-compression bf16).
#include "distnet/bf16.hpp"
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void to_bf16_kernel(std::int64_t count, const float* __restrict__ in,
                               std::uint16_t* __restrict__ out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    out[i] = float_to_bf16(in[i]);
}

__global__ void from_bf16_kernel(std::int64_t count, const std::uint16_t* __restrict__ in,
                                 float* __restrict__ out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    out[i] = bf16_to_float(in[i]);
}

}  // namespace

void launch_to_bf16(std::int64_t count, const float* in, std::uint16_t* out, cudaStream_t stream) {
  if (count == 0) return;
  to_bf16_kernel<<<grid_for(count, 256), 256, 0, stream>>>(count, in, out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_from_bf16(std::int64_t count, const std::uint16_t* in, float* out,
                      cudaStream_t stream) {
  if (count == 0) return;
  from_bf16_kernel<<<grid_for(count, 256), 256, 0, stream>>>(count, in, out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
