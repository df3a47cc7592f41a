// Packed shards on a tree of real Fashion-MNIST pictures (image_folder_maker.hpp): the plan, the
// shards equal to the image folder sample for sample, resume checks, and every bad shard.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "data/data_files.hpp"
#include "data/error_text.hpp"
#include "data/image_folder_maker.hpp"
#include "distnet/data/packer.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;
using distnet::testkit::error_of;
using distnet::testkit::expect_one_line;
using distnet::testkit::TempDir;
namespace tk = distnet::testkit;
namespace fs = std::filesystem;

namespace {

std::int64_t size_of(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? std::int64_t(st.st_size) : 0;
}

std::vector<std::int64_t> sizes(const ImageFolderList& l, Split s) {
  std::vector<std::int64_t> v;
  for (const auto& f : (s == Split::train ? l.train : l.val).files)
    v.push_back(size_of(l.root + "/" + ImageFolderList::split_dir(s) + "/" + f));
  return v;
}

// A tree (4 train, 2 val per class) and its shards in `out`, packed as alexnet-pack does on one
// rank, with small shards (about 20 KiB) so that each split has several.
struct Packed {
  TempDir src, out;
  ImageFolderList list;
  std::vector<ShardPlan> plans;
  explicit Packed(bool skip = false, const std::function<void(const std::string&)>& spoil = {}) {
    tk::FolderSpec spec;
    spec.train_per_class = 4, spec.val_per_class = 2, spec.max_size = 300;
    tk::make_fashion_folder(src.path(), spec);
    if (spoil) spoil(src.path());
    list = scan_image_folder(src.path());
    for (Split s : {Split::train, Split::test}) {
      const auto p = plan_shards(s, sizes(list, s), 20 << 10, 0);
      plans.insert(plans.end(), p.begin(), p.end());
    }
    for (const auto& p : plans) pack_shard(out.path(), p, list, skip);
    write_file_atomic(out.path() + "/" + kManifestName,
                      collect_manifest(out.path(), list, plans).serialize());
  }
  std::string manifest() const { return out.path() + "/" + kManifestName; }
};

std::unique_ptr<Dataset> open(const std::string& dir, const std::string& name, Split split,
                              bool skip = false) {
  DatasetOptions o;
  o.name = name, o.dir = dir, o.image_size = 32, o.skip_bad_images = skip, o.seed = 5;
  return open_dataset(o, split);
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const std::string& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// A valid one-record index; tests spoil one field at a time.
ShardIndex small_index() {
  ShardIndex x;
  x.offsets = {0, 10}, x.lengths = {10, 5}, x.labels = {0, 1}, x.widths = {4, 4};
  x.heights = {4, 4}, x.paths = {"a/x.jpg", "b/y.jpg"}, x.classes = {"a", "b"}, x.bytes = 15;
  return x;
}

}  // namespace

TEST(Packed, PlanCutsByBytesAndRecordsIndependentlyOfRanks) {
  const auto p = plan_shards(Split::train, {5, 5, 5, 20, 1, 1}, 10, 0);
  ASSERT_EQ(p.size(), 4u);  // [5 5] [5] [20: alone, above the limit] [1 1]
  EXPECT_EQ(p[0].file, "train-00000.h5");
  EXPECT_EQ(p[0].files, 2);
  EXPECT_EQ(p[2].first_file, 3);
  EXPECT_EQ(p[2].files, 1);
  EXPECT_EQ(p[3].files, 2);
  const auto q = plan_shards(Split::test, {1, 1, 1, 1, 1}, 100, 2);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[2].file, "val-00002.h5");
  EXPECT_EQ(q[2].files, 1);
}

TEST(Packed, SamplesEqualTheImageFolderForEveryEpochAndSplit) {
  Packed pk;
  const PackedManifest m = PackedManifest::parse(slurp(pk.manifest()), pk.manifest());
  EXPECT_GT(m.train.shards.size(), 2u);
  EXPECT_EQ(m.train.records, 40);
  EXPECT_EQ(m.val.records, 20);
  for (Split s : {Split::train, Split::test}) {
    const auto a = open(pk.src.path(), "imagefolder", s), b = open(pk.out.path(), "packed", s);
    ASSERT_EQ(a->size(), b->size());
    EXPECT_EQ(a->classes(), b->classes());
    EXPECT_EQ(a->image_shape(), b->image_shape());
    std::vector<std::uint8_t> x(3 * 32 * 32), y(x.size());
    for (std::int64_t e = 0; e < 2; ++e)
      for (std::int64_t i = 0; i < a->size(); ++i) {
        EXPECT_EQ(a->read_epoch(i, e, x.data()), b->read_epoch(i, e, y.data()));
        EXPECT_EQ(x, y) << "sample " << i << " epoch " << e;
      }
  }
  // A limit opens only the shards it needs and takes the same first records.
  DatasetOptions o;
  o.name = "packed", o.dir = pk.out.path(), o.image_size = 32, o.limit = 7;
  EXPECT_EQ(open_dataset(o, Split::train)->size(), 7);
}

