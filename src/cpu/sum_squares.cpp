// The sum of squares of a buffer, in double: the gradient norm of --tensorboard.
#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::sum_squares(std::int64_t count, const float* x, double* acc) {
  double sum = 0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static)
  for (std::int64_t i = 0; i < count; ++i) sum += double(x[i]) * double(x[i]);
  acc[0] += sum;
}

}  // namespace distnet::cpu
