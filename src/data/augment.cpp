#include "distnet/data/augment.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "distnet/data/stage_times.hpp"
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

void decode_augmented(const std::uint8_t* data, std::size_t bytes, const std::string& name,
                      const AugmentSpec& spec, std::int64_t epoch, std::int64_t index,
                      std::uint8_t* chw) {
  StageTimes* times = thread_stage_times();
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = times ? Clock::now() : Clock::time_point{};
  const ImageSize full = read_image_size(data, bytes, name);
  const CropBox box = spec.train
                          ? random_resized_crop(full.width, full.height, spec.seed, epoch, index)
                          : center_crop(full.width, full.height, spec.size);
  // Decode no larger than needed: both sides of the crop must keep >= size pixels, and only the
  // rows and columns the crop's resampling taps read (the support, rounded up, plus upsampling
  // context) are decoded.
  const double min_scale = std::min(1.0, spec.size / std::min(box.width, box.height));
  const int margin = int(std::ceil(std::max(box.width, box.height) / spec.size)) + 4;
  const DecodedRegion r = decode_image_region(data, bytes, name, min_scale, box.x, box.y, box.width,
                                              box.height, margin);
  const Clock::time_point t1 = times ? Clock::now() : Clock::time_point{};
  const double sx = double(r.scaled_width) / full.width, sy = double(r.scaled_height) / full.height;
  const CropBox scaled{box.x * sx - r.x0, box.y * sy - r.y0, box.width * sx, box.height * sy};
  const bool flip = spec.train && random_flip(spec.seed, epoch, index);
  resample_crop(r.img, scaled, spec.size, flip, chw);
  if (times) {
    times->decode_s += std::chrono::duration<double>(t1 - t0).count();
    times->augment_s += std::chrono::duration<double>(Clock::now() - t1).count();
  }
}

}  // namespace distnet::data
