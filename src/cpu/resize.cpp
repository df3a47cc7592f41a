// Resize and normalise on the CPU backend, pixel by pixel with the arithmetic the CUDA kernel
// shares (the loader's ImageTransform does the same per image with row buffers).
#include "distnet/resize.hpp"
#include "cpu_backend.hpp"

namespace distnet::cpu {

void CpuBackend::resize_normalize(int n, const ResizeNormalize& s, const std::uint8_t* images,
                                  float* out) {
  const std::int64_t in_per = std::int64_t(s.channels) * s.h_in * s.w_in;
  const std::int64_t out_plane = std::int64_t(s.h_out) * s.w_out;
#pragma omp parallel for collapse(2) schedule(static)
  for (int i = 0; i < n; ++i) {
    for (int ch = 0; ch < s.channels; ++ch) {
      float* dst = out + (std::int64_t(i) * s.channels + ch) * out_plane;
      for (int y = 0; y < s.h_out; ++y)
        for (int x = 0; x < s.w_out; ++x)
          dst[std::int64_t(y) * s.w_out + x] =
              resize_normalize_pixel(s, images + i * in_per, ch, y, x);
    }
  }
}

}  // namespace distnet::cpu
