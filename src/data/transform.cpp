#include "distnet/data/transform.hpp"

#include <algorithm>
#include <cmath>

#include "distnet/error.hpp"
#include "distnet/resize.hpp"

namespace distnet::data {

ImageTransform::Taps ImageTransform::taps(std::int64_t in, std::int64_t out) {
  Taps t;
  for (std::int64_t o = 0; o < out; ++o) {
    const BilinearTap b = bilinear_tap(int(o), int(in), int(out));
    t.i0.push_back(b.i0);
    t.i1.push_back(b.i1);
    t.w1.push_back(b.w1);
  }
  return t;
}

ImageTransform::ImageTransform(const Shape& in, const TransformSpec& spec) : in_(in) {
  DISTNET_CHECK_USAGE(in.rank() == 3, "images must be C x H x W, got " + in.str());
  DISTNET_CHECK_USAGE(spec.resize >= 0,
                      "--resize must be >= 0, got " + std::to_string(spec.resize));
  const std::int64_t c = in[0];
  const std::int64_t h = spec.resize ? spec.resize : in[1], w = spec.resize ? spec.resize : in[2];
  out_ = Shape{c, h, w};
  rows_ = taps(in[1], h);
  cols_ = taps(in[2], w);
  DISTNET_CHECK_USAGE(spec.mean.size() == spec.std.size(),
                      "normalisation needs as many std values as mean values (got " +
                          std::to_string(spec.mean.size()) + " and " +
                          std::to_string(spec.std.size()) + ")");
  DISTNET_CHECK_USAGE(
      spec.mean.empty() || spec.mean.size() == std::size_t(c) || spec.mean.size() == 1,
      "normalisation needs 1 or " + std::to_string(c) + " values per statistic, got " +
          std::to_string(spec.mean.size()));
  for (std::int64_t ch = 0; ch < c; ++ch) {
    float mean = 0.0f, sd = 1.0f;
    if (!spec.mean.empty()) {
      const std::size_t k = spec.mean.size() == 1 ? 0 : std::size_t(ch);
      mean = spec.mean[k], sd = spec.std[k];
      DISTNET_CHECK_USAGE(sd > 0.0f, "normalisation std must be > 0, got " + std::to_string(sd));
    }
    scale_.push_back(1.0f / (255.0f * sd));
    shift_.push_back(-mean / sd);
  }
}

ResizeNormalize ImageTransform::as_op() const {
  ResizeNormalize r;
  DISTNET_CHECK_USAGE(
      in_[0] <= ResizeNormalize::kMaxChannels,
      "device-side resizing handles up to 4 channels, the images have " + std::to_string(in_[0]));
  r.channels = int(in_[0]), r.h_in = int(in_[1]), r.w_in = int(in_[2]);
  r.h_out = int(out_[1]), r.w_out = int(out_[2]);
  for (int c = 0; c < r.channels; ++c) {
    r.scale[c] = scale_[std::size_t(c)];
    r.shift[c] = shift_[std::size_t(c)];
  }
  return r;
}

void ImageTransform::apply(const std::uint8_t* in, float* out) const {
  const std::int64_t c = in_[0], ih = in_[1], iw = in_[2], oh = out_[1], ow = out_[2];
  if (ih == oh && iw == ow) {
    // No resize (image folders come cropped to size): the bilinear taps are the identity
    // (w1 = 0), so this gives the same floats as the general path, at a fraction of its cost.
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const float scale = scale_[std::size_t(ch)], shift = shift_[std::size_t(ch)];
      const std::uint8_t* src = in + ch * ih * iw;
      float* dst = out + ch * oh * ow;
      for (std::int64_t i = 0; i < ih * iw; ++i) dst[i] = float(src[i]) * scale + shift;
    }
    return;
  }
  std::vector<float> row0(static_cast<std::size_t>(ow)), row1(static_cast<std::size_t>(ow));
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const std::uint8_t* plane = in + ch * ih * iw;
    float* dst = out + ch * oh * ow;
    const float scale = scale_[std::size_t(ch)], shift = shift_[std::size_t(ch)];
    for (std::int64_t y = 0; y < oh; ++y) {
      // Interpolate the two source rows horizontally, then blend them vertically.
      const std::uint8_t* r0 = plane + rows_.i0[std::size_t(y)] * iw;
      const std::uint8_t* r1 = plane + rows_.i1[std::size_t(y)] * iw;
      for (std::int64_t x = 0; x < ow; ++x) {
        const auto k = std::size_t(x);
        const float wx = cols_.w1[k];
        row0[k] = r0[cols_.i0[k]] + wx * (float(r0[cols_.i1[k]]) - r0[cols_.i0[k]]);
        row1[k] = r1[cols_.i0[k]] + wx * (float(r1[cols_.i1[k]]) - r1[cols_.i0[k]]);
      }
      const float wy = rows_.w1[std::size_t(y)];
      float* d = dst + y * ow;
      for (std::int64_t x = 0; x < ow; ++x) {
        const auto k = std::size_t(x);
        d[x] = (row0[k] + wy * (row1[k] - row0[k])) * scale + shift;
      }
    }
  }
}

}  // namespace distnet::data