TEST(Packed, FinishedShardsAreRecognisedAndChangedOnesRedone) {
  Packed pk;
  const ShardPlan& p = pk.plans[1];
  EXPECT_TRUE(shard_is_complete(pk.out.path(), p, pk.list, sizes(pk.list, Split::train)));
  std::vector<std::int64_t> changed = sizes(pk.list, Split::train);
  changed[std::size_t(p.first_file)] += 1;  // a source file that grew since
  EXPECT_FALSE(shard_is_complete(pk.out.path(), p, pk.list, changed));
  ShardPlan other = p;
  other.files += 1;  // another plan (other --shard-mb)
  EXPECT_FALSE(shard_is_complete(pk.out.path(), other, pk.list, sizes(pk.list, Split::train)));
  const std::string f = pk.out.path() + "/" + p.file;
  fs::resize_file(f, fs::file_size(f) / 2);  // a truncated shard
  EXPECT_FALSE(shard_is_complete(pk.out.path(), p, pk.list, sizes(pk.list, Split::train)));
  EXPECT_FALSE(shard_is_complete(pk.out.path(), pk.plans[0], pk.list, {}));  // guards sizes
}

TEST(Packed, IndexThatDisagreesWithItsDataIsRefusedInOneLine) {
  EXPECT_EQ(error_of([] { validate_shard_index(small_index(), "s.h5"); }), "(no error)");
  ShardIndex x = small_index();
  x.lengths[1] = 6;
  expect_one_line(error_of([&] { validate_shard_index(x, "s.h5"); }),
                  {"s.h5: record 1 (b/y.jpg) has offset 10 and length 6, beyond the 15 bytes"});
  x = small_index();
  x.offsets[1] = 5;
  expect_one_line(error_of([&] { validate_shard_index(x, "s.h5"); }),
                  {"s.h5: record 1 (b/y.jpg) starts at offset 5", "offsets must increase"});
  x = small_index();
  x.labels[0] = 2;
  expect_one_line(error_of([&] { validate_shard_index(x, "s.h5"); }),
                  {"s.h5: record 0 (a/x.jpg) has label 2, but /classes has 2 classes"});
  x = small_index();
  x.labels.pop_back();
  expect_one_line(error_of([&] { validate_shard_index(x, "s.h5"); }),
                  {"s.h5: /labels has 1 entries, /offsets 2"});
  x = small_index();
  x.offsets[0] = -1;
  expect_one_line(error_of([&] { validate_shard_index(x, "s.h5"); }), {"s.h5: record 0"});
}

TEST(Packed, BadShardsAndManifestsAreNamedInOneLine) {
  Packed pk;
  const std::string dir = pk.out.path(), man = pk.manifest(), text = slurp(man);
  const std::string shard = dir + "/train-00001.h5";
  // A shard written with an index beyond its data, in place of a good one.
  const ShardFile good = read_shard(shard);
  ShardIndex x = good.index;
  x.lengths.back() += 1000;
  std::vector<std::uint8_t> data(std::size_t(x.bytes), 0);
  write_shard(shard, x, data, "train", "src");
  expect_one_line(error_of([&] { open(dir, "packed", Split::train); }),
                  {shard + ": record", "beyond the", "the index disagrees with the data"});
  fs::remove(shard);  // a missing shard
  expect_one_line(error_of([&] { open(dir, "packed", Split::train); }),
                  {shard + ": missing shard file"});
  spit(shard, "not an HDF5 file at all");  // corrupt
  expect_one_line(error_of([&] { open(dir, "packed", Split::train); }),
                  {shard + ": not an HDF5 file"});
  // A truncated one: the first shard cut in half.
  const std::string first = dir + "/train-00000.h5";
  fs::resize_file(first, fs::file_size(first) / 2);
  expect_one_line(error_of([&] { open(dir, "packed", Split::train); }), {first + ": "});
  // A manifest that gives val other classes.
  Packed pk2;
  const std::string man2 = pk2.manifest(), t2 = slurp(man2);
  std::string bad = t2;
  const auto val = bad.find("split val");
  bad.replace(bad.find("c9-ankle-boot", val), 13, "c9-boots");
  spit(man2, bad);
  expect_one_line(error_of([&] { open(pk2.out.path(), "packed", Split::train); }),
                  {man2 + ": train and val name different classes (10 and 10): 'c9-ankle-boot' is "
                          "only in train"});
  // A shard whose record count differs from the manifest's: one record fewer, as another
  // packing of the tree might have written it.
  spit(man2, t2);
  const std::string first2 = pk2.out.path() + "/train-00000.h5";
  ShardIndex y = read_shard(first2).index;
  const std::size_t n = y.offsets.size() - 1;
  for (auto* v : {&y.offsets, &y.lengths}) v->resize(n);
  for (auto* v : {&y.labels, &y.widths, &y.heights}) v->resize(n);
  y.paths.resize(n);
  y.bytes = y.offsets.back() + y.lengths.back();
  write_shard(first2, y, std::vector<std::uint8_t>(std::size_t(y.bytes)), "train", "src");
  expect_one_line(error_of([&] { open(pk2.out.path(), "packed", Split::train); }),
                  {first2 + ": holds " + std::to_string(n) + " records, " + man2 + " says " +
                   std::to_string(n + 1)});
  fs::remove(man2);
  expect_one_line(error_of([&] { open(pk2.out.path(), "packed", Split::train); }),
                  {man2 + ": missing"});
}

