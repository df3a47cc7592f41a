// The augmentations: torchvision's crop parameters and fallback, pure functions of
// (seed, epoch, index), and a resampler that is exact where it should be.
#include <gtest/gtest.h>

#include <cmath>

#include "data/image_files.hpp"
#include "distnet/data/augment.hpp"

using namespace distnet;
using namespace distnet::data;
namespace tk = distnet::testkit;

TEST(Augment, RandomResizedCropStaysInTorchvisionsRanges) {
  int fallbacks = 0;
  for (std::int64_t i = 0; i < 2000; ++i) {
    const CropBox b = random_resized_crop(500, 375, 7, 3, i);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.width, 500);
    ASSERT_LE(b.y + b.height, 375);
    EXPECT_EQ(b.x, std::floor(b.x));  // whole pixels, as torchvision
    const double area = b.width * b.height / (500.0 * 375.0);
    const double ratio = b.width / b.height;
    if (b.width == 500 || b.height == 375) {
      ++fallbacks;
      continue;
    }
    EXPECT_GE(area, 0.08 * 0.97) << i;
    EXPECT_LE(area, 1.0);
    EXPECT_GE(ratio, 0.75 * 0.97) << i;
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.03) << i;
  }
  EXPECT_LT(fallbacks, 200);  // most first tries fit a 4:3 image
}

TEST(Augment, DrawsArePureFunctionsOfSeedEpochAndIndex) {
  auto same = [](const CropBox& a, const CropBox& b) {
    return a.x == b.x && a.y == b.y && a.width == b.width && a.height == b.height;
  };
  EXPECT_TRUE(same(random_resized_crop(300, 200, 1, 2, 3), random_resized_crop(300, 200, 1, 2, 3)));
  int differ_epoch = 0, differ_index = 0, differ_seed = 0, flips = 0;
  for (std::int64_t i = 0; i < 200; ++i) {
    differ_epoch +=
        !same(random_resized_crop(300, 200, 1, 0, i), random_resized_crop(300, 200, 1, 1, i));
    differ_index +=
        !same(random_resized_crop(300, 200, 1, 0, i), random_resized_crop(300, 200, 1, 0, i + 1));
    differ_seed +=
        !same(random_resized_crop(300, 200, 1, 0, i), random_resized_crop(300, 200, 2, 0, i));
    flips += random_flip(1, 0, i);
    EXPECT_EQ(random_flip(1, 0, i), random_flip(1, 0, i));
  }
  EXPECT_GT(differ_epoch, 190);
  EXPECT_GT(differ_index, 190);
  EXPECT_GT(differ_seed, 190);
  EXPECT_GT(flips, 70);  // p = 0.5
  EXPECT_LT(flips, 130);
}

TEST(Augment, ThinImagesFallBackToTheCentredCropTorchvisionTakes) {
  // 1000 x 10: no try can fit (h >= sqrt(800 / (4/3)) > 10), so: full height, width 10 * 4/3.
  const CropBox b = random_resized_crop(1000, 10, 0, 0, 5);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.x, (1000 - 13) / 2);
  EXPECT_EQ(b.y, 0);
  const CropBox t = random_resized_crop(10, 1000, 0, 0, 5);  // and a tall one
  EXPECT_EQ(t.width, 10);
  EXPECT_EQ(t.height, 13);
  EXPECT_EQ(t.y, (1000 - 13) / 2);
}

TEST(Augment, CenterCropIsResize256ThenCrop224) {
  const CropBox b = center_crop(256, 256, 224);  // resize is the identity, crop 224 in the middle
  EXPECT_DOUBLE_EQ(b.x, 16);
  EXPECT_DOUBLE_EQ(b.width, 224);
  const CropBox c = center_crop(640, 480, 224);  // short side 480 -> 256: the crop is 420 px
  EXPECT_DOUBLE_EQ(c.width, 420);
  EXPECT_DOUBLE_EQ(c.height, 420);
  EXPECT_DOUBLE_EQ(c.x, 110);
  EXPECT_DOUBLE_EQ(c.y, 30);
  const CropBox s = center_crop(100, 100, 64);  // size 64: short side to round(64*256/224) = 73
  EXPECT_NEAR(s.width, 100.0 * 64 / 73, 1e-9);
}

TEST(Augment, ResampleIsExactForTheIdentityAndMirrorsOnFlip) {
  const int w = 13, h = 13;
  const auto px = tk::test_picture(w, h);
  const RgbImage img{w, h, px};
  std::vector<std::uint8_t> out(std::size_t(w * h * 3)), flipped(out.size());
  resample_crop(img, CropBox{0, 0, double(w), double(h)}, w, false, out.data());
  resample_crop(img, CropBox{0, 0, double(w), double(h)}, w, true, flipped.data());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const std::uint8_t src = px[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)];
        EXPECT_EQ(out[std::size_t(c) * w * h + std::size_t(y) * w + std::size_t(x)], src);
        EXPECT_EQ(flipped[std::size_t(c) * w * h + std::size_t(y) * w + std::size_t(w - 1 - x)],
                  src);
      }
}

TEST(Augment, ShrinkingAveragesInsteadOfAliasing) {
  // Alternating black and white columns, shrunk 8x: every output pixel is mid-grey (a plain
  // 2-tap bilinear would pick near-black or near-white columns).
  const int w = 256, h = 64;
  RgbImage img{w, h, std::vector<std::uint8_t>(std::size_t(w * h * 3))};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.pixels[(std::size_t(y) * w + std::size_t(x)) * 3 + std::size_t(c)] = x % 2 ? 255 : 0;
  std::vector<std::uint8_t> out(32 * 8 * 3);
  resample_crop(img, CropBox{0, 0, double(w), double(h)}, 32, 8, false, out.data());
  for (auto v : out) {
    EXPECT_GE(v, 120);
    EXPECT_LE(v, 135);
  }
}

TEST(Augment, ScaledJpegDecodeGivesTheCropAFullDecodeGives) {
  const int w = 480, h = 360, size = 32;
  const auto px = tk::test_picture(w, h);
  const auto jpg = tk::encode_jpeg(px, w, h);
  const RgbImage full{w, h, px};
  for (bool train : {true, false}) {
    AugmentSpec spec{size, train, 9};
    for (std::int64_t i = 0; i < 20; ++i) {
      std::vector<std::uint8_t> got(3 * size * size), want(got.size()), again(got.size());
      decode_augmented(jpg.data(), jpg.size(), "x.jpg", spec, 4, i, got.data());
      decode_augmented(jpg.data(), jpg.size(), "x.jpg", spec, 4, i, again.data());
      EXPECT_EQ(got, again);
      const CropBox box = train ? random_resized_crop(w, h, 9, 4, i) : center_crop(w, h, size);
      resample_crop(full, box, size, train && random_flip(9, 4, i), want.data());
      double err = 0;
      for (std::size_t k = 0; k < got.size(); ++k) err += std::abs(int(got[k]) - int(want[k]));
      EXPECT_LT(err / double(got.size()), 4.0) << "train " << train << " sample " << i;
    }
  }
}
