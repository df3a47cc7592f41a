// Packed shards (docs/packed-shards.md): an image folder's encoded files, unchanged, concatenated
// into HDF5 shard files OUT/{train,val}-NNNNN.h5, listed by a text manifest OUT/manifest.txt.
// alexnet-pack writes them (distnet/data/packer.hpp); `--dataset packed --data-dir OUT` reads
// them and produces exactly what `--dataset imagefolder` produces for the source tree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/data/encoded_source.hpp"

namespace distnet::data {

constexpr const char* kShardFormat = "distnet-packed-shard";
constexpr std::int64_t kShardVersion = 1;
constexpr const char* kManifestName = "manifest.txt";

// One shard as the manifest lists it.
struct PackedShardEntry {
  std::string file;  // relative to OUT: "train-00003.h5"
  std::int64_t records = 0, bytes = 0;
  std::int64_t first_file = 0, files = 0;  // the range of the source listing it covers
  std::string checksum;                    // FNV-1a 64 of its /bytes, 16 hex digits
};

struct PackedSplit {
  std::vector<std::string> classes;
  std::int64_t files = 0, records = 0, bytes = 0;  // files = records + skipped
  std::vector<PackedShardEntry> shards;
  std::vector<std::string> skipped;  // "<class>/<file>: problem", left out by --on-bad-image skip
};

struct PackedManifest {
  std::string source;  // the image folder that was packed
  PackedSplit train, val;

  const PackedSplit& split(Split s) const { return s == Split::train ? train : val; }
  std::string serialize() const;
  // Throws one line naming `file` for text serialize() did not write, totals that do not add up,
  // or train and val with different classes.
  static PackedManifest parse(const std::string& text, const std::string& file);
  // OUT/manifest.txt, read and parsed.
  static std::string read_text(const std::string& dir);
};

// A shard's index, in memory. Record i's bytes are bytes[offsets[i], offsets[i] + lengths[i]).
struct ShardIndex {
  std::vector<std::int64_t> offsets, lengths;
  std::vector<std::int32_t> labels, widths, heights;
  std::vector<std::string> paths;  // relative to the split's directory: "<class>/<file>"
  std::vector<std::string> classes;
  std::vector<std::string> skipped;
  std::int64_t bytes = 0;  // the length of /bytes
  std::int64_t first_file = 0, files = 0;
};

// Checks that the index agrees with its data: equal lengths of the per-record arrays, offsets
// that start at or after 0 and never go back, every record inside /bytes, labels below the class
// count. Throws one line naming `file` and the first problem.
void validate_shard_index(const ShardIndex& index, const std::string& file);

// A shard file opened for reading: its validated index, and where /bytes starts in the file
// (contiguous storage, so a record is one pread at data_offset + offsets[i]).
struct ShardFile {
  ShardIndex index;
  std::int64_t data_offset = 0;
  std::string checksum;
};
// Throws one line naming `path` for a missing, truncated or damaged file, a file that is not a
// shard (format, version), a chunked or compressed /bytes, or an index that disagrees with it.
ShardFile read_shard(const std::string& path);

// Writes `index` and `data` as a shard at `path` (HDF5, /bytes contiguous). Not atomic: the
// packer writes under a temporary name and renames.
void write_shard(const std::string& path, const ShardIndex& index,
                 const std::vector<std::uint8_t>& data, const std::string& split,
                 const std::string& source);

// FNV-1a, 64 bits, as 16 hex digits.
std::string fnv1a64_hex(const std::uint8_t* data, std::size_t size);

// The split of packed shards in `dir` that the manifest lists, as a source of encoded records
// (the first `limit` records only, when limit > 0: later shards are not opened). Every shard it
// opens is validated against the manifest (record count, classes).
std::shared_ptr<const EncodedSource> open_packed_source(const PackedManifest& manifest,
                                                        const std::string& dir, Split split,
                                                        std::int64_t limit = 0);

}  // namespace distnet::data
