// Adaptive average pooling in plain loops (oneDNN's pooling takes a fixed kernel and stride; an
// adaptive grid has neither when the input is not a multiple of the output).
#include "cpu_backend.hpp"

namespace distnet::cpu {
namespace {

// Input rows (or columns) [begin, end) of output cell i out of `out` over `in`.
int cell_begin(int i, int in, int out) {
  return int((std::int64_t(i) * in) / out);
}
int cell_end(int i, int in, int out) {
  return int((std::int64_t(i + 1) * in + out - 1) / out);
}

}  // namespace

void CpuBackend::adaptive_avg_pool_forward(int n, const AdaptivePoolGeom& g, const float* x,
                                           float* y) {
  const std::int64_t planes = std::int64_t(n) * g.c;
#pragma omp parallel for schedule(static)
  for (std::int64_t p = 0; p < planes; ++p) {
    const float* in = x + p * g.h * g.w;
    float* out = y + p * g.oh * g.ow;
    for (int i = 0; i < g.oh; ++i) {
      const int r0 = cell_begin(i, g.h, g.oh), r1 = cell_end(i, g.h, g.oh);
      for (int j = 0; j < g.ow; ++j) {
        const int c0 = cell_begin(j, g.w, g.ow), c1 = cell_end(j, g.w, g.ow);
        float sum = 0.0f;
        for (int r = r0; r < r1; ++r)
          for (int c = c0; c < c1; ++c) sum += in[r * g.w + c];
        out[i * g.ow + j] = sum / float((r1 - r0) * (c1 - c0));
      }
    }
  }
}

void CpuBackend::adaptive_avg_pool_backward(int n, const AdaptivePoolGeom& g, const float* dy,
                                            float* dx) {
  const std::int64_t planes = std::int64_t(n) * g.c;
#pragma omp parallel for schedule(static)
  for (std::int64_t p = 0; p < planes; ++p) {
    float* in = dx + p * g.h * g.w;
    const float* out = dy + p * g.oh * g.ow;
    for (int k = 0; k < g.h * g.w; ++k) in[k] = 0.0f;
    for (int i = 0; i < g.oh; ++i) {
      const int r0 = cell_begin(i, g.h, g.oh), r1 = cell_end(i, g.h, g.oh);
      for (int j = 0; j < g.ow; ++j) {
        const int c0 = cell_begin(j, g.w, g.ow), c1 = cell_end(j, g.w, g.ow);
        const float share = out[i * g.ow + j] / float((r1 - r0) * (c1 - c0));
        for (int r = r0; r < r1; ++r)
          for (int c = c0; c < c1; ++c) in[r * g.w + c] += share;
      }
    }
  }
}

}  // namespace distnet::cpu
