// The JPEG and PNG decoders on images encoded here: every colour model becomes RGB, sizes come
// from the header, DCT scaling picks the right factor, and damaged or hostile input is refused
// with one line naming the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "data/image_files.hpp"
#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;
namespace tk = distnet::testkit;

namespace {

double mean_abs_diff(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  double s = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += std::abs(int(a[i]) - int(b[i]));
  return s / double(std::max<std::size_t>(1, a.size()));
}

std::vector<std::uint8_t> gray_of(const std::vector<std::uint8_t>& rgb) {
  std::vector<std::uint8_t> g(rgb.size() / 3);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = rgb[3 * i + 1];
  return g;
}

std::vector<std::uint8_t> as_rgb(const std::vector<std::uint8_t>& gray) {
  std::vector<std::uint8_t> out;
  for (auto v : gray) out.insert(out.end(), {v, v, v});
  return out;
}

RgbImage decode(const std::vector<std::uint8_t>& b, double min_scale = 1.0) {
  return decode_image(b.data(), b.size(), "pic", min_scale);
}

// The message of the Error decoding `b` as `name` throws.
std::string decode_error(const std::vector<std::uint8_t>& b, const std::string& name = "bad.jpg") {
  try {
    decode_image(b.data(), b.size(), name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_one_line_naming(const std::string& msg, const std::string& name,
                            const std::string& what) {
  EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << "'" << what << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace

TEST(ImageDecode, FormatIsSniffedFromTheBytes) {
  const auto px = tk::test_picture(8, 8);
  const auto jpg = tk::encode_jpeg(px, 8, 8), png = tk::encode_png(px, 8, 8, 8, 2);
  EXPECT_EQ(sniff_image_format(jpg.data(), jpg.size()), ImageFormat::jpeg);
  EXPECT_EQ(sniff_image_format(png.data(), png.size()), ImageFormat::png);
  const std::string text = "GIF89a not ours";
  EXPECT_EQ(sniff_image_format(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
            ImageFormat::unknown);
  // A PNG called .JPEG (ImageNet has one) decodes as the PNG it is.
  const RgbImage img = decode_image(png.data(), png.size(), "n02105855_2933.JPEG");
  EXPECT_EQ(img.pixels, px);
}

TEST(ImageDecode, RgbJpegIsCloseToTheSource) {
  const auto px = tk::test_picture(61, 37);
  const RgbImage img = decode(tk::encode_jpeg(px, 61, 37));
  EXPECT_EQ(img.width, 61);
  EXPECT_EQ(img.height, 37);
  EXPECT_LT(mean_abs_diff(img.pixels, px), 2.5);
}

TEST(ImageDecode, GrayscaleJpegBecomesRgbWithEqualChannels) {
  const auto gray = gray_of(tk::test_picture(40, 30));
  const RgbImage img = decode(tk::encode_jpeg(gray, 40, 30, tk::JpegColor::gray));
  ASSERT_EQ(img.pixels.size(), 40u * 30 * 3);
  for (std::size_t i = 0; i < gray.size(); ++i) {
    EXPECT_EQ(img.pixels[3 * i], img.pixels[3 * i + 1]);
    EXPECT_EQ(img.pixels[3 * i], img.pixels[3 * i + 2]);
  }
  EXPECT_LT(mean_abs_diff(img.pixels, as_rgb(gray)), 1.5);
}

TEST(ImageDecode, AdobeCmykJpegBecomesRgb) {
  // Stored (inverted) inks C' = R, M' = G, Y' = B with K' = 255 (no black) mean the RGB picture;
  // a half-strength black halves every channel.
  const int w = 32, h = 24;
  const auto px = tk::test_picture(w, h);
  for (std::uint8_t k : {std::uint8_t(255), std::uint8_t(128)}) {
    std::vector<std::uint8_t> cmyk, want;
    for (std::size_t i = 0; i < px.size() / 3; ++i) {
      cmyk.insert(cmyk.end(), {px[3 * i], px[3 * i + 1], px[3 * i + 2], k});
      for (int c = 0; c < 3; ++c)
        want.push_back(std::uint8_t(px[3 * i + std::size_t(c)] * k / 255));
    }
    const RgbImage img = decode(tk::encode_jpeg(cmyk, w, h, tk::JpegColor::cmyk));
    EXPECT_LT(mean_abs_diff(img.pixels, want), 2.0) << "K' = " << int(k);
  }
}

TEST(ImageDecode, ProgressiveJpegDecodes) {
  const auto px = tk::test_picture(50, 70);
  const RgbImage img = decode(tk::encode_jpeg(px, 50, 70, tk::JpegColor::rgb, true));
  EXPECT_EQ(img.width, 50);
  EXPECT_LT(mean_abs_diff(img.pixels, px), 2.5);
}

TEST(ImageDecode, PngColourModelsBecomeExactRgb) {
  const int w = 9, h = 5;
  const auto px = tk::test_picture(w, h);
  const auto gray = gray_of(px);
  EXPECT_EQ(decode(tk::encode_png(px, w, h, 8, 2)).pixels, px);              // RGB
  EXPECT_EQ(decode(tk::encode_png(gray, w, h, 8, 0)).pixels, as_rgb(gray));  // gray
  std::vector<std::uint8_t> wide, rgba, ga;                                  // 16-bit, alpha
  std::vector<std::uint8_t> off;  // 16-bit v becomes round(v * 255 / 65535): v * 257 -> v
  for (std::size_t i = 0; i < px.size(); ++i) {
    wide.insert(wide.end(), {px[i], px[i]});
    off.insert(off.end(), {px[i], std::uint8_t(0x5A)});
  }
  const RgbImage near = decode(tk::encode_png(off, w, h, 16, 2));
  for (std::size_t i = 0; i < px.size(); ++i)
    EXPECT_EQ(near.pixels[i], std::lround((px[i] * 256 + 0x5A) * 255.0 / 65535)) << i;
  for (std::size_t i = 0; i < px.size() / 3; ++i) {
    rgba.insert(rgba.end(), {px[3 * i], px[3 * i + 1], px[3 * i + 2], std::uint8_t(i * 20)});
    ga.insert(ga.end(), {gray[i], std::uint8_t(255 - i)});
  }
  EXPECT_EQ(decode(tk::encode_png(wide, w, h, 16, 2)).pixels, px);
  EXPECT_EQ(decode(tk::encode_png(rgba, w, h, 8, 6)).pixels, px);  // alpha dropped, as PIL
  EXPECT_EQ(decode(tk::encode_png(ga, w, h, 8, 4)).pixels, as_rgb(gray));
  std::vector<std::uint8_t> palette, index, want;  // 8-bit palette
  for (int v = 0; v < 256; ++v)
    palette.insert(palette.end(), {std::uint8_t(v), std::uint8_t(255 - v), std::uint8_t(v / 2)});
  for (int i = 0; i < w * h; ++i) {
    index.push_back(std::uint8_t(i * 5));
    want.insert(want.end(),
                {std::uint8_t(i * 5), std::uint8_t(255 - i * 5), std::uint8_t(i * 5 / 2)});
  }
  EXPECT_EQ(decode(tk::encode_png(index, w, h, 8, 3, palette)).pixels, want);
}

TEST(ImageDecode, JpegScalingPicksTheSmallestFactorAtLeastTheMinimum) {
  const auto px = tk::test_picture(400, 300);
  const auto jpg = tk::encode_jpeg(px, 400, 300);
  EXPECT_EQ(decode(jpg).width, 400);
  const RgbImage a = decode(jpg, 0.3);  // 3/8 (2/8 = 0.25 is too small)
  EXPECT_EQ(a.width, 150);
  EXPECT_EQ(a.height, 113);  // ceil(300 * 3 / 8)
  const RgbImage b = decode(jpg, 0.01);
  EXPECT_EQ(b.width, 50);  // 1/8, the smallest there is
  EXPECT_EQ(decode(jpg, 0.5).width, 200);
  // PNG has no scaled decode.
  EXPECT_EQ(decode(tk::encode_png(px, 400, 300, 8, 2), 0.2).width, 400);
  // And the scaled picture is the picture: a 2/8 decode against a box average of the source.
  const RgbImage q = decode(jpg, 0.25);
  ASSERT_EQ(q.width, 100);
  double err = 0;
  for (int y = 0; y < 75; ++y)
    for (int x = 0; x < 100; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0;
        for (int dy = 0; dy < 4; ++dy)
          for (int dx = 0; dx < 4; ++dx)
            s += px[(std::size_t(4 * y + dy) * 400 + std::size_t(4 * x + dx)) * 3 + std::size_t(c)];
        err += std::fabs(s / 16 -
                         q.pixels[(std::size_t(y) * 100 + std::size_t(x)) * 3 + std::size_t(c)]);
      }
  EXPECT_LT(err / (75 * 100 * 3), 3.0);
}

TEST(ImageDecode, SizeComesFromTheHeaderAlone) {
  const auto px = tk::test_picture(33, 17);
  const auto jpg = tk::encode_jpeg(px, 33, 17), png = tk::encode_png(px, 33, 17, 8, 2);
  const ImageSize a = read_image_size(jpg.data(), jpg.size(), "a.jpg");
  const ImageSize b = read_image_size(png.data(), png.size(), "b.png");
  EXPECT_EQ(a.width, 33);
  EXPECT_EQ(a.height, 17);
  EXPECT_EQ(b.width, 33);
  EXPECT_EQ(b.height, 17);
}

TEST(ImageDecode, TruncatedAndCorruptImagesAreRefused) {
  const auto px = tk::test_picture(64, 48);
  const auto jpg = tk::encode_jpeg(px, 64, 48), png = tk::encode_png(px, 64, 48, 8, 2);
  expect_one_line_naming(
      decode_error(std::vector<std::uint8_t>(jpg.begin(), jpg.begin() + long(jpg.size() / 2))),
      "bad.jpg", "truncated JPEG");
  expect_one_line_naming(
      decode_error(std::vector<std::uint8_t>(png.begin(), png.begin() + long(png.size() / 2)),
                   "bad.png"),
      "bad.png", "PNG");
  std::vector<std::uint8_t> garbled = jpg;  // entropy-coded data overwritten with markers
  for (std::size_t i = garbled.size() / 2; i < garbled.size() / 2 + 40; ++i) garbled[i] = 0xFF;
  expect_one_line_naming(decode_error(garbled), "bad.jpg", "JPEG");
  std::vector<std::uint8_t> crc = png;  // IDAT bytes changed: the CRC no longer matches
  crc[png.size() - 20] ^= 0x55;
  expect_one_line_naming(decode_error(crc, "bad.png"), "bad.png", "PNG");
}

TEST(ImageDecode, NoImageIsRefused) {
  const std::string text = "class,label\nshirt,6\n";
  expect_one_line_naming(
      decode_error(std::vector<std::uint8_t>(text.begin(), text.end()), "notes.jpg"), "notes.jpg",
      "not a JPEG or PNG image (starts with bytes 63 6C 61 73)");
  expect_one_line_naming(decode_error({}, "empty.png"), "empty.png", "empty file");
}

TEST(ImageDecode, DecompressionBombsAreRefusedFromTheHeader) {
  // 65000 x 65000 = 4.2 G pixels, 12.7 GB as RGB: refused before any allocation.
  const auto png = tk::encode_png({}, 65000, 65000, 8, 2, {}, /*idat=*/false);
  const auto jpg =
      tk::jpeg_claiming(tk::encode_jpeg(tk::test_picture(16, 16), 16, 16), 65000, 65000);
  for (const auto* b : {&png, &jpg}) {
    const std::string msg = decode_error(*b, "bomb.jpg");
    expect_one_line_naming(msg, "bomb.jpg", "claims 65000 x 65000 = 4225000000 pixels");
    EXPECT_NE(msg.find("above the limit of 178956970"), std::string::npos) << msg;
    EXPECT_THROW(read_image_size(b->data(), b->size(), "bomb.jpg"), Error);
  }
  // Just under the limit the header is accepted (13377 x 13377 = 178,944,129 pixels).
  const auto ok = tk::encode_png({}, 13377, 13377, 8, 2, {}, false);
  EXPECT_EQ(read_image_size(ok.data(), ok.size(), "big.png").width, 13377);
}

// Every truncation and many single-byte changes of a JPEG and a PNG: decoded or refused with
// distnet::Error, never a crash (the fuzz target fuzz_images goes further under ASan).
TEST(ImageDecode, MutatedInputsDecodeOrThrow) {
  const auto px = tk::test_picture(20, 12);
  for (const auto& good :
       {tk::encode_jpeg(px, 20, 12), tk::encode_jpeg(px, 20, 12, tk::JpegColor::rgb, true),
        tk::encode_png(px, 20, 12, 8, 2)}) {
    int refused = 0;
    for (std::size_t len = 0; len < good.size(); ++len) {
      try {
        decode_image(good.data(), len, "cut");
      } catch (const Error&) {
        ++refused;
      }
    }
    EXPECT_GT(refused, int(good.size()) * 9 / 10);
    for (std::size_t pos = 0; pos < good.size(); pos += 3) {
      for (std::uint8_t x : {std::uint8_t(0x01), std::uint8_t(0x80), std::uint8_t(0xFF)}) {
        std::vector<std::uint8_t> b = good;
        b[pos] ^= x;
        try {
          const RgbImage img = decode_image(b.data(), b.size(), "flip");
          EXPECT_EQ(img.pixels.size(), std::size_t(img.width) * std::size_t(img.height) * 3);
        } catch (const Error&) {
        }
      }
    }
  }
}
