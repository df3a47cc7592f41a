// resample_crop: PIL's antialiased BILINEAR resize of a box of an RGB image, as two separable
// passes over the box only.
//   1. vertical: each output row is a weighted sum of whole source rows, restricted to the
//      columns the horizontal taps read; a contiguous uint8 -> float loop the compiler
//      vectorises;
//   2. horizontal: each output pixel sums its column taps over the three channels at once (four
//      lanes, the fourth a padding float), and is rounded to uint8 into the planar output.
// Weights are computed once per call in double and stored as float; scratch buffers are kept per
// thread, so a steady stream of images allocates nothing. The result is the separable filter
// docs/image-folders.md describes; against PIL it is within the tolerance
// tests/data/test_resample_pil.py checks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "distnet/data/augment.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

// Source taps of one output axis: output o reads source pixels start[o] .. start[o] + count - 1
// with weights w[o * max_count + k] (summing to 1).
struct AxisTaps {
  std::vector<int> start, count;
  std::vector<float> w;
  int max_count = 0;
};

void axis_taps(int in, double b0, double len, int out, AxisTaps& t, std::vector<double>& ws) {
  const double scale = len / out;
  const double support = std::max(scale, 1.0);
  t.max_count = int(std::ceil(support)) * 2 + 1;
  t.start.resize(std::size_t(out));
  t.count.resize(std::size_t(out));
  t.w.assign(std::size_t(out) * std::size_t(t.max_count), 0.0f);
  ws.resize(std::size_t(t.max_count));
  for (int o = 0; o < out; ++o) {
    const double centre = b0 + (o + 0.5) * scale;
    int lo = std::max(0, int(std::floor(centre - support)));
    int hi = std::min(in, int(std::ceil(centre + support)));
    hi = std::min(hi, lo + t.max_count);
    double sum = 0;
    int n = 0;
    for (int p = lo; p < hi; ++p, ++n) {
      ws[std::size_t(n)] = std::max(0.0, 1.0 - std::fabs((p + 0.5 - centre) / support));
      sum += ws[std::size_t(n)];
    }
    if (sum <= 0) {  // cannot happen for a box inside the image; nearest pixel to be safe
      lo = std::clamp(int(centre), 0, in - 1);
      ws[0] = 1.0, n = 1, sum = 1;
    }
    t.start[std::size_t(o)] = lo;
    t.count[std::size_t(o)] = n;
    for (int k = 0; k < n; ++k)
      t.w[std::size_t(o) * std::size_t(t.max_count) + std::size_t(k)] =
          float(ws[std::size_t(k)] / sum);
  }
}

struct Scratch {
  AxisTaps xs, ys;
  std::vector<double> ws;
  std::vector<float> rows;  // out_height x (columns x 3 + 1): the vertical pass
};

}  // namespace

void resample_crop(const RgbImage& img, const CropBox& box, int size, bool flip,
                   std::uint8_t* chw) {
  resample_crop(img, box, size, size, flip, chw);
}

void resample_crop(const RgbImage& img, const CropBox& box, int out_width, int out_height,
                   bool flip, std::uint8_t* chw) {
  DISTNET_CHECK(out_width >= 1 && out_height >= 1 && img.width >= 1 && img.height >= 1 &&
                    img.pixels.size() == std::size_t(img.width) * std::size_t(img.height) * 3,
                "resample_crop: empty or inconsistent image");
  thread_local Scratch sc;
  axis_taps(img.width, box.x, box.width, out_width, sc.xs, sc.ws);
  axis_taps(img.height, box.y, box.height, out_height, sc.ys, sc.ws);
  const AxisTaps& xs = sc.xs;
  const AxisTaps& ys = sc.ys;
  // The source columns the horizontal taps read (starts grow with o).
  int col0 = xs.start.front(), col1 = 0;
  for (std::size_t o = 0; o < xs.start.size(); ++o)
    col1 = std::max(col1, xs.start[o] + xs.count[o]);
  const std::size_t span = std::size_t(col1 - col0) * 3, stride = span + 1;
  const std::size_t n = std::size_t(out_width), m = std::size_t(out_height);
  sc.rows.resize(m * stride);

  // 1. Vertical: rows[o] = sum_k wy[k] * source row (ys.start[o] + k), columns col0 .. col1 - 1.
  const std::size_t src_stride = std::size_t(img.width) * 3;
  const std::uint8_t* src0 = img.pixels.data() + std::size_t(col0) * 3;
  for (std::size_t o = 0; o < m; ++o) {
    float* __restrict d = sc.rows.data() + o * stride;
    const float* w = ys.w.data() + o * std::size_t(ys.max_count);
    const std::uint8_t* __restrict s = src0 + std::size_t(ys.start[o]) * src_stride;
    const float w0 = w[0];
    for (std::size_t j = 0; j < span; ++j) d[j] = w0 * float(s[j]);
    for (int k = 1; k < ys.count[o]; ++k) {
      const float wk = w[k];
      const std::uint8_t* __restrict sk = s + std::size_t(k) * src_stride;
      for (std::size_t j = 0; j < span; ++j) d[j] += wk * float(sk[j]);
    }
    d[span] = 0.0f;  // the fourth lane of the last pixel
  }

  // 2. Horizontal: out[c][y][x] = sum_k wx[k] * rows[y][(xs.start[x] + k) * 3 + c], the three
  // channels (and a fourth, ignored lane) as one 4-float vector (GCC/Clang vector extensions:
  // SSE on x86-64, NEON on ARM).
  using v4f = float __attribute__((vector_size(16)));
  using v4i = std::int32_t __attribute__((vector_size(16)));
  const std::size_t plane = n * m;
  for (std::size_t y = 0; y < m; ++y) {
    const float* row = sc.rows.data() + y * stride;
    std::uint8_t* out = chw + y * n;
    for (std::size_t o = 0; o < n; ++o) {
      const float* w = xs.w.data() + o * std::size_t(xs.max_count);
      const float* p = row + std::size_t(xs.start[o] - col0) * 3;
      v4f acc = {0, 0, 0, 0};
      for (int k = 0; k < xs.count[o]; ++k, p += 3) {
        v4f px;
        std::memcpy(&px, p, sizeof px);
        acc += w[k] * px;
      }
      // Round half up to uint8, clamped to 0..255.
      acc = acc < 0.0f ? v4f{0, 0, 0, 0} : acc;
      acc = acc > 255.0f ? v4f{255, 255, 255, 255} : acc;
      const v4i q = __builtin_convertvector(acc + 0.5f, v4i);
      const std::size_t x = flip ? n - 1 - o : o;
      out[x] = std::uint8_t(q[0]);
      out[plane + x] = std::uint8_t(q[1]);
      out[2 * plane + x] = std::uint8_t(q[2]);
    }
  }
}

}  // namespace distnet::data
