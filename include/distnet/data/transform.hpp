// The CPU image transform: bilinear resize to a square, scale to [0, 1], optional per-channel
// normalisation, CHW float out. A separate step, so the CUDA backend can take raw uint8 images
// instead and do the same on the GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "distnet/backend.hpp"
#include "distnet/tensor.hpp"

namespace distnet::data {

struct TransformSpec {
  int resize = 0;           // output height and width; 0 keeps the input size
  std::vector<float> mean;  // per channel, applied after scaling to [0, 1]; empty: none
  std::vector<float> std;   // per channel; empty: none (with mean: both or neither)
};

class ImageTransform {
 public:
  // Throws UsageError for a negative size or mean/std whose length does not match the channels.
  ImageTransform(const Shape& in, const TransformSpec& spec);
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }
  void apply(const std::uint8_t* in, float* out) const;
  // The same transform as a backend op's parameters (UsageError for more than 4 channels).
  ResizeNormalize as_op() const;

 private:
  // Bilinear taps along one axis, with half-pixel centres (align_corners = false, as OpenCV,
  // PIL and PyTorch's interpolate use when enlarging).
  struct Taps {
    std::vector<std::int32_t> i0, i1;
    std::vector<float> w1;  // weight of i1; i0 gets 1 - w1
  };
  static Taps taps(std::int64_t in, std::int64_t out);

  Shape in_, out_;
  Taps rows_, cols_;
  std::vector<float> scale_, shift_;  // per channel: out = pixel * scale + shift
};

}  // namespace distnet::data
