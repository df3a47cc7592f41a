// PNG through libpng's simplified API (png_image), which handles palette, grayscale, gray+alpha,
// tRNS and 16-bit files and needs no setjmp. 16-bit files without gAMA/sRGB are read as sRGB-coded
// (PNG_IMAGE_FLAG_16BIT_sRGB), so 16 -> 8 bits is a plain rescale, not a gamma conversion.
#include <png.h>

#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

// png_image with png_image_free in the destructor (a no-op after a finished read).
class PngImage {
 public:
  PngImage() {
    img_ = png_image{};
    img_.version = PNG_IMAGE_VERSION;
  }
  ~PngImage() { png_image_free(&img_); }
  PngImage(const PngImage&) = delete;
  PngImage& operator=(const PngImage&) = delete;
  png_image* get() { return &img_; }

 private:
  png_image img_;
};

std::string message(const png_image& img) {
  return img.message[0] ? std::string(img.message) : std::string("unknown libpng error");
}

void begin(PngImage& p, const std::uint8_t* data, std::size_t size, const std::string& name) {
  if (!png_image_begin_read_from_memory(p.get(), data, size))
    throw Error(name + ": corrupt PNG header: " + message(*p.get()));
  check_image_size(ImageSize{static_cast<int>(std::min<png_uint_32>(p.get()->width, 0x7FFFFFFF)),
                             static_cast<int>(std::min<png_uint_32>(p.get()->height, 0x7FFFFFFF))},
                   name, "PNG");
}

}  // namespace

ImageSize png_size(const std::uint8_t* data, std::size_t size, const std::string& name) {
  PngImage p;
  begin(p, data, size, name);
  return ImageSize{int(p.get()->width), int(p.get()->height)};
}

RgbImage decode_png(const std::uint8_t* data, std::size_t size, const std::string& name) {
  PngImage p;
  begin(p, data, size, name);
  png_image& img = *p.get();
  const bool alpha = (img.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  // With alpha, read RGBA and drop A afterwards (PIL's convert("RGB") drops it too); without,
  // RGB directly.
  img.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  const std::size_t channels = alpha ? 4 : 3;
  RgbImage out;
  out.width = int(img.width);
  out.height = int(img.height);
  std::vector<std::uint8_t> buf(std::size_t(out.width) * std::size_t(out.height) * channels);
  if (!png_image_finish_read(&img, nullptr, buf.data(), 0, nullptr) || PNG_IMAGE_FAILED(img)) {
    throw Error(name + ": corrupt or truncated PNG data: " + message(img));
  }
  if (!alpha) {
    out.pixels = std::move(buf);
    return out;
  }
  const std::size_t n = std::size_t(out.width) * std::size_t(out.height);
  out.pixels.resize(n * 3);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < 3; ++c) out.pixels[3 * i + c] = buf[4 * i + c];
  return out;
}

}  // namespace distnet::data
