// LARS (You, Gitman, Ginsburg 2017): per-tensor sums of squares, then the update with each
// tensor's local learning rate. Segments are few (one per tensor): each is a parallel loop.
#include <cmath>

#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::lars_sums(int n, const LarsSegment* segments, const float* w, const float* g,
                           double* sums) {
  for (int s = 0; s < n; ++s) {
    const LarsSegment& seg = segments[s];
    const float* ws = w + seg.offset;
    const float* gs = g + seg.offset;
    double sw = 0, sg = 0;
#pragma omp parallel for simd reduction(+ : sw, sg) schedule(static)
    for (std::int64_t i = 0; i < seg.count; ++i) {
      sw += double(ws[i]) * double(ws[i]);
      sg += double(gs[i]) * double(gs[i]);
    }
    sums[2 * s] = sw, sums[2 * s + 1] = sg;
  }
}

void CpuBackend::lars_update(int n, const LarsSegment* segments, const double* sums, float* w,
                             const float* g, float* v, const LarsParams& p) {
  const float mu = p.momentum;
  for (int s = 0; s < n; ++s) {
    const LarsSegment& seg = segments[s];
    float* ws = w + seg.offset;
    const float* gs = g + seg.offset;
    float* vs = v + seg.offset;
    const float lr = float(lars_local_rate(seg, sums + 2 * s, p));
    const float wd = seg.adapt ? p.weight_decay : 0.0f;
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < seg.count; ++i) {
      vs[i] = mu * vs[i] + lr * (gs[i] + wd * ws[i]);
      ws[i] -= vs[i];
    }
  }
}

}  // namespace distnet::cpu
