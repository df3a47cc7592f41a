// resample_crop on a raw RGB file, for tests/data/test_resample_pil.py:
//   distnet_resample_tool IN.rgb W H X Y BOX_W BOX_H OUT_W OUT_H OUT.chw
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "distnet/data/augment.hpp"

int main(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: %s IN.rgb W H X Y BOX_W BOX_H OUT_W OUT_H OUT.chw\n", argv[0]);
    return 2;
  }
  distnet::data::RgbImage img;
  img.width = std::atoi(argv[2]);
  img.height = std::atoi(argv[3]);
  std::ifstream in(argv[1], std::ios::binary);
  img.pixels.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const distnet::data::CropBox box{std::atof(argv[4]), std::atof(argv[5]), std::atof(argv[6]),
                                   std::atof(argv[7])};
  const int ow = std::atoi(argv[8]), oh = std::atoi(argv[9]);
  std::vector<std::uint8_t> out(std::size_t(ow) * std::size_t(oh) * 3);
  try {
    distnet::data::resample_crop(img, box, ow, oh, false, out.data());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_resample_tool: error: %s\n", e.what());
    return 1;
  }
  std::ofstream(argv[10], std::ios::binary)
      .write(reinterpret_cast<const char*>(out.data()), std::streamsize(out.size()));
  return 0;
}
