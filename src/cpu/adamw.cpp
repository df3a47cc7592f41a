// AdamW over a range of the flat buffers: one pass, the moments beside the parameters.
#include <cmath>

#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::adamw_update(std::int64_t count, float* w, const float* g, float* m, float* v,
                              const AdamWParams& p) {
  const float b1 = p.beta1, b2 = p.beta2, eps = p.eps, decay = p.decay, step = p.step_size,
              bc2 = p.bias_correction2_sqrt;
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi, v[i] = vi;
    w[i] = w[i] * decay - step * mi / (std::sqrt(vi) / bc2 + eps);
  }
}

}  // namespace distnet::cpu
