// Inverted dropout with masks drawn from Philox per (seed, layer, step, global sample, element),
// identical to the CUDA kernel's; backward regenerates the mask rather than storing it.
#include "cpu_backend.hpp"
#include "distnet/philox.hpp"

namespace distnet::cpu {
namespace {

void apply_mask(int n, std::int64_t per_sample, float p_drop, const DropoutKey& key,
                const std::uint32_t* ids, const float* in, float* out) {
  DISTNET_CHECK(p_drop >= 0.0f && p_drop < 1.0f,
                "dropout probability must be in [0, 1), got " + std::to_string(p_drop));
  const float scale = 1.0f / (1.0f - p_drop);
  const std::uint64_t threshold = dropout_threshold(1.0f - p_drop);
  // Blocks of four elements of the full layer's row (one Philox call each); a row that starts
  // at element_offset covers global elements [offset, offset + per_sample).
  const std::int64_t offset = key.element_offset, first = offset / 4;
  const std::int64_t blocks = (offset + per_sample + 3) / 4 - first;
#pragma omp parallel for collapse(2) schedule(static)
  for (int i = 0; i < n; ++i) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      const Philox4 r = philox_block(key.seed, RngPurpose::dropout, key.layer, key.step, ids[i],
                                     static_cast<std::uint32_t>(first + b));
      const std::int64_t lo = std::max<std::int64_t>(4 * (first + b), offset);
      const std::int64_t hi = std::min<std::int64_t>(4 * (first + b) + 4, offset + per_sample);
      for (std::int64_t g = lo; g < hi; ++g) {
        const std::int64_t k = i * per_sample + (g - offset);
        out[k] = static_cast<std::uint64_t>(r.v[g & 3]) < threshold ? in[k] * scale : 0.0f;
      }
    }
  }
}

}  // namespace

void CpuBackend::dropout_forward(int n, std::int64_t per_sample, float p_drop,
                                 const DropoutKey& key, const std::uint32_t* sample_ids,
                                 const float* x, float* y) {
  apply_mask(n, per_sample, p_drop, key, sample_ids, x, y);
}

void CpuBackend::dropout_backward(int n, std::int64_t per_sample, float p_drop,
                                  const DropoutKey& key, const std::uint32_t* sample_ids,
                                  const float* dy, float* dx) {
  apply_mask(n, per_sample, p_drop, key, sample_ids, dy, dx);
}

}  // namespace distnet::cpu
