// Encoders for test images, made in the tests themselves: JPEG through TurboJPEG (RGB, gray,
// CMYK, progressive) and PNG written chunk by chunk with zlib (any bit depth and colour type,
// palette, alpha, and headers that lie about their size).
#pragma once

#include <turbojpeg.h>
#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace distnet::testkit {

enum class JpegColor { rgb, gray, cmyk };

// `px`: interleaved samples, 3 (rgb), 1 (gray) or 4 (cmyk, stored values) per pixel.
inline std::vector<std::uint8_t> encode_jpeg(const std::vector<std::uint8_t>& px, int w, int h,
                                             JpegColor color = JpegColor::rgb,
                                             bool progressive = false, int quality = 92) {
  tjhandle t = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int format = color == JpegColor::rgb    ? TJPF_RGB
                     : color == JpegColor::gray ? TJPF_GRAY
                                                : TJPF_CMYK;
  const int samp = color == JpegColor::gray ? TJSAMP_GRAY : TJSAMP_444;
  const int rc = tjCompress2(t, px.data(), w, 0, h, format, &out, &size, samp, quality,
                             progressive ? TJFLAG_PROGRESSIVE : 0);
  std::vector<std::uint8_t> bytes;
  if (rc == 0) bytes.assign(out, out + size);
  tjFree(out);
  tjDestroy(t);
  if (rc != 0) throw std::runtime_error("tjCompress2 failed");
  return bytes;
}

inline void png_chunk(std::vector<std::uint8_t>& f, const char* type,
                      const std::vector<std::uint8_t>& data) {
  const auto n = std::uint32_t(data.size());
  for (int s = 24; s >= 0; s -= 8) f.push_back(std::uint8_t(n >> s));
  const std::size_t start = f.size();
  f.insert(f.end(), type, type + 4);
  f.insert(f.end(), data.begin(), data.end());
  const auto crc = std::uint32_t(crc32(0, f.data() + start, uInt(f.size() - start)));
  for (int s = 24; s >= 0; s -= 8) f.push_back(std::uint8_t(crc >> s));
}

// PNG colour types: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
inline int png_channels(int color_type) {
  return color_type == 2 ? 3 : color_type == 4 ? 2 : color_type == 6 ? 4 : 1;
}

// `samples`: rows of width x channels samples (big-endian pairs of bytes for 16-bit), no filter
// bytes; `palette`: RGB triples for colour type 3. `idat` false: the header and a stub of data
// (a decompression bomb's start).
inline std::vector<std::uint8_t> encode_png(const std::vector<std::uint8_t>& samples,
                                            std::uint32_t w, std::uint32_t h, int bit_depth,
                                            int color_type,
                                            const std::vector<std::uint8_t>& palette = {},
                                            bool idat = true) {
  std::vector<std::uint8_t> f{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  for (std::uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(std::uint8_t(v >> s));
  ihdr.insert(ihdr.end(), {std::uint8_t(bit_depth), std::uint8_t(color_type), 0, 0, 0});
  png_chunk(f, "IHDR", ihdr);
  if (color_type == 3) png_chunk(f, "PLTE", palette);
  if (!idat) {  // a few bytes of image data, as a hostile file would begin
    png_chunk(f, "IDAT", {0x78, 0x9C, 0x63, 0x60, 0x00, 0x00});
  } else {
    const std::size_t row =
        std::size_t(w) * std::size_t(png_channels(color_type)) * std::size_t(bit_depth) / 8;
    std::vector<std::uint8_t> raw;
    for (std::uint32_t y = 0; y < h; ++y) {
      raw.push_back(0);  // filter: none
      raw.insert(raw.end(), samples.begin() + std::ptrdiff_t(y * row),
                 samples.begin() + std::ptrdiff_t((y + 1) * row));
    }
    uLongf zn = compressBound(uLong(raw.size()));
    std::vector<std::uint8_t> z(zn);
    if (compress2(z.data(), &zn, raw.data(), uLong(raw.size()), 6) != Z_OK)
      throw std::runtime_error("compress2 failed");
    z.resize(zn);
    png_chunk(f, "IDAT", z);
  }
  png_chunk(f, "IEND", {});
  return f;
}

// A JPEG's SOF marker rewritten to claim w x h (the entropy data stays that of the real size).
inline std::vector<std::uint8_t> jpeg_claiming(std::vector<std::uint8_t> jpeg, int w, int h) {
  for (std::size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC2)) {
      jpeg[i + 5] = std::uint8_t(h >> 8), jpeg[i + 6] = std::uint8_t(h);
      jpeg[i + 7] = std::uint8_t(w >> 8), jpeg[i + 8] = std::uint8_t(w);
      return jpeg;
    }
  }
  throw std::runtime_error("no SOF marker");
}

// A smooth RGB test picture (gradients), w x h x 3.
inline std::vector<std::uint8_t> test_picture(int w, int h) {
  std::vector<std::uint8_t> px(std::size_t(w) * std::size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = px.data() + (std::size_t(y) * std::size_t(w) + std::size_t(x)) * 3;
      p[0] = std::uint8_t(255 * x / (w > 1 ? w - 1 : 1));
      p[1] = std::uint8_t(255 * y / (h > 1 ? h - 1 : 1));
      p[2] = std::uint8_t(128 + (x - y) / 4);
    }
  return px;
}

}  // namespace distnet::testkit
