#include "distnet/data/augment.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "distnet/error.hpp"
#include "distnet/philox.hpp"

namespace distnet::data {
namespace {

Philox4 draw(std::uint64_t seed, std::int64_t epoch, std::int64_t index, std::uint32_t block) {
  return philox_block(seed, RngPurpose::augment, 0, static_cast<std::uint32_t>(epoch),
                      static_cast<std::uint32_t>(index), block);
}

// A uniform double in [0, 1) from one 32-bit word.
double unit(std::uint32_t w) {
  return double(w) * (1.0 / 4294967296.0);
}

// Source taps of one output axis: output o reads source pixels start[o] .. start[o] + count - 1
// with weights w[o * max_count + k] (summing to 1).
struct AxisTaps {
  std::vector<int> start, count;
  std::vector<float> w;
  int max_count = 0;
};

AxisTaps axis_taps(int in, double b0, double len, int out) {
  const double scale = len / out;
  const double support = std::max(scale, 1.0);
  AxisTaps t;
  t.max_count = int(std::ceil(support)) * 2 + 1;
  t.start.resize(std::size_t(out));
  t.count.resize(std::size_t(out));
  t.w.assign(std::size_t(out) * std::size_t(t.max_count), 0.0f);
  for (int o = 0; o < out; ++o) {
    const double centre = b0 + (o + 0.5) * scale;
    int lo = std::max(0, int(std::floor(centre - support)));
    int hi = std::min(in, int(std::ceil(centre + support)));
    hi = std::min(hi, lo + t.max_count);
    double sum = 0;
    std::vector<double> ws;
    for (int p = lo; p < hi; ++p) {
      const double v = std::max(0.0, 1.0 - std::fabs((p + 0.5 - centre) / support));
      ws.push_back(v);
      sum += v;
    }
    if (sum <= 0) {  // cannot happen for a box inside the image; nearest pixel to be safe
      lo = std::clamp(int(centre), 0, in - 1);
      ws.assign(1, 1.0);
      sum = 1;
    }
    t.start[std::size_t(o)] = lo;
    t.count[std::size_t(o)] = int(ws.size());
    for (std::size_t k = 0; k < ws.size(); ++k)
      t.w[std::size_t(o) * std::size_t(t.max_count) + k] = float(ws[k] / sum);
  }
  return t;
}

}  // namespace

CropBox random_resized_crop(int width, int height, std::uint64_t seed, std::int64_t epoch,
                            std::int64_t index) {
  const double area = double(width) * height;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (std::uint32_t attempt = 0; attempt < 10; ++attempt) {
    const Philox4 r = draw(seed, epoch, index, attempt);
    const double target = area * (0.08 + (1.0 - 0.08) * unit(r.v[0]));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * unit(r.v[1]));
    const long w = std::lround(std::sqrt(target * ratio));
    const long h = std::lround(std::sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const long y = long(unit(r.v[2]) * double(height - h + 1));
      const long x = long(unit(r.v[3]) * double(width - w + 1));
      return CropBox{double(x), double(y), double(w), double(h)};
    }
  }
  // torchvision's fallback: the largest centred crop whose aspect is within the ratio range.
  const double in_ratio = double(width) / height;
  long w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = std::lround(w / (3.0 / 4.0));
  } else if (in_ratio > 4.0 / 3.0) {
    w = std::lround(h * (4.0 / 3.0));
  }
  return CropBox{double((width - w) / 2), double((height - h) / 2), double(w), double(h)};
}

CropBox center_crop(int width, int height, int size) {
  const double resized_short = std::lround(size * 256.0 / 224.0);
  const double side = std::min(width, height) * (size / resized_short);
  return CropBox{(width - side) / 2, (height - side) / 2, side, side};
}

bool random_flip(std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
  return (draw(seed, epoch, index, 10).v[0] >> 31) != 0;
}

void resample_crop(const RgbImage& img, const CropBox& box, int size, bool flip,
                   std::uint8_t* chw) {
  resample_crop(img, box, size, size, flip, chw);
}

void resample_crop(const RgbImage& img, const CropBox& box, int out_width, int out_height,
                   bool flip, std::uint8_t* chw) {
  DISTNET_CHECK(out_width >= 1 && out_height >= 1 && img.width >= 1 && img.height >= 1 &&
                    img.pixels.size() == std::size_t(img.width) * std::size_t(img.height) * 3,
                "resample_crop: empty or inconsistent image");
  const AxisTaps xs = axis_taps(img.width, box.x, box.width, out_width);
  const AxisTaps ys = axis_taps(img.height, box.y, box.height, out_height);
  const int row0 = *std::min_element(ys.start.begin(), ys.start.end());
  int row1 = 0;
  for (std::size_t o = 0; o < ys.start.size(); ++o)
    row1 = std::max(row1, ys.start[o] + ys.count[o]);
  // Horizontal pass over the rows the vertical taps read: rows x out_width x 3 floats.
  const std::size_t n = std::size_t(out_width), m = std::size_t(out_height);
  std::vector<float> tmp(std::size_t(row1 - row0) * n * 3);
  for (int r = row0; r < row1; ++r) {
    const std::uint8_t* src = img.pixels.data() + std::size_t(r) * std::size_t(img.width) * 3;
    float* dst = tmp.data() + std::size_t(r - row0) * n * 3;
    for (std::size_t o = 0; o < n; ++o) {
      const float* w = xs.w.data() + o * std::size_t(xs.max_count);
      const std::uint8_t* s = src + std::size_t(xs.start[o]) * 3;
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < xs.count[o]; ++k)
        for (int c = 0; c < 3; ++c) acc[c] += w[k] * s[3 * k + c];
      const std::size_t out_col = flip ? n - 1 - o : o;
      for (int c = 0; c < 3; ++c) dst[out_col * 3 + std::size_t(c)] = acc[c];
    }
  }
  for (std::size_t o = 0; o < m; ++o) {
    const float* w = ys.w.data() + o * std::size_t(ys.max_count);
    const float* s = tmp.data() + std::size_t(ys.start[o] - row0) * n * 3;
    for (std::size_t col = 0; col < n; ++col) {
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < ys.count[o]; ++k)
        for (int c = 0; c < 3; ++c) acc[c] += w[k] * s[std::size_t(k) * n * 3 + col * 3 + c];
      for (std::size_t c = 0; c < 3; ++c)
        chw[c * n * m + o * n + col] =
            static_cast<std::uint8_t>(std::clamp(std::lround(acc[c]), 0L, 255L));
    }
  }
}

void decode_augmented(const std::uint8_t* data, std::size_t bytes, const std::string& name,
                      const AugmentSpec& spec, std::int64_t epoch, std::int64_t index,
                      std::uint8_t* chw) {
  const ImageSize full = read_image_size(data, bytes, name);
  const CropBox box = spec.train
                          ? random_resized_crop(full.width, full.height, spec.seed, epoch, index)
                          : center_crop(full.width, full.height, spec.size);
  // Decode no larger than needed: both sides of the crop must keep >= size pixels.
  const double min_scale = std::min(1.0, spec.size / std::min(box.width, box.height));
  const RgbImage img = decode_image(data, bytes, name, min_scale);
  const double sx = double(img.width) / full.width, sy = double(img.height) / full.height;
  const CropBox scaled{box.x * sx, box.y * sy, box.width * sx, box.height * sy};
  const bool flip = spec.train && random_flip(spec.seed, epoch, index);
  resample_crop(img, scaled, spec.size, flip, chw);
}

}  // namespace distnet::data
