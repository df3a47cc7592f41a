// Packing an image folder into shards (alexnet-pack; docs/packed-shards.md). The plan depends
// only on the listing, the files' sizes and the shard limits -- never on the number of packing
// ranks -- so a rerun with any rank count finds the shards an earlier run finished.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "distnet/data/image_folder.hpp"
#include "distnet/data/packed.hpp"

namespace distnet::data {

struct ShardPlan {
  Split split = Split::train;
  std::string file;                        // "train-00003.h5", relative to OUT
  std::int64_t first_file = 0, files = 0;  // a range of the split's listing
};

// Cuts a split's files (their sizes in bytes, in listing order) into consecutive shards: a shard
// ends before the file that would take it above `shard_bytes` (a file larger than that gets a
// shard of its own) or above `shard_records` files (0: no record limit).
std::vector<ShardPlan> plan_shards(Split split, const std::vector<std::int64_t>& sizes,
                                   std::int64_t shard_bytes, std::int64_t shard_records);

// Whether OUT/<plan.file> is a finished shard of this plan: it opens and validates, is of the
// current version, covers the planned file range, each record is the planned file with the size
// the file has now, and every record's bytes and label match its checksum (the whole shard is
// read). `problem` says why a shard file that exists is not finished (one line naming it); it is
// empty when the shard is complete or there is no file to judge.
struct ShardCheck {
  bool complete = false;
  std::string problem;
};
ShardCheck check_shard(const std::string& out_dir, const ShardPlan& plan,
                       const ImageFolderList& list, const std::vector<std::int64_t>& sizes);
inline bool shard_is_complete(const std::string& out_dir, const ShardPlan& plan,
                              const ImageFolderList& list, const std::vector<std::int64_t>& sizes) {
  return check_shard(out_dir, plan, list, sizes).complete;
}

// Reads the plan's files, checks each header (read_image_size: format, size, pixel limit), and
// writes the shard under a temporary name, fsynced, then renamed to OUT/<plan.file>. A bad file
// throws (its path and problem), or with `skip_bad` is left out and listed in the shard's
// /skipped. Returns the number of records written.
std::int64_t pack_shard(const std::string& out_dir, const ShardPlan& plan,
                        const ImageFolderList& list, bool skip_bad);

// The manifest of finished shards, read back from OUT (every shard opened and validated).
PackedManifest collect_manifest(const std::string& out_dir, const ImageFolderList& list,
                                const std::vector<ShardPlan>& plans);

// Writes `text` to `path` atomically (a temporary file, fsynced, renamed).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace distnet::data