TEST(Packed, CorruptImageBytesInAShardBehaveAsInTheImageFolder) {
  // A JPEG with an intact header and half its data: packing checks headers only, so it is packed,
  // and fails when decoded -- as the file does in the image folder.
  std::string victim;
  Packed pk(false, [&](const std::string& src) {
    const std::string dir = src + "/train/c4-coat";
    victim = src + "/train/c0-tshirt/10.jpg";  // a baseline RGB JPEG (the maker's kind 0)
    const std::string whole = slurp(victim);
    ASSERT_GT(whole.size(), 1000u);
    spit(dir + "/0-truncated.jpg", whole.substr(0, whole.size() / 2));
  });
  const std::string msg = error_of([&] {
    const auto ds = open(pk.out.path(), "packed", Split::train);
    std::vector<std::uint8_t> px(3 * 32 * 32);
    for (std::int64_t i = 0; i < ds->size(); ++i) ds->read_epoch(i, 0, px.data());
  });
  expect_one_line(
      msg, {pk.src.path() + "/train/c4-coat/0-truncated.jpg (in " + pk.out.path() + "/train-",
            "corrupt or truncated JPEG data"});
  for (Split s : {Split::train}) {  // skipping replaces it exactly as the image folder does
    const auto a = open(pk.src.path(), "imagefolder", s, true);
    const auto b = open(pk.out.path(), "packed", s, true);
    std::vector<std::uint8_t> x(3 * 32 * 32), y(x.size());
    for (std::int64_t i = 0; i < a->size(); ++i) {
      EXPECT_EQ(a->read_epoch(i, 3, x.data()), b->read_epoch(i, 3, y.data()));
      EXPECT_EQ(x, y);
    }
    EXPECT_EQ(a->take_bad_samples(3).count, 1);
    const auto bad = b->take_bad_samples(3);
    ASSERT_EQ(bad.count, 1);
    EXPECT_NE(bad.first[0].find("0-truncated.jpg"), std::string::npos);
  }
}

TEST(Packed, BadFilesAtPackTimeAreRefusedOrLeftOutAndListed) {
  auto no_image = [](const std::string& src) {
    spit(src + "/train/c2-pullover/0-notes.jpg", "these are notes, not a JPEG");
  };
  const std::string msg = error_of([&] { Packed pk(false, no_image); });
  expect_one_line(msg, {"/train/c2-pullover/0-notes.jpg: "});
  Packed pk(true, no_image);
  const PackedManifest m = PackedManifest::parse(slurp(pk.manifest()), pk.manifest());
  EXPECT_EQ(m.train.files, 41);
  EXPECT_EQ(m.train.records, 40);
  ASSERT_EQ(m.train.skipped.size(), 1u);
  EXPECT_NE(m.train.skipped[0].find("c2-pullover/0-notes.jpg: "), std::string::npos);
  EXPECT_EQ(open(pk.out.path(), "packed", Split::train)->size(), 40);
  // A rerun recognises the shard with the skipped file as finished.
  for (const auto& p : pk.plans)
    EXPECT_TRUE(shard_is_complete(pk.out.path(), p, pk.list, sizes(pk.list, p.split))) << p.file;
}
