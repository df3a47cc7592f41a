// LARS on the GPU: per-segment sums of squares (blockIdx.y is the segment, the blocks along x
// share its elements and add their partial sums with a double atomic), then the update, each
// thread computing its segment's local rate from the sums (the same formula as the host's).
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kBlocksPerSegment = 64;

__global__ void lars_sums_kernel(const LarsSegment* __restrict__ segments,
                                 const float* __restrict__ w, const float* __restrict__ g,
                                 double* __restrict__ sums) {
  __shared__ double part_w[kThreads], part_g[kThreads];
  const LarsSegment s = segments[blockIdx.y];
  double sw = 0, sg = 0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < s.count; i += stride) {
    const double a = w[s.offset + i], b = g[s.offset + i];
    sw += a * a;
    sg += b * b;
  }
  part_w[threadIdx.x] = sw;
  part_g[threadIdx.x] = sg;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      part_w[threadIdx.x] += part_w[threadIdx.x + half];
      part_g[threadIdx.x] += part_g[threadIdx.x + half];
    }
    __syncthreads();
  }
  // The blocks' order of arrival decides the last bits (a few ulps of a norm).
  if (threadIdx.x == 0) {
    atomicAdd(&sums[2 * blockIdx.y], part_w[0]);
    atomicAdd(&sums[2 * blockIdx.y + 1], part_g[0]);
  }
}

__global__ void lars_update_kernel(const LarsSegment* __restrict__ segments,
                                   const double* __restrict__ sums, float* __restrict__ w,
                                   const float* __restrict__ g, float* __restrict__ v,
                                   LarsParams p) {
  const LarsSegment s = segments[blockIdx.y];
  const float lr = float(lars_local_rate(s, sums + 2 * blockIdx.y, p));
  const float wd = s.adapt ? p.weight_decay : 0.0f;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < s.count; i += stride) {
    const std::int64_t k = s.offset + i;
    const float vi = p.momentum * v[k] + lr * (g[k] + wd * w[k]);
    v[k] = vi;
    w[k] -= vi;
  }
}

}  // namespace

void launch_lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                      double* sums, cudaStream_t stream) {
  if (n == 0) return;
  DISTNET_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(double) * 2 * std::size_t(n), stream));
  lars_sums_kernel<<<dim3(kBlocksPerSegment, unsigned(n)), kThreads, 0, stream>>>(segments, w, g,
                                                                                  sums);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

void launch_lars_update(int n, const LarsSegment* segments, const double* sums, float* w,
                        const float* g, float* v, const LarsParams& p, cudaStream_t stream) {
  if (n == 0) return;
  lars_update_kernel<<<dim3(kBlocksPerSegment, unsigned(n)), kThreads, 0, stream>>>(segments, sums,
                                                                                    w, g, v, p);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
