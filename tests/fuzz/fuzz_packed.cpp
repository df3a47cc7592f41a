// libFuzzer target for packed shards' metadata (build with clang and -DDISTNET_FUZZ=ON):
//   build-fuzz/tests/fuzz_packed -max_total_time=60 CORPUS_COPY  (seeded from
//   tests/fuzz/corpus_packed)
// The first byte picks the parser: the manifest text (OUT/manifest.txt), or a shard index built
// from the input (record count, offsets, lengths, labels, /bytes length), which
// validate_shard_index must refuse with distnet::Error or accept only when every record lies
// inside /bytes, offsets never go back and every label names a class; or (first byte & 3 == 2) a
// name, which escape_name must turn into valid UTF-8 without control characters, and which
// unescape_name must give back unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "distnet/data/packed.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;

namespace {

std::int64_t take(const std::uint8_t*& p, const std::uint8_t* end) {
  std::int64_t v = 0;
  const std::size_t n = std::min<std::size_t>(sizeof v, std::size_t(end - p));
  std::memcpy(&v, p, n);
  p += n;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  try {
    if (data[0] & 1) {
      const PackedManifest m = PackedManifest::parse(
          std::string(reinterpret_cast<const char*>(data + 1), size - 1), "f");
      if (m.train.classes != m.val.classes || m.train.classes.empty()) __builtin_trap();
      return 0;
    }
    if ((data[0] & 3) == 2) {
      const std::string raw(reinterpret_cast<const char*>(data + 1), size - 1);
      const std::string e = escape_name(raw);
      if (unescape_name(e, "f") != raw) __builtin_trap();
      // e is valid UTF-8 without control characters: escaping it again only escapes its '%'s.
      std::string again;
      for (char c : e) again += c == '%' ? std::string("%25") : std::string(1, c);
      if (escape_name(e) != again) __builtin_trap();
      return 0;
    }
    const std::uint8_t* p = data + 2;
    const std::uint8_t* end = data + size;
    ShardIndex x;
    const std::size_t n = data[1] % 8;
    x.classes = {"a", "b", "c"};
    x.bytes = take(p, end);
    for (std::size_t i = 0; i < n; ++i) {
      x.offsets.push_back(take(p, end));
      x.lengths.push_back(take(p, end));
      x.labels.push_back(std::int32_t(take(p, end)));
      x.widths.push_back(1), x.heights.push_back(1), x.paths.push_back("p");
    }
    validate_shard_index(x, "f");
    std::int64_t last = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (x.offsets[i] < last || x.lengths[i] < 0 || x.offsets[i] + x.lengths[i] > x.bytes ||
          x.labels[i] < 0 || x.labels[i] > 2)
        __builtin_trap();
      last = x.offsets[i] + x.lengths[i];
    }
  } catch (const Error&) {
  }
  return 0;
}
