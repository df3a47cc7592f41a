// x *= alpha over a flat buffer: the gradient's clipping (--clip-grad-norm).
#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::scale(std::int64_t count, float alpha, float* x) {
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) x[i] *= alpha;
}

}  // namespace distnet::cpu
