// Builds an image folder (DIR/train/<class>/, DIR/val/<class>/) from the real Fashion-MNIST
// (Debian's dataset-fashion-mnist): each 28 x 28 picture enlarged to a random non-square size,
// tinted, and written in one of ten encodings, so that every kind of file an ImageNet tree holds
// is read: RGB, grayscale, progressive and CMYK JPEGs; RGB, grayscale, 16-bit, palette and
// gray+alpha PNGs; and PNGs named .JPEG. Train images come from the IDX train set, val from t10k.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_files.hpp"
#include "distnet/data/augment.hpp"
#include "distnet/data/dataset.hpp"

namespace distnet::testkit {

struct FolderSpec {
  int train_per_class = 6, val_per_class = 2;
  int min_size = 40, max_size = 120;  // each side, drawn per image
  std::uint32_t seed = 1;
};

inline const std::vector<std::string>& fashion_class_folders() {
  static const std::vector<std::string> names{
      "c0-tshirt", "c1-trouser", "c2-pullover", "c3-dress", "c4-coat",
      "c5-sandal", "c6-shirt",   "c7-sneaker",  "c8-bag",   "c9-ankle-boot"};
  return names;
}

inline std::uint32_t mix(std::uint32_t a, std::uint32_t b) {
  std::uint32_t x = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u);
  x ^= x >> 15, x *= 0x2C1B3C6Du, x ^= x >> 12, x *= 0x297A2D39u, x ^= x >> 15;
  return x;
}

// One picture in encoding `kind` (0..9); returns the bytes and sets the file extension.
inline std::vector<std::uint8_t> encode_kind(int kind, const std::vector<std::uint8_t>& rgb, int w,
                                             int h, std::string* ext) {
  const std::size_t n = std::size_t(w) * std::size_t(h);
  std::vector<std::uint8_t> gray(n), cmyk(n * 4), wide(n * 6), pal_idx(n), ga(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = &rgb[3 * i];
    gray[i] = std::uint8_t((p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8);
    // Adobe CMYK as Photoshop stores it (inverted): stored C' = R, M' = G, Y' = B, K' = 255.
    for (int c = 0; c < 3; ++c) cmyk[4 * i + std::size_t(c)] = p[c];
    cmyk[4 * i + 3] = 255;
    for (int c = 0; c < 3; ++c) {  // 16-bit: v * 257, big-endian
      wide[6 * i + 2 * std::size_t(c)] = p[c];
      wide[6 * i + 2 * std::size_t(c) + 1] = p[c];
    }
    pal_idx[i] = gray[i];
    ga[2 * i] = gray[i];
    ga[2 * i + 1] = std::uint8_t(128 + (i % 128));
  }
  std::vector<std::uint8_t> palette;
  for (int v = 0; v < 256; ++v)
    palette.insert(palette.end(), {std::uint8_t(v), std::uint8_t(v), std::uint8_t(255 - v)});
  const auto uw = std::uint32_t(w), uh = std::uint32_t(h);
  switch (kind) {
    case 0:
      *ext = ".jpg";
      return encode_jpeg(rgb, w, h);
    case 1:
      *ext = ".jpeg";
      return encode_jpeg(gray, w, h, JpegColor::gray);
    case 2:
      *ext = ".png";
      return encode_png(rgb, uw, uh, 8, 2);
    case 3:
      *ext = ".PNG";
      return encode_png(gray, uw, uh, 8, 0);
    case 4:
      *ext = ".JPG";
      return encode_jpeg(rgb, w, h, JpegColor::rgb, /*progressive=*/true);
    case 5:
      *ext = ".jpg";
      return encode_jpeg(cmyk, w, h, JpegColor::cmyk);
    case 6:
      *ext = ".JPEG";
      return encode_png(rgb, uw, uh, 8, 2);  // a PNG named .JPEG
    case 7:
      *ext = ".png";
      return encode_png(wide, uw, uh, 16, 2);
    case 8:
      *ext = ".png";
      return encode_png(pal_idx, uw, uh, 8, 3, palette);
    default:
      *ext = ".png";
      return encode_png(ga, uw, uh, 8, 4);
  }
}

// The first `train_per_class` (`val_per_class`) Fashion-MNIST pictures of each class of the
// training (test) split, written as OUT/train|val/<class>/<index><ext>. For each, `encode(px, r,
// k, &ext)` turns the 28 x 28 pixels into file bytes: r is a per-picture random word from
// `seed`, k counts the pictures of the split.
template <typename Encode>
void write_fashion_tree(const std::string& out, int train_per_class, int val_per_class,
                        std::uint32_t seed, Encode encode) {
  namespace fs = std::filesystem;
  for (data::Split split : {data::Split::train, data::Split::test}) {
    const auto ds = data::open_dataset(data::DatasetOptions{}, split);
    const std::string sd = out + (split == data::Split::train ? "/train" : "/val");
    const int per_class = split == data::Split::train ? train_per_class : val_per_class;
    for (const auto& c : fashion_class_folders()) fs::create_directories(sd + "/" + c);
    std::vector<int> have(10, 0);
    std::vector<std::uint8_t> px(784);
    int k = 0;
    for (std::int64_t i = 0; i < ds->size() && k < per_class * 10; ++i) {
      const int label = ds->read(i, px.data());
      if (have[std::size_t(label)] >= per_class) continue;
      ++have[std::size_t(label)];
      const std::uint32_t r = mix(seed, std::uint32_t(i) * 2 + (split == data::Split::test));
      std::string ext;
      const std::vector<std::uint8_t> bytes = encode(px, r, k, &ext);
      const std::string path =
          sd + "/" + fashion_class_folders()[std::size_t(label)] + "/" + std::to_string(i) + ext;
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
      ++k;
    }
  }
}

inline void make_fashion_folder(const std::string& out, const FolderSpec& spec) {
  write_fashion_tree(
      out, spec.train_per_class, spec.val_per_class, spec.seed,
      [&](const std::vector<std::uint8_t>& px, std::uint32_t r, int k, std::string* ext) {
        const int span = spec.max_size - spec.min_size + 1;
        const int w = spec.min_size + int(r % std::uint32_t(span));
        const int h = spec.min_size + int((r >> 12) % std::uint32_t(span));
        data::RgbImage small{28, 28, std::vector<std::uint8_t>(784 * 3)};
        const int tint = int(r >> 24) % 64;
        for (std::size_t p = 0; p < 784; ++p) {
          small.pixels[3 * p] = px[p];
          small.pixels[3 * p + 1] = std::uint8_t(px[p] * (255 - tint) / 255);
          small.pixels[3 * p + 2] = std::uint8_t(tint + px[p] * (255 - tint) / 255);
        }
        std::vector<std::uint8_t> chw(std::size_t(w) * std::size_t(h) * 3), rgb(chw.size());
        data::resample_crop(small, data::CropBox{0, 0, 28, 28}, w, h, false, chw.data());
        const std::size_t n = std::size_t(w) * std::size_t(h);
        for (std::size_t p = 0; p < n; ++p)
          for (std::size_t c = 0; c < 3; ++c) rgb[3 * p + c] = chw[c * n + p];
        return encode_kind(k % 10, rgb, w, h, ext);
      });
}

}  // namespace distnet::testkit
