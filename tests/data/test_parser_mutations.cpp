// A bounded random-mutation fuzz test of the IDX and CIFAR parsers: starting from valid files,
// flip, insert and delete bytes; every result must parse or be refused with distnet::Error --
// never crash, hang or read out of bounds (run under AddressSanitizer with DISTNET_SANITIZE).
// The libFuzzer target in tests/fuzz/ explores the same parsers coverage-guided.
#include <gtest/gtest.h>

#include "data/data_files.hpp"
#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"
#include "distnet/philox.hpp"

using namespace distnet;
using namespace distnet::data;
namespace tk = distnet::testkit;

namespace {
std::vector<std::uint8_t> mutate(std::vector<std::uint8_t> b, std::uint32_t iter) {
  const Philox4 r = philox_block(77, RngPurpose::synthetic, 0, 0, iter, 0);
  const std::size_t at = b.empty() ? 0 : r.v[1] % b.size();
  switch (r.v[0] % 5) {
    case 0:  // flip a byte
      if (!b.empty()) b[at] ^= std::uint8_t(1u << (r.v[2] % 8));
      break;
    case 1:  // set a byte (header fields often)
      if (!b.empty()) b[r.v[2] % std::min<std::size_t>(b.size(), 16)] = std::uint8_t(r.v[3]);
      break;
    case 2:  // cut the tail
      b.resize(at);
      break;
    case 3:  // insert bytes
      b.insert(b.begin() + std::ptrdiff_t(at), r.v[2] % 8, std::uint8_t(r.v[3]));
      break;
    default:  // erase bytes
      b.erase(b.begin() + std::ptrdiff_t(at),
              b.begin() + std::ptrdiff_t(std::min<std::size_t>(b.size(), at + r.v[2] % 8)));
  }
  return b;
}

template <typename Parse>
void fuzz(const char* what, Parse parse, std::uint32_t iters) {
  int accepted = 0, refused = 0;
  for (std::uint32_t i = 0; i < iters; ++i) {
    try {
      const auto ds = parse(i);
      std::vector<std::uint8_t> px(std::size_t(ds->image_shape().numel()));
      for (std::int64_t k = 0; k < ds->size(); ++k) {
        const auto label = ds->read(k, px.data());
        ASSERT_GE(label, 0);
        ASSERT_LT(label, ds->classes());
      }
      ++accepted;
    } catch (const Error&) {
      ++refused;
    }
  }
  std::printf("%s: %d mutants accepted, %d refused with an error\n", what, accepted, refused);
  EXPECT_GT(refused, 0);
}
}  // namespace

TEST(ParserMutations, IdxNeverCrashes) {
  const auto images = tk::idx_images(6, 4, 3), labels = tk::idx_labels(6);
  fuzz(
      "idx",
      [&](std::uint32_t i) {
        auto img = images, lab = labels;
        for (std::uint32_t k = 0; k <= i % 3; ++k)
          (i % 2 ? img : lab) = mutate(i % 2 ? img : lab, i * 4 + k);
        return make_idx_dataset("fuzz", FileBytes::from_memory(img, "images"),
                                FileBytes::from_memory(lab, "labels"), 10);
      },
      4000);
}

TEST(ParserMutations, CifarNeverCrashes) {
  const auto rec = tk::cifar_records(3);
  fuzz(
      "cifar",
      [&](std::uint32_t i) {
        std::vector<FileBytes> files;
        files.push_back(FileBytes::from_memory(mutate(rec, i), "a.bin"));
        files.push_back(FileBytes::from_memory(rec, "b.bin"));
        return make_cifar_dataset("fuzz", std::move(files), 10);
      },
      2000);
}
