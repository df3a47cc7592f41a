// JPEG through libjpeg-turbo's TurboJPEG API (2.1 on Debian 12: tjDecompressHeader3,
// tjGetScalingFactors, tjDecompress2). That API cannot decode a cropped region (tj3's cropping
// arrived in 3.0), so a crop is taken after a DCT-scaled decode (see docs/image-folders.md).
#include <turbojpeg.h>

#include <algorithm>
#include <cstdio>

#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

// One decompressor per thread, destroyed with the thread.
class TjDecompressor {
 public:
  TjDecompressor() : handle_(tjInitDecompress()) {}
  ~TjDecompressor() {
    if (handle_) tjDestroy(handle_);
  }
  TjDecompressor(const TjDecompressor&) = delete;
  TjDecompressor& operator=(const TjDecompressor&) = delete;
  tjhandle get(const std::string& name) {
    if (!handle_) handle_ = tjInitDecompress();
    DISTNET_CHECK(handle_ != nullptr,
                  name + ": cannot create a TurboJPEG decompressor: " + tjGetErrorStr2(nullptr));
    return handle_;
  }
  // After a failure TurboJPEG 2.1 can leave the handle mid-stream (a later header read then
  // fails with "Bogus DQT index"): the next image gets a fresh one.
  void reset() {
    if (handle_) tjDestroy(handle_);
    handle_ = nullptr;
  }

 private:
  tjhandle handle_;
};

TjDecompressor& this_thread_decompressor() {
  thread_local TjDecompressor d;
  return d;
}

tjhandle decompressor(const std::string& name) {
  return this_thread_decompressor().get(name);
}

// Builds the message from the handle, then replaces the handle, then throws.
[[noreturn]] void fail(tjhandle h, const std::string& what) {
  const std::string msg = what + tjGetErrorStr2(h);
  this_thread_decompressor().reset();
  throw Error(msg);
}

struct Header {
  ImageSize size;
  int colorspace = TJCS_RGB;
};

Header read_header(tjhandle h, const std::uint8_t* data, std::size_t size,
                   const std::string& name) {
  Header hd;
  int subsamp = 0;
  if (tjDecompressHeader3(h, data, static_cast<unsigned long>(size), &hd.size.width,
                          &hd.size.height, &subsamp, &hd.colorspace) != 0) {
    fail(h, name + ": corrupt JPEG header: ");
  }
  check_image_size(hd.size, name, "JPEG");
  return hd;
}

}  // namespace

// The smallest scaling factor >= min_scale, never above 1 (TurboJPEG also offers enlargements).
ScaleFactor jpeg_scale_factor(double min_scale) {
  min_scale = std::clamp(min_scale, 0.0, 1.0);
  int n = 0;
  const tjscalingfactor* f = tjGetScalingFactors(&n);
  ScaleFactor best{1, 1};
  for (int i = 0; i < n; ++i) {
    const double v = double(f[i].num) / f[i].denom;
    if (v <= 1.0 && v >= min_scale && v < double(best.num) / best.denom)
      best = {f[i].num, f[i].denom};
  }
  return best;
}

std::vector<std::uint8_t> cmyk_to_rgb(const std::vector<std::uint8_t>& cmyk, std::size_t pixels) {
  std::vector<std::uint8_t> rgb(pixels * 3);
  for (std::size_t p = 0; p < pixels; ++p) {
    const unsigned k = cmyk[4 * p + 3];
    for (std::size_t c = 0; c < 3; ++c)
      rgb[3 * p + c] = static_cast<std::uint8_t>((cmyk[4 * p + c] * k + 127) / 255);
  }
  return rgb;
}

ImageSize jpeg_size(const std::uint8_t* data, std::size_t size, const std::string& name) {
  return read_header(decompressor(name), data, size, name).size;
}

RgbImage decode_jpeg(const std::uint8_t* data, std::size_t size, const std::string& name,
                     double min_scale) {
  tjhandle h = decompressor(name);
  const Header hd = read_header(h, data, size, name);
  const ScaleFactor s = jpeg_scale_factor(min_scale);
  const tjscalingfactor sf{s.num, s.denom};
  RgbImage img;
  img.width = TJSCALED(hd.size.width, sf);
  img.height = TJSCALED(hd.size.height, sf);
  // CMYK and YCCK cannot be converted to RGB by libjpeg; they are decoded as CMYK and converted
  // here. Such files (Photoshop's, ImageNet's 22) store inverted inks (Adobe APP14), so a stored
  // value v means ink 255 - v and R = C' * K' / 255 with C' = stored cyan, K' = stored black.
  const bool cmyk = hd.colorspace == TJCS_CMYK || hd.colorspace == TJCS_YCCK;
  const int channels = cmyk ? 4 : 3;
  std::vector<std::uint8_t> buf(std::size_t(img.width) * std::size_t(img.height) *
                                std::size_t(channels));
  // Warnings (a truncated stream, corrupt entropy data) are errors: a damaged image never trains
  // silently as grey rows; --on-bad-image skip is the way to go past them.
  if (tjDecompress2(h, data, static_cast<unsigned long>(size), buf.data(), img.width, 0, img.height,
                    cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
    fail(h, name + ": corrupt or truncated JPEG data: ");
  }
  if (!cmyk) {
    img.pixels = std::move(buf);
    return img;
  }
  img.pixels = cmyk_to_rgb(buf, std::size_t(img.width) * std::size_t(img.height));
  return img;
}

}  // namespace distnet::data
