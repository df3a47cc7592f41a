#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::relu_forward(std::int64_t count, const float* x, float* y) {
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// Gradient taken from the output: y > 0 exactly where x > 0, so x need not be kept.
void CpuBackend::relu_backward(std::int64_t count, const float* y, const float* dy, float* dx) {
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

}  // namespace distnet::cpu
