// libFuzzer target for the image decoders (build with clang and -DDISTNET_FUZZ=ON):
//   build-fuzz/tests/fuzz_images -max_total_time=60 CORPUS_COPY  (seeded from
//   tests/fuzz/corpus_images)
// The input is an encoded file; the first byte also picks a DCT scale and an augmentation, so
// scaled decodes and the crop path are driven too. Every input must decode or be refused with
// distnet::Error; a decoded image must have the size it claims.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "distnet/data/augment.hpp"
#include "distnet/data/image_decode.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  try {
    const ImageSize s = read_image_size(data, size, "fuzz");
    if (std::int64_t(s.width) * s.height > 4096 * 4096) return 0;  // keep runs fast
    const RgbImage img = decode_image(data, size, "fuzz", (1 + (mode & 7)) / 8.0);
    if (img.pixels.size() != std::size_t(img.width) * std::size_t(img.height) * 3) __builtin_trap();
    std::vector<std::uint8_t> out(3 * 16 * 16);
    decode_augmented(data, size, "fuzz", AugmentSpec{16, (mode & 8) != 0, mode}, mode >> 4, 7,
                     out.data());
  } catch (const Error&) {
  }
  return 0;
}
