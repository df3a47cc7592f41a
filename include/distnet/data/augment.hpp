// The standard ImageNet augmentations, as pure functions of (seed, epoch, global sample index),
// so that N ranks produce what one process does and a resumed run what a straight one does.
//   training:   RandomResizedCrop (area 8-100 %, aspect 3/4-4/3, 10 tries, then torchvision's
//               centre-crop fallback) to size x size, and a horizontal flip with p = 0.5;
//   evaluation: the short side resized to size * 256 / 224, then a centre crop of size x size.
// Draws: philox_block(seed, augment, stream 0, step = epoch, item = index, block = try 0..9 for
// the crop, 10 for the flip) -- docs/randomness.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "distnet/data/image_decode.hpp"

namespace distnet::data {

// A rectangle of the source image, in its pixels (fractional for the centre crop).
struct CropBox {
  double x = 0, y = 0, width = 0, height = 0;
};

// torchvision.transforms.RandomResizedCrop.get_params with scale (0.08, 1), ratio (3/4, 4/3).
CropBox random_resized_crop(int width, int height, std::uint64_t seed, std::int64_t epoch,
                            std::int64_t index);
// Resize(size * 256 / 224) + CenterCrop(size), as the box of the source it takes.
CropBox center_crop(int width, int height, int size);
bool random_flip(std::uint64_t seed, std::int64_t epoch, std::int64_t index);

// `box` of `img` resampled to size x size, written as planar uint8 (3 x size x size), mirrored
// left-right when `flip`. The filter is bilinear (a triangle), widened by the reduction factor
// when shrinking -- PIL's antialiased BILINEAR, which torchvision uses -- so a large reduction
// averages every source pixel it covers instead of aliasing.
void resample_crop(const RgbImage& img, const CropBox& box, int size, bool flip, std::uint8_t* chw);
// The same to out_width x out_height (3 x out_height x out_width).
void resample_crop(const RgbImage& img, const CropBox& box, int out_width, int out_height,
                   bool flip, std::uint8_t* chw);

struct AugmentSpec {
  int size = 224;     // output height and width
  bool train = true;  // random crop and flip; false: the evaluation centre crop
  std::uint64_t seed = 0;
};

// Decodes encoded image bytes and produces the augmented 3 x size x size uint8 sample. The crop
// is chosen from the header's size first, so a JPEG is decoded only as large as the crop needs
// (TurboJPEG's DCT scaling); the crop is then cut from the scaled image and resampled.
void decode_augmented(const std::uint8_t* data, std::size_t bytes, const std::string& name,
                      const AugmentSpec& spec, std::int64_t epoch, std::int64_t index,
                      std::uint8_t* chw);

}  // namespace distnet::data
