// A split of packed shards as an encoded-record source. Each shard's index is read and validated
// once, when the source is opened (HDF5, on the opening thread); a record's bytes are then one
// pread at the contiguous /bytes dataset's file offset -- no HDF5 call, so the loader's threads
// read in parallel without a lock, whatever HDF5 build is linked.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "distnet/data/packed.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

// An open file descriptor, closed by its destructor.
class Fd {
 public:
  explicit Fd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct OpenShard {
  std::string path;
  ShardFile file;
  std::unique_ptr<Fd> fd;
  std::int64_t first = 0;  // global index of its first record
};

class PackedSource final : public EncodedSource {
 public:
  PackedSource(const PackedManifest& m, const std::string& dir, Split split, std::int64_t limit)
      : dir_(dir), split_(ImageFolderList::split_dir(split)), source_(m.source) {
    const PackedSplit& s = m.split(split);
    const std::string manifest = dir + "/" + kManifestName;
    classes_ = int(s.classes.size());
    std::int64_t first = 0;
    for (const PackedShardEntry& e : s.shards) {
      if (limit > 0 && first >= limit) break;  // beyond --train-limit/--test-limit: never opened
      OpenShard sh;
      sh.path = dir + "/" + e.file;
      sh.file = read_shard(sh.path);
      const ShardIndex& x = sh.file.index;
      if (std::int64_t(x.offsets.size()) != e.records)
        throw Error(sh.path + ": holds " + std::to_string(x.offsets.size()) + " records, " +
                    manifest + " says " + std::to_string(e.records) +
                    " (a shard from another packing?)");
      if (x.bytes != e.bytes || x.first_file != e.first_file || x.files != e.files ||
          sh.file.checksum != e.checksum)
        throw Error(sh.path + ": its /bytes, checksum or file range disagrees with " + manifest +
                    " (a shard from another packing?)");
      if (x.classes != s.classes)
        throw Error(sh.path + ": its /classes differ from the " + std::string(split_) +
                    " classes of " + manifest);
      sh.fd = std::make_unique<Fd>(sh.path);
      sh.first = first;
      first += e.records;
      shards_.push_back(std::move(sh));
      starts_.push_back(shards_.back().first);
    }
    size_ = first;
    if (size_ == 0)
      throw Error(manifest + ": the " + std::string(split_) + " split has no records");
  }

  std::string description() const override { return "packed " + dir_ + " (" + split_ + ")"; }
  std::int64_t size() const override { return size_; }
  int classes() const override { return classes_; }
  std::int32_t label(std::int64_t i) const override {
    const auto [sh, j] = locate(i);
    return sh.file.index.labels[j];
  }
  std::string name(std::int64_t i) const override {
    const auto [sh, j] = locate(i);
    return source_ + "/" + split_ + "/" + sh.file.index.paths[j] + " (in " + sh.path + ", record " +
           std::to_string(j) + ")";
  }
  std::vector<std::uint8_t> bytes(std::int64_t i) const override {
    const auto [sh, j] = locate(i);
    const ShardIndex& x = sh.file.index;
    std::vector<std::uint8_t> out(std::size_t(x.lengths[j]));
    const off_t at = off_t(sh.file.data_offset + x.offsets[j]);
    std::size_t got = 0;
    while (got < out.size()) {
      const ssize_t r = ::pread(sh.fd->get(), out.data() + got, out.size() - got, at + off_t(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw Error(name(i) + ": read failed: " + std::strerror(errno));
      if (r == 0) throw Error(name(i) + ": the shard file ends early (truncated?)");
      got += std::size_t(r);
    }
    // The record as packed: its bytes and label against /crc32 (version-2 shards). A mismatch is
    // a bad image, refused or replaced by --on-bad-image as an undecodable one is.
    const std::string problem = record_problem(x, j, out.data());
    if (!problem.empty()) throw Error(name(i) + ": " + problem);
    return out;
  }

 private:
  std::pair<const OpenShard&, std::size_t> locate(std::int64_t i) const {
    const auto it = std::upper_bound(starts_.begin(), starts_.end(), i) - 1;
    const OpenShard& sh = shards_[std::size_t(it - starts_.begin())];
    return {sh, std::size_t(i - sh.first)};
  }

  std::string dir_;
  std::string split_;
  std::string source_;
  int classes_ = 0;
  std::int64_t size_ = 0;
  std::vector<OpenShard> shards_;
  std::vector<std::int64_t> starts_;
};

}  // namespace

std::shared_ptr<const EncodedSource> open_packed_source(const PackedManifest& manifest,
                                                        const std::string& dir, Split split,
                                                        std::int64_t limit) {
  return std::make_shared<PackedSource>(manifest, dir, split, limit);
}

}  // namespace distnet::data
