// Cropped JPEG decoding (decode_image_region, the path decode_augmented takes): inside the
// requested box it gives exactly the pixels of a whole decode at the same DCT scale, for every
// chroma subsampling, colour model and progressive files; damage anywhere in the file is refused
// whatever the box (the rows below the box are still read).
#include <gtest/gtest.h>

#include <cmath>

#include "data/image_files.hpp"
#include "data/photo_folder_maker.hpp"
#include "distnet/data/augment.hpp"
#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;
namespace tk = distnet::testkit;

namespace {

struct Encoded {
  const char* what;
  std::vector<std::uint8_t> bytes;
};

std::vector<Encoded> encodings(int w, int h) {
  std::vector<std::uint8_t> px(std::size_t(w) * std::size_t(h) * 3);  // textured, not smooth
  for (std::size_t i = 0; i < px.size(); ++i)
    px[i] = std::uint8_t((i * 7 + (i / 3) % 251 + tk::mix(1, std::uint32_t(i)) % 40) & 255);
  std::vector<std::uint8_t> gray(std::size_t(w) * std::size_t(h)), cmyk(gray.size() * 4);
  for (std::size_t i = 0; i < gray.size(); ++i) {
    gray[i] = px[3 * i + 1];
    for (int c = 0; c < 3; ++c) cmyk[4 * i + std::size_t(c)] = px[3 * i + std::size_t(c)];
    cmyk[4 * i + 3] = std::uint8_t(200 + i % 50);
  }
  return {{"RGB 4:2:0", tk::encode_jpeg_420(px, w, h, 90)},
          {"RGB 4:4:4", tk::encode_jpeg(px, w, h)},
          {"grayscale", tk::encode_jpeg(gray, w, h, tk::JpegColor::gray)},
          {"CMYK", tk::encode_jpeg(cmyk, w, h, tk::JpegColor::cmyk)},
          {"progressive", tk::encode_jpeg(px, w, h, tk::JpegColor::rgb, true)}};
}

}  // namespace

TEST(ImageRegion, RegionPixelsAreTheWholeDecodesInsideTheBox) {
  for (const auto [w, h] : {std::pair{500, 375}, std::pair{333, 251}}) {
    for (const Encoded& e : encodings(w, h)) {
      for (const double min_scale : {1.0, 0.6, 0.3}) {
        const RgbImage whole = decode_image(e.bytes.data(), e.bytes.size(), "x.jpg", min_scale);
        for (std::int64_t i = 0; i < 12; ++i) {
          const CropBox b = random_resized_crop(w, h, 5, 0, i);
          const int margin = 4;
          const DecodedRegion r =
              decode_image_region(e.bytes.data(), e.bytes.size(), "x.jpg", min_scale, b.x, b.y,
                                  b.width, b.height, margin);
          SCOPED_TRACE(std::string(e.what) + " " + std::to_string(w) + "x" + std::to_string(h) +
                       " min_scale " + std::to_string(min_scale) + " box " + std::to_string(i));
          ASSERT_EQ(r.scaled_width, whole.width);
          ASSERT_EQ(r.scaled_height, whole.height);
          const double sx = double(whole.width) / w, sy = double(whole.height) / h;
          // The box in decoded pixels, one pixel wider on each side (what resampling reads).
          const int bx0 = std::max(0, int(std::floor(b.x * sx)) - 1);
          const int by0 = std::max(0, int(std::floor(b.y * sy)) - 1);
          const int bx1 = std::min(whole.width, int(std::ceil((b.x + b.width) * sx)) + 1);
          const int by1 = std::min(whole.height, int(std::ceil((b.y + b.height) * sy)) + 1);
          ASSERT_LE(r.x0, bx0);
          ASSERT_LE(r.y0, by0);
          ASSERT_GE(r.x0 + r.img.width, bx1);
          ASSERT_GE(r.y0 + r.img.height, by1);
          int differ = 0;
          for (int y = by0; y < by1; ++y)
            for (int x = bx0; x < bx1; ++x)
              for (int c = 0; c < 3; ++c) {
                const auto want = whole.pixels[(std::size_t(y) * whole.width + x) * 3 + c];
                const auto got =
                    r.img.pixels[(std::size_t(y - r.y0) * r.img.width + (x - r.x0)) * 3 + c];
                differ += want != got;
              }
          EXPECT_EQ(differ, 0);
        }
      }
    }
  }
}

TEST(ImageRegion, DamageBelowTheBoxIsStillRefused) {
  const auto bytes = encodings(320, 240)[0].bytes;
  std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + long(bytes.size() * 3 / 4));
  std::vector<std::uint8_t> garbled = bytes;  // entropy data near the end overwritten
  for (std::size_t i = garbled.size() * 7 / 8; i < garbled.size() * 7 / 8 + 40; ++i)
    garbled[i] = 0xFF;
  for (const auto* bad : {&cut, &garbled}) {
    // A box in the top rows only: the damage is below it.
    try {
      decode_image_region(bad->data(), bad->size(), "d/bad.jpg", 1.0, 10, 0, 100, 20, 4);
      ADD_FAILURE() << "damaged JPEG accepted";
    } catch (const Error& err) {
      const std::string m = err.what();
      EXPECT_EQ(m.rfind("d/bad.jpg: corrupt or truncated JPEG data: ", 0), 0u) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

TEST(ImageRegion, PngIsDecodedWhole) {
  const auto px = tk::test_picture(40, 30);
  const auto png = tk::encode_png(px, 40, 30, 8, 2);
  const DecodedRegion r =
      decode_image_region(png.data(), png.size(), "x.png", 0.5, 5, 5, 10, 10, 2);
  EXPECT_EQ(r.x0, 0);
  EXPECT_EQ(r.y0, 0);
  EXPECT_EQ(r.img.width, 40);
  EXPECT_EQ(r.img.height, 30);
  EXPECT_EQ(r.img.pixels, px);
}
