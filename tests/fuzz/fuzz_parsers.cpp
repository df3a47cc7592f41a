// libFuzzer target for the IDX and CIFAR parsers (build with clang and -DDISTNET_FUZZ=ON):
//   build-fuzz/tests/fuzz_parsers -max_total_time=60
// The first input byte picks the parser; the rest is split into the files it reads. Every input
// must parse or be refused with distnet::Error.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t cut = 1 + (size > 2 ? (std::size_t(data[1]) * (size - 2)) / 255 : 0);
  std::vector<std::uint8_t> a(data + 2, data + std::max<std::size_t>(cut, 2));
  std::vector<std::uint8_t> b(data + std::max<std::size_t>(cut, 2), data + size);
  try {
    std::unique_ptr<Dataset> ds;
    if (mode & 1) {
      ds = make_idx_dataset("fuzz", FileBytes::from_memory(a, "images"),
                            FileBytes::from_memory(b, "labels"), 10);
    } else {
      std::vector<FileBytes> files;
      files.push_back(FileBytes::from_memory(a, "a.bin"));
      files.push_back(FileBytes::from_memory(b, "b.bin"));
      ds = make_cifar_dataset("fuzz", std::move(files), 10);
    }
    std::vector<std::uint8_t> px(static_cast<std::size_t>(ds->image_shape().numel()));
    for (std::int64_t i = 0; i < ds->size(); ++i) {
      const int label = ds->read(i, px.data());
      if (label < 0 || label >= ds->classes()) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}
