// decode_jpeg_region: only the part of a JPEG a crop needs, through libjpeg-turbo's libjpeg API
// (TurboJPEG 2.1 cannot crop): jpeg_skip_scanlines jumps over the rows above the region (their
// entropy data is read, their IDCT, upsampling and colour conversion are not), jpeg_crop_scanline
// restricts those three to the region's iMCU columns, and the rows below the region are skipped
// the same way (read to the end, so damage anywhere in the file is still an error). The pixels are
// the ones a whole decode gives (tests/data/test_image_decode.cpp checks it bit for bit), at the
// same DCT scaling factor decode_jpeg picks; the region is widened by `margin` pixels so that the
// edge of the cropped upsampling never reaches a pixel the caller uses.
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>  // needs size_t and FILE declared first

#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

struct ErrorHandler {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorHandler*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (a truncated stream, corrupt entropy data) are errors, as TJFLAG_STOPONWARNING makes
// them in decode_jpeg; trace messages (level > 0) are ignored.
void on_message(j_common_ptr c, int level) {
  if (level < 0) on_error(c);
}

// Owns the decompressor; every libjpeg call that can fail runs between setjmp and here, and no
// object with a destructor is created in between (longjmp skips no destructor).
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorHandler err{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    jpeg_create_decompress(&cinfo);
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

// The pixels of rows [y0, y1), columns [x0, x0 + width) after jpeg_crop_scanline, at scale
// num/denom; returns false on a libjpeg error (message in d.err.message).
bool decode_rows(Decompressor& d, const std::uint8_t* data, std::size_t size, int num, int denom,
                 const double need[4], int margin, DecodedRegion& r, std::vector<std::uint8_t>& buf,
                 std::vector<std::uint8_t>& spare, int& channels) {
  if (setjmp(d.err.jump)) return false;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  const bool cmyk = d.cinfo.jpeg_color_space == JCS_CMYK || d.cinfo.jpeg_color_space == JCS_YCCK;
  d.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  channels = cmyk ? 4 : 3;
  d.cinfo.scale_num = unsigned(num);
  d.cinfo.scale_denom = unsigned(denom);
  d.cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&d.cinfo);
  const int w = int(d.cinfo.output_width), h = int(d.cinfo.output_height);
  const double sx = double(w) / d.cinfo.image_width, sy = double(h) / d.cinfo.image_height;
  const int x0 = std::clamp(int(std::floor(need[0] * sx)) - margin, 0, w - 1);
  const int x1 = std::clamp(int(std::ceil((need[0] + need[2]) * sx)) + margin, x0 + 1, w);
  const int y0 = std::clamp(int(std::floor(need[1] * sy)) - margin, 0, h - 1);
  const int y1 = std::clamp(int(std::ceil((need[1] + need[3]) * sy)) + margin, y0 + 1, h);
  JDIMENSION xoff = JDIMENSION(x0), cw = JDIMENSION(x1 - x0);
  if (x0 > 0 || x1 < w) jpeg_crop_scanline(&d.cinfo, &xoff, &cw);  // widens to iMCU columns
  if (y0 > 0) jpeg_skip_scanlines(&d.cinfo, JDIMENSION(y0));
  r.scaled_width = w, r.scaled_height = h;
  r.x0 = int(xoff), r.y0 = y0;
  r.img.width = int(d.cinfo.output_width);  // the cropped width
  r.img.height = y1 - y0;
  const std::size_t row_bytes = std::size_t(r.img.width) * std::size_t(channels);
  buf.resize(row_bytes * std::size_t(r.img.height));
  while (int(d.cinfo.output_scanline) < y1) {
    JSAMPROW row = buf.data() + std::size_t(int(d.cinfo.output_scanline) - y0) * row_bytes;
    jpeg_read_scanlines(&d.cinfo, &row, 1);
  }
  // The rows below the region are entropy-decoded only, and the stream is read to its end, so a
  // truncated or corrupt file is refused whatever the crop (as a whole decode refuses it).
  // (Skipping the whole remainder would mark the end as reached without reading it, so the last
  // row is decoded, into `spare`.)
  const JDIMENSION last = d.cinfo.output_height - 1;
  if (d.cinfo.output_scanline < last) jpeg_skip_scanlines(&d.cinfo, last - d.cinfo.output_scanline);
  if (d.cinfo.output_scanline == last) {
    spare.resize(row_bytes);
    JSAMPROW row = spare.data();
    jpeg_read_scanlines(&d.cinfo, &row, 1);
  }
  jpeg_finish_decompress(&d.cinfo);
  return true;
}

}  // namespace

DecodedRegion decode_jpeg_region(const std::uint8_t* data, std::size_t size,
                                 const std::string& name, double min_scale, double x, double y,
                                 double width, double height, int margin) {
  const ImageSize full = jpeg_size(data, size, name);  // also the pixel limit, before allocating
  const ScaleFactor sf = jpeg_scale_factor(min_scale);
  DecodedRegion r;
  std::vector<std::uint8_t> buf, spare;
  int channels = 3;
  const double need[4] = {x, y, width, height};
  {
    Decompressor d;
    if (!decode_rows(d, data, size, sf.num, sf.denom, need, margin, r, buf, spare, channels))
      throw Error(name + ": corrupt or truncated JPEG data: " + d.err.message);
  }
  DISTNET_CHECK(r.scaled_width == (full.width * sf.num + sf.denom - 1) / sf.denom &&
                    r.scaled_height == (full.height * sf.num + sf.denom - 1) / sf.denom,
                name + ": libjpeg and TurboJPEG disagree on the scaled size");
  if (channels == 3) {
    r.img.pixels = std::move(buf);
  } else {
    r.img.pixels = cmyk_to_rgb(buf, std::size_t(r.img.width) * std::size_t(r.img.height));
  }
  return r;
}

}  // namespace distnet::data
