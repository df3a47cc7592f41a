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
// Version 2 added /crc32 (a checksum per record over its bytes and label) and percent-escaped
// names; version 1 shards (neither) are still read, without record checks.
constexpr std::int64_t kShardVersion = 2;
constexpr std::int64_t kShardOldestVersion = 1;
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
  // Per record: CRC-32 (zlib's) of its bytes followed by its label as 4 bytes, little-endian
  // int32 (record_crc32). Empty for version-1 shards, whose records are not checked.
  std::vector<std::uint32_t> crc32;
  std::vector<std::string> paths;  // relative to the split's directory: "<class>/<file>"
  std::vector<std::string> classes;
  std::vector<std::string> skipped;
  std::int64_t bytes = 0;  // the length of /bytes
  std::int64_t first_file = 0, files = 0;
};

// Checks that the index agrees with its data: equal lengths of the per-record arrays, offsets
// that start at or after 0 and never go back, every record inside /bytes, labels below the class
// count, and /crc32 (when present) with an entry per record. Throws one line naming `file` and
// the first problem.
void validate_shard_index(const ShardIndex& index, const std::string& file);

// The checksum /crc32 stores for a record: zlib's CRC-32 of `size` bytes at `data`, continued
// over `label` as 4 little-endian bytes. In Python:
// zlib.crc32(struct.pack("<i", label), zlib.crc32(data)).
std::uint32_t record_crc32(const std::uint8_t* data, std::size_t size, std::int32_t label);

// Record i of `index`, read as `data` (lengths[i] bytes), checked against its /crc32 entry: ""
// when they agree (or the shard has no checksums), else what differs, one line, e.g.
// "bytes or label changed since packing: CRC-32 0a1b2c3d, expected 4e5f6071".
std::string record_problem(const ShardIndex& index, std::size_t i, const std::uint8_t* data);

// Names in version-2 shards (/paths, /classes, /skipped): the file system's bytes, with '%',
// control characters and every byte that is not part of valid UTF-8 written as %XX (two
// upper-case hex digits), so that each name is valid UTF-8 and h5py reads all of them as str;
// urllib.parse.unquote_to_bytes gives the original bytes back. unescape_name undoes escape_name
// and throws (naming `what`) for a '%' not followed by two hex digits.
std::string escape_name(const std::string& raw);
std::string unescape_name(const std::string& escaped, const std::string& what);

// A shard file opened for reading: its validated index, and where /bytes starts in the file
// (contiguous storage, so a record is one pread at data_offset + offsets[i]).
struct ShardFile {
  ShardIndex index;
  std::int64_t data_offset = 0;
  std::string checksum;  // the checksum_fnv1a64 attribute: FNV-1a 64 of /bytes
  std::int64_t version = kShardVersion;
};
// Throws one line naming `path` for a missing, truncated or damaged file, a file that is not a
// shard (format, version), a chunked or compressed /bytes, or an index that disagrees with it.
ShardFile read_shard(const std::string& path);

// Reads every record of the shard `s` read from `path` and checks it against /crc32 (the whole
// of /bytes: a shard's worth of reading). Returns "" when all agree, else one line naming `path`,
// the first bad record and what was expected; a version-1 shard (no checksums) is reported as
// such.
std::string verify_shard_records(const std::string& path, const ShardFile& s);

// Writes `index` and `data` as a shard at `path` (HDF5, /bytes contiguous), with /crc32 computed
// from `data` and the labels (index.crc32 is ignored). Not atomic: the packer writes under a
// temporary name and renames.
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
