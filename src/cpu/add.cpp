// The graph's element-wise add and strided row copies (the channel concat), as plain loops: both
// are bound by memory bandwidth, and oneDNN's binary and reorder primitives would need a
// descriptor per shape for no gain.
#include <cstring>

#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::add(std::int64_t count, const float* a, const float* b, float* y) {
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

void CpuBackend::copy_rows(std::int64_t rows, std::int64_t row_floats, const float* src,
                           std::int64_t src_stride, float* dst, std::int64_t dst_stride) {
  const std::size_t bytes = sizeof(float) * static_cast<std::size_t>(row_floats);
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride, src + r * src_stride, bytes);
}

}  // namespace distnet::cpu
