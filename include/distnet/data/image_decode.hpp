// Decoding encoded images (JPEG, PNG) into 8-bit RGB, for --dataset imagefolder.
//
// The format is sniffed from the bytes, never from the file name (ImageNet has a PNG named
// .JPEG). JPEG goes through libjpeg-turbo's TurboJPEG API, PNG through libpng. Grayscale, CMYK,
// palette, 16-bit and alpha images all come out as RGB (alpha is dropped, as PIL's
// convert("RGB") does; 16-bit samples v become round(v * 255 / 65535)).
// Every failure throws distnet::Error, one line naming the file and the problem. Headers claiming
// more than kMaxImagePixels pixels are refused before anything is allocated (decompression bombs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace distnet::data {

// PIL's Image.MAX_IMAGE_PIXELS x 2, the size above which PIL raises DecompressionBombError:
// 178,956,970 pixels (e.g. 13,377 x 13,377), 537 MB as RGB. The largest ImageNet-1k image has
// about 20 M pixels.
constexpr std::int64_t kMaxImagePixels = 178956970;

enum class ImageFormat { unknown, jpeg, png };

// From the first bytes: JPEG starts FF D8 FF, PNG with its 8-byte signature.
ImageFormat sniff_image_format(const std::uint8_t* data, std::size_t size);

struct ImageSize {
  int width = 0, height = 0;
};

// An interleaved 8-bit RGB image, row-major (height x width x 3).
struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;
};

// Width and height from the header only; throws for no image, a damaged header, or a size above
// kMaxImagePixels. `name` names the bytes in messages (the file's path).
ImageSize read_image_size(const std::uint8_t* data, std::size_t size, const std::string& name);

// Decodes the whole image to RGB. `min_scale` in (0, 1]: a JPEG may be decoded scaled down in the
// DCT domain by the smallest of TurboJPEG's factors (1/8, 2/8, ..., 8/8) that is still
// >= min_scale, so a large photo headed for a small crop costs a fraction of a full decode; the
// caller sees the size it got (ceil(side * factor)). PNG ignores it and always decodes full size.
RgbImage decode_image(const std::uint8_t* data, std::size_t size, const std::string& name,
                      double min_scale = 1.0);

// The part of an image a crop needs. `img` holds the columns x0 .. x0 + img.width - 1 and rows
// y0 .. y0 + img.height - 1 of the image as decoded at its scale (scaled_width x scaled_height).
struct DecodedRegion {
  RgbImage img;
  int x0 = 0, y0 = 0;
  int scaled_width = 0, scaled_height = 0;
};

// decode_image's pixels for the box (x, y, width, height) of the full-size image, widened by
// `margin` pixels of the decoded image on every side (and to whole iMCU columns): a JPEG is
// decoded at the same DCT scale, but only down to the region's last row and, for IDCT, upsampling
// and colour conversion, only in its columns. A PNG is decoded whole (x0 = y0 = 0).
DecodedRegion decode_image_region(const std::uint8_t* data, std::size_t size,
                                  const std::string& name, double min_scale, double x, double y,
                                  double width, double height, int margin);

// ---- the two decoders (decode_image dispatches to them) ----------------------------------------
ImageSize jpeg_size(const std::uint8_t* data, std::size_t size, const std::string& name);
RgbImage decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                     double min_scale);
DecodedRegion decode_jpeg_region(const std::uint8_t* data, std::size_t size,
                                 const std::string& name, double min_scale, double x, double y,
                                 double width, double height, int margin);
// The DCT scaling factor decode_jpeg uses for `min_scale` (num / denom <= 1).
struct ScaleFactor {
  int num = 1, denom = 1;
};
ScaleFactor jpeg_scale_factor(double min_scale);
// Adobe CMYK (inverted inks) to RGB, `pixels` pixels: R = C' * K' / 255, likewise G, B.
std::vector<std::uint8_t> cmyk_to_rgb(const std::vector<std::uint8_t>& cmyk, std::size_t pixels);
ImageSize png_size(const std::uint8_t* data, std::size_t size, const std::string& name);
RgbImage decode_png(const std::uint8_t* data, std::size_t size, const std::string& name);

// Throws the pixel-limit error for `name` when width x height exceeds kMaxImagePixels, or when a
// side is not positive.
void check_image_size(ImageSize s, const std::string& name, const char* format);

}  // namespace distnet::data
