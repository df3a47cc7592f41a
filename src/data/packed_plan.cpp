// alexnet-pack's work: the shard plan, packing one shard, checking a finished one, the manifest.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "distnet/data/image_decode.hpp"
#include "distnet/data/packer.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

const ImageFolderSplit& split_of(const ImageFolderList& list, Split s) {
  return s == Split::train ? list.train : list.val;
}

std::string split_dir(const ImageFolderList& list, Split s) {
  return list.root + "/" + ImageFolderList::split_dir(s);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed: " + std::strerror(err));
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  fsync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot rename " + tmp + " into place: " + std::strerror(errno));
}

}  // namespace

std::vector<ShardPlan> plan_shards(Split split, const std::vector<std::int64_t>& sizes,
                                   std::int64_t shard_bytes, std::int64_t shard_records) {
  std::vector<ShardPlan> plans;
  std::int64_t bytes = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const bool full =
        !plans.empty() && ((bytes + sizes[i] > shard_bytes && bytes > 0) ||
                           (shard_records > 0 && plans.back().files >= shard_records));
    if (plans.empty() || full) {
      char name[64];
      std::snprintf(name, sizeof name, "%s-%05zu.h5", ImageFolderList::split_dir(split),
                    plans.size());
      plans.push_back({split, name, std::int64_t(i), 0});
      bytes = 0;
    }
    plans.back().files += 1;
    bytes += sizes[i];
  }
  return plans;
}

ShardCheck check_shard(const std::string& out_dir, const ShardPlan& plan,
                       const ImageFolderList& list, const std::vector<std::int64_t>& sizes) {
  const std::string path = out_dir + "/" + plan.file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};  // not packed yet: nothing to say
  ShardFile s;
  try {
    s = read_shard(path);
  } catch (const Error& e) {
    return {false, e.what()};  // unfinished or damaged: packed again
  }
  const ShardIndex& x = s.index;
  const auto other = [&](const std::string& what) {
    return ShardCheck{false, path + ": " + what + " (a packing of another plan or tree)"};
  };
  if (x.first_file != plan.first_file || x.files != plan.files)
    return other("covers source files " + std::to_string(x.first_file) + " to " +
                 std::to_string(x.first_file + x.files) + ", expected " +
                 std::to_string(plan.first_file) + " to " +
                 std::to_string(plan.first_file + plan.files));
  if (std::int64_t(x.paths.size() + x.skipped.size()) != plan.files)
    return other("holds " + std::to_string(x.paths.size() + x.skipped.size()) +
                 " files, expected " + std::to_string(plan.files));
  if (x.classes != list.classes) return other("other classes than the source's");
  const ImageFolderSplit& sp = split_of(list, plan.split);
  if (sizes.size() != sp.files.size() || plan.first_file + plan.files > std::int64_t(sizes.size()))
    return other("a plan beyond the listing");
  std::size_t j = 0;  // the shard's records are the planned files minus the skipped ones
  for (std::int64_t f = plan.first_file; f < plan.first_file + plan.files && j < x.paths.size();
       ++f) {
    if (sp.files[std::size_t(f)] != x.paths[j]) continue;
    const std::string rec = path + ": record " + std::to_string(j) + " (" + x.paths[j] + ")";
    if (x.lengths[j] != sizes[std::size_t(f)])
      return {false, rec + " has " + std::to_string(x.lengths[j]) + " bytes, expected " +
                         std::to_string(sizes[std::size_t(f)]) +
                         " (the source file's size now: it changed)"};
    if (x.labels[j] != sp.labels[std::size_t(f)])
      return {false, rec + " has label " + std::to_string(x.labels[j]) + ", expected " +
                         std::to_string(sp.labels[std::size_t(f)]) + " (its class in the source)"};
    ++j;
  }
  if (j != x.paths.size()) return other("records that are not the planned files");
  std::string damaged = verify_shard_records(path, s);  // reads the whole shard
  if (!damaged.empty()) return {false, damaged};
  return {true, ""};
}

std::int64_t pack_shard(const std::string& out_dir, const ShardPlan& plan,
                        const ImageFolderList& list, bool skip_bad) {
  const ImageFolderSplit& sp = split_of(list, plan.split);
  const std::string dir = split_dir(list, plan.split);
  ShardIndex x;
  x.classes = list.classes;
  x.first_file = plan.first_file, x.files = plan.files;
  std::vector<std::uint8_t> data;
  for (std::int64_t f = plan.first_file; f < plan.first_file + plan.files; ++f) {
    const std::string& rel = sp.files[std::size_t(f)];
    const std::string path = dir + "/" + rel;
    try {
      const std::vector<std::uint8_t> b = read_image_file(path);
      const ImageSize size = read_image_size(b.data(), b.size(), path);
      x.offsets.push_back(std::int64_t(data.size()));
      x.lengths.push_back(std::int64_t(b.size()));
      x.labels.push_back(sp.labels[std::size_t(f)]);
      x.widths.push_back(size.width);
      x.heights.push_back(size.height);
      x.paths.push_back(rel);
      data.insert(data.end(), b.begin(), b.end());
    } catch (const Error& e) {
      if (!skip_bad) throw;
      x.skipped.push_back(e.what());
    }
  }
  x.bytes = std::int64_t(data.size());
  const std::string path = out_dir + "/" + plan.file, tmp = path + ".tmp";
  write_shard(tmp, x, data, ImageFolderList::split_dir(plan.split), dir);
  rename_into_place(tmp, path);
  return std::int64_t(x.offsets.size());
}

PackedManifest collect_manifest(const std::string& out_dir, const ImageFolderList& list,
                                const std::vector<ShardPlan>& plans) {
  PackedManifest m;
  m.source = list.root;
  m.train.classes = m.val.classes = list.classes;
  for (const ShardPlan& p : plans) {
    PackedSplit& s = p.split == Split::train ? m.train : m.val;
    const ShardFile f = read_shard(out_dir + "/" + p.file);
    PackedShardEntry e;
    e.file = p.file;
    e.records = std::int64_t(f.index.offsets.size());
    e.bytes = f.index.bytes;
    e.first_file = f.index.first_file, e.files = f.index.files;
    e.checksum = f.checksum;
    s.shards.push_back(e);
    s.files += e.files, s.records += e.records, s.bytes += e.bytes;
    s.skipped.insert(s.skipped.end(), f.index.skipped.begin(), f.index.skipped.end());
  }
  return m;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (!out) throw Error(tmp + ": cannot write: " + std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), out) == text.size();
  if (std::fclose(out) != 0 || !ok) throw Error(tmp + ": cannot write: " + std::strerror(errno));
  rename_into_place(tmp, path);
}

}  // namespace distnet::data
