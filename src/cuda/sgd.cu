// The fused optimizer step over the flat parameter, gradient and momentum buffers: one pass,
// four floats per thread where the buffers allow it (they are 64-byte aligned, see Model).
#include "distnet/cuda_check.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__device__ __forceinline__ void sgd_one(float& w, float g, float& v, float lr, float mu, float wd,
                                        bool momentum) {
  if (momentum) {
    v = mu * v + (g + wd * w);
    w -= lr * v;
  } else {
    w -= lr * (g + wd * w);
  }
}

__global__ void sgd_kernel(std::int64_t count, float* __restrict__ w, const float* __restrict__ g,
                           float* __restrict__ v, float lr, float mu, float wd, bool momentum) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    float vi = momentum ? v[i] : 0.0f;
    sgd_one(w[i], g[i], vi, lr, mu, wd, momentum);
    if (momentum) v[i] = vi;
  }
}

__global__ void sgd4_kernel(std::int64_t count4, float4* __restrict__ w,
                            const float4* __restrict__ g, float4* __restrict__ v, float lr,
                            float mu, float wd, bool momentum) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count4; i += stride) {
    float4 wi = w[i];
    const float4 gi = g[i];
    float4 vi = momentum ? v[i] : make_float4(0, 0, 0, 0);
    sgd_one(wi.x, gi.x, vi.x, lr, mu, wd, momentum);
    sgd_one(wi.y, gi.y, vi.y, lr, mu, wd, momentum);
    sgd_one(wi.z, gi.z, vi.z, lr, mu, wd, momentum);
    sgd_one(wi.w, gi.w, vi.w, lr, mu, wd, momentum);
    w[i] = wi;
    if (momentum) v[i] = vi;
  }
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

}  // namespace

void launch_sgd(std::int64_t count, float* w, const float* g, float* v, const SgdParams& p,
                cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kBlock = 256;
  const bool momentum = p.momentum != 0.0f;
  if (count % 4 == 0 && aligned16(w) && aligned16(g) && (!momentum || aligned16(v))) {
    sgd4_kernel<<<grid_for(count / 4, kBlock), kBlock, 0, stream>>>(
        count / 4, reinterpret_cast<float4*>(w), reinterpret_cast<const float4*>(g),
        reinterpret_cast<float4*>(v), p.lr, p.momentum, p.weight_decay, momentum);
  } else {
    sgd_kernel<<<grid_for(count, kBlock), kBlock, 0, stream>>>(count, w, g, v, p.lr, p.momentum,
                                                               p.weight_decay, momentum);
  }
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
