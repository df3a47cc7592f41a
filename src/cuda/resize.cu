// Resize + scale + normalise of raw uint8 images on the GPU, one thread per output pixel, with
// the arithmetic of distnet/resize.hpp. This file is compiled with -fmad=false so that no
// multiply-add is contracted: the floats come out as the CPU's ImageTransform makes them.
#include "distnet/cuda_check.hpp"
#include "distnet/resize.hpp"
#include "kernels.hpp"

namespace distnet::cuda {
namespace {

__global__ void resize_normalize_kernel(int n, ResizeNormalize s,
                                        const std::uint8_t* __restrict__ images,
                                        float* __restrict__ out) {
  const std::int64_t plane = static_cast<std::int64_t>(s.h_out) * s.w_out;
  const std::int64_t total = static_cast<std::int64_t>(n) * s.channels * plane;
  const std::int64_t in_per = static_cast<std::int64_t>(s.channels) * s.h_in * s.w_in;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += stride) {
    const std::int64_t img_ch = t / plane, pix = t % plane;
    const int ch = static_cast<int>(img_ch % s.channels);
    const std::int64_t img = img_ch / s.channels;
    out[t] = resize_normalize_pixel(s, images + img * in_per, ch, static_cast<int>(pix / s.w_out),
                                    static_cast<int>(pix % s.w_out));
  }
}

}  // namespace

void launch_resize_normalize(int n, const ResizeNormalize& spec, const std::uint8_t* images,
                             float* out, cudaStream_t stream) {
  const std::int64_t total = static_cast<std::int64_t>(n) * spec.channels * spec.h_out * spec.w_out;
  if (total == 0) return;
  constexpr int kBlock = 256;
  resize_normalize_kernel<<<grid_for(total, kBlock), kBlock, 0, stream>>>(n, spec, images, out);
  DISTNET_CUDA_CHECK(cudaGetLastError());
}

}  // namespace distnet::cuda
