// The arithmetic of one output pixel of ResizeNormalize, shared by the CPU backend and the CUDA
// kernel (compiled there without FMA contraction), so both produce the same floats as
// data::ImageTransform. Half-pixel centres, edges clamped: align_corners = false, as OpenCV, PIL
// and PyTorch's interpolate use when enlarging.
#pragma once

#include <cstdint>

#include "distnet/backend.hpp"
#include "distnet/philox.hpp"  // DISTNET_HD

namespace distnet {

struct BilinearTap {
  int i0, i1;
  float w1;  // weight of i1; i0 gets 1 - w1
};

DISTNET_HD BilinearTap bilinear_tap(int o, int in, int out) {
  const double ratio = double(in) / double(out);
  double src = (double(o) + 0.5) * ratio - 0.5;
  src = src < 0.0 ? 0.0 : (src > double(in - 1) ? double(in - 1) : src);
  BilinearTap t;
  t.i0 = static_cast<int>(src);  // src >= 0: truncation is floor
  t.i1 = t.i0 + 1 < in ? t.i0 + 1 : in - 1;
  t.w1 = static_cast<float>(src - t.i0);
  return t;
}

// Output pixel (ch, y, x) of one image.
DISTNET_HD float resize_normalize_pixel(const ResizeNormalize& s, const std::uint8_t* image, int ch,
                                        int y, int x) {
  const BilinearTap r = bilinear_tap(y, s.h_in, s.h_out), c = bilinear_tap(x, s.w_in, s.w_out);
  const std::uint8_t* plane = image + static_cast<std::int64_t>(ch) * s.h_in * s.w_in;
  const std::uint8_t* r0 = plane + static_cast<std::int64_t>(r.i0) * s.w_in;
  const std::uint8_t* r1 = plane + static_cast<std::int64_t>(r.i1) * s.w_in;
  const float top = r0[c.i0] + c.w1 * (float(r0[c.i1]) - r0[c.i0]);
  const float bottom = r1[c.i0] + c.w1 * (float(r1[c.i1]) - r1[c.i0]);
  return (top + r.w1 * (bottom - top)) * s.scale[ch] + s.shift[ch];
}

}  // namespace distnet
