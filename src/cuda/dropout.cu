// Dropout on the GPU: one thread per block of four elements (one Philox call), the same counter
// layout as src/cpu/dropout.cpp, so masks agree bit for bit.
#include "distnet/cuda_check.hpp"
#include "distnet/philox.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void dropout_kernel(int n, std::int64_t per_sample, std::int64_t blocks, float scale,
                               std::uint64_t threshold, DropoutKey key,
                               const std::uint32_t* __restrict__ ids, const float* in,
                               float* out) {  // in == out when run in place: not __restrict__
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= static_cast<std::int64_t>(n) * blocks) return;
  // Blocks of the full layer's row: global elements [offset, offset + per_sample) are ours.
  const std::int64_t offset = key.element_offset, first = offset / 4;
  const std::int64_t row = t / blocks, b = first + t % blocks;
  const Philox4 r = philox_block(key.seed, RngPurpose::dropout, key.layer, key.step, ids[row],
                                 static_cast<std::uint32_t>(b));
  const std::int64_t lo = 4 * b > offset ? 4 * b : offset;
  const std::int64_t hi = 4 * b + 4 < offset + per_sample ? 4 * b + 4 : offset + per_sample;
  for (std::int64_t g = lo; g < hi; ++g) {
    const std::int64_t k = row * per_sample + (g - offset);
    out[k] = static_cast<std::uint64_t>(r.v[g & 3]) < threshold ? in[k] * scale : 0.0f;
  }
}

}  // namespace

void launch_dropout(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                    const std::uint32_t* sample_ids, const float* in, float* out,
                    cudaStream_t stream) {
  DISTNET_CHECK(p_drop >= 0.0f && p_drop < 1.0f,
                "dropout probability must be in [0, 1), got " + std::to_string(p_drop));
  const std::int64_t first = key.element_offset / 4;
  const std::int64_t blocks = (key.element_offset + per_sample + 3) / 4 - first;
  const std::int64_t threads = static_cast<std::int64_t>(n) * blocks;
  if (threads == 0) return;
  constexpr int kBlock = 256;
  const auto grid = static_cast<unsigned>((threads + kBlock - 1) / kBlock);
  dropout_kernel<<<grid, kBlock, 0, stream>>>(n, per_sample, blocks, 1.0f / (1.0f - p_drop),
                                              dropout_threshold(1.0f - p_drop), key, sample_ids, in,
                                              out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
