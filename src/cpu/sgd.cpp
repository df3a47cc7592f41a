#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::sgd_update(std::int64_t count, float* w, const float* g, float* v,
                            const SgdParams& p) {
  const float lr = p.lr, mu = p.momentum, wd = p.weight_decay;
  if (mu == 0.0f) {
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < count; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) {
    v[i] = mu * v[i] + (g[i] + wd * w[i]);
    w[i] -= lr * v[i];
  }
}

}  // namespace distnet::cpu
