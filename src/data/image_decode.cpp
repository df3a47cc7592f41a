// Format sniffing, the pixel limit, and dispatch to the JPEG and PNG decoders.
#include "distnet/data/image_decode.hpp"

#include <cstring>

#include "distnet/error.hpp"

namespace distnet::data {

ImageFormat sniff_image_format(const std::uint8_t* data, std::size_t size) {
  static const std::uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::jpeg;
  if (size >= 8 && std::memcmp(data, png_sig, 8) == 0) return ImageFormat::png;
  return ImageFormat::unknown;
}

void check_image_size(ImageSize s, const std::string& name, const char* format) {
  if (s.width <= 0 || s.height <= 0) {
    throw Error(name + ": " + format + " header gives an empty image (" + std::to_string(s.width) +
                " x " + std::to_string(s.height) + ")");
  }
  const std::int64_t pixels = std::int64_t(s.width) * s.height;
  if (pixels > kMaxImagePixels) {
    throw Error(name + ": " + format + " header claims " + std::to_string(s.width) + " x " +
                std::to_string(s.height) + " = " + std::to_string(pixels) +
                " pixels, above the limit of " + std::to_string(kMaxImagePixels) +
                " (a decompression bomb?); refused");
  }
}

namespace {
[[noreturn]] void not_an_image(const std::uint8_t* data, std::size_t size,
                               const std::string& name) {
  if (size == 0) throw Error(name + ": empty file, not an image");
  char head[16];
  std::string hex;
  for (std::size_t i = 0; i < size && i < 4; ++i) {
    std::snprintf(head, sizeof head, "%s%02X", i ? " " : "", data[i]);
    hex += head;
  }
  throw Error(name + ": not a JPEG or PNG image (starts with bytes " + hex + ")");
}
}  // namespace

ImageSize read_image_size(const std::uint8_t* data, std::size_t size, const std::string& name) {
  switch (sniff_image_format(data, size)) {
    case ImageFormat::jpeg:
      return jpeg_size(data, size, name);
    case ImageFormat::png:
      return png_size(data, size, name);
    case ImageFormat::unknown:
      break;
  }
  not_an_image(data, size, name);
}

RgbImage decode_image(const std::uint8_t* data, std::size_t size, const std::string& name,
                      double min_scale) {
  switch (sniff_image_format(data, size)) {
    case ImageFormat::jpeg:
      return decode_jpeg(data, size, name, min_scale);
    case ImageFormat::png:
      return decode_png(data, size, name);
    case ImageFormat::unknown:
      break;
  }
  not_an_image(data, size, name);
}

DecodedRegion decode_image_region(const std::uint8_t* data, std::size_t size,
                                  const std::string& name, double min_scale, double x, double y,
                                  double width, double height, int margin) {
  if (sniff_image_format(data, size) == ImageFormat::jpeg)
    return decode_jpeg_region(data, size, name, min_scale, x, y, width, height, margin);
  DecodedRegion r;
  r.img = decode_image(data, size, name, min_scale);
  r.scaled_width = r.img.width, r.scaled_height = r.img.height;
  return r;
}

}  // namespace distnet::data
