// Builds an ImageNet-like JPEG tree for the loader benchmark (distnet_loader_bench, and
// bench/torchvision_loader_bench.py on the same files): DIR/train/<class>/, DIR/val/<class>/.
// ImageNet-1k's typical photo is a 500 x 375 or 375 x 500 baseline JPEG, 4:2:0, quality about
// 90, 110 KB on average. Each file here is one of those sizes (45 % each; 10 % larger:
// 500 x 333, 800 x 600, 1024 x 768), quality 90, 4:2:0, and holds a real Fashion-MNIST garment
// (its class) enlarged to 50-90 % of the short side and tinted, over a background of a
// four-corner colour gradient with low-frequency ripples and per-pixel noise, so the entropy
// data, and with it the decode cost, is photo-like rather than flat.
#pragma once

#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/image_folder_maker.hpp"

namespace distnet::testkit {

struct PhotoSpec {
  int train_per_class = 20, val_per_class = 5;
  int quality = 90;
  std::uint32_t seed = 1;
};

// Baseline JPEG, 4:2:0 chroma subsampling (what cameras and ImageNet use).
inline std::vector<std::uint8_t> encode_jpeg_420(const std::vector<std::uint8_t>& rgb, int w, int h,
                                                 int quality) {
  tjhandle t = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(t, rgb.data(), w, 0, h, TJPF_RGB, &out, &size, TJSAMP_420, quality, 0);
  std::vector<std::uint8_t> bytes;
  if (rc == 0) bytes.assign(out, out + size);
  tjFree(out);
  tjDestroy(t);
  if (rc != 0) throw std::runtime_error("tjCompress2 failed");
  return bytes;
}

inline void photo_size(std::uint32_t r, int* w, int* h) {
  const int k = int(r % 20);
  if (k < 9)
    *w = 500, *h = 375;
  else if (k < 18)
    *w = 375, *h = 500;
  else if (k == 18)
    *w = 500, *h = 333;
  else if ((r >> 5) % 2)
    *w = 800, *h = 600;
  else
    *w = 1024, *h = 768;
}

// One photo-like RGB picture of `garment` (28 x 28 grey), interleaved, w x h.
inline std::vector<std::uint8_t> photo_pixels(const std::vector<std::uint8_t>& garment, int w,
                                              int h, std::uint32_t r) {
  std::uint32_t state = r;
  auto next = [&] { return state = mix(state, 0x51ED27u); };
  float corner[4][3], tint[3];
  for (auto& c : corner)
    for (float& v : c) v = float(next() % 256);
  for (float& v : tint) v = 0.35f + float(next() % 1000) / 1538.0f;  // 0.35-1
  const float fx = 2.0f + float(next() % 9), fy = 2.0f + float(next() % 9);
  // The garment, enlarged with the project's own antialiased resampler.
  const int side = std::min(w, h) * (50 + int(next() % 41)) / 100;
  const int gx = int(next() % std::uint32_t(w - side + 1)),
            gy = int(next() % std::uint32_t(h - side + 1));
  data::RgbImage small{28, 28, std::vector<std::uint8_t>(784 * 3)};
  for (std::size_t p = 0; p < 784; ++p)
    for (std::size_t c = 0; c < 3; ++c) small.pixels[3 * p + c] = garment[p];
  std::vector<std::uint8_t> big(std::size_t(side) * std::size_t(side) * 3);
  data::resample_crop(small, data::CropBox{0, 0, 28, 28}, side, side, false, big.data());
  std::vector<std::uint8_t> rgb(std::size_t(w) * std::size_t(h) * 3);
  for (int y = 0; y < h; ++y) {
    const float v = float(y) / float(h - 1);
    for (int x = 0; x < w; ++x) {
      const float u = float(x) / float(w - 1);
      const float ripple =
          18.0f * std::sin(6.2832f * (fx * u + 0.5f * fy * v)) * std::cos(6.2832f * fy * v);
      const std::uint32_t n = mix(r, std::uint32_t(y * w + x));
      const float noise = float(int(n & 31) + int((n >> 5) & 31) - 31);  // -31..31, triangular
      const bool inside = x >= gx && x < gx + side && y >= gy && y < gy + side;
      for (int c = 0; c < 3; ++c) {
        float bg = (1 - u) * (1 - v) * corner[0][c] + u * (1 - v) * corner[1][c] +
                   (1 - u) * v * corner[2][c] + u * v * corner[3][c] + ripple;
        if (inside) {  // the garment's intensity as its opacity
          const std::size_t p = std::size_t(y - gy) * std::size_t(side) + std::size_t(x - gx);
          const float a = big[p] / 255.0f;
          bg = (1 - a) * bg + a * big[p] * tint[c];
        }
        rgb[(std::size_t(y) * std::size_t(w) + std::size_t(x)) * 3 + std::size_t(c)] =
            std::uint8_t(std::clamp(bg + noise, 0.0f, 255.0f));
      }
    }
  }
  return rgb;
}

inline void make_photo_folder(const std::string& out, const PhotoSpec& spec) {
  write_fashion_tree(
      out, spec.train_per_class, spec.val_per_class, spec.seed,
      [&](const std::vector<std::uint8_t>& px, std::uint32_t r, int, std::string* ext) {
        int w = 0, h = 0;
        photo_size(r, &w, &h);
        *ext = ".JPEG";
        return encode_jpeg_420(photo_pixels(px, w, h, r), w, h, spec.quality);
      });
}

}  // namespace distnet::testkit
