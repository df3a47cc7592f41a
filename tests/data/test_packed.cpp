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
#include "distnet/h5.hpp"

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

// Record i's bytes as stored in the shard file (read directly, not through the reader).
std::string stored_record(const std::string& shard, const ShardFile& s, std::size_t i) {
  return slurp(shard).substr(std::size_t(s.data_offset + s.index.offsets[i]),
                             std::size_t(s.index.lengths[i]));
}

// The first JPEG record of a shard (the maker writes JPEGs and PNGs).
std::size_t first_jpeg(const std::string& shard, const ShardFile& s) {
  for (std::size_t i = 0; i < s.index.offsets.size(); ++i)
    if (stored_record(shard, s, i).compare(0, 3, "\xff\xd8\xff") == 0) return i;
  ADD_FAILURE() << shard << " holds no JPEG";
  return 0;
}

// Damage as a disk or a hand would: one byte of the file flipped in place.
void flip_byte(const std::string& file, std::int64_t at) {
  std::string text = slurp(file);
  ASSERT_LT(std::size_t(at), text.size());
  text[std::size_t(at)] = char(text[std::size_t(at)] ^ 0x10);
  spit(file, text);
}

// Writes /labels[i] = label in place, through HDF5 (as h5py's f["labels"][i] = label does).
void edit_label(const std::string& file, std::size_t i, std::int32_t label) {
  h5::Id f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  ASSERT_GE(f.get(), 0);
  h5::Id set(H5Dopen2(f.get(), "labels", H5P_DEFAULT), H5Dclose);
  h5::Id space(H5Dget_space(set.get()), H5Sclose);
  const hsize_t start = i, count = 1;
  ASSERT_GE(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr), 0);
  h5::Id mem(H5Screate_simple(1, &count, nullptr), H5Sclose);
  ASSERT_GE(H5Dwrite(set.get(), H5T_NATIVE_INT32, mem.get(), space.get(), H5P_DEFAULT, &label), 0);
  f.close_checked();
}

// Record j of `shard` is damaged: reading the split stops at it with one line naming its source
// path, the shard and the record, and what was expected; skipping replaces it (counted and
// named); a rerun of alexnet-pack would pack the shard again, saying why.
void expect_damaged_record(const Packed& pk, const std::string& shard, std::size_t j,
                           const std::string& path) {
  const std::string msg = error_of([&] {
    const auto ds = open(pk.out.path(), "packed", Split::train);
    std::vector<std::uint8_t> px(3 * 32 * 32);
    for (std::int64_t i = 0; i < ds->size(); ++i) ds->read_epoch(i, 0, px.data());
  });
  expect_one_line(msg, {pk.src.path() + "/train/" + path + " (in " + shard + ", record " +
                            std::to_string(j) + "): bytes or label changed since packing: CRC-32 ",
                        ", expected "});
  const auto ds = open(pk.out.path(), "packed", Split::train, true);
  std::vector<std::uint8_t> px(3 * 32 * 32);
  for (std::int64_t i = 0; i < ds->size(); ++i) ds->read_epoch(i, 1, px.data());
  const auto bad = ds->take_bad_samples(1);
  EXPECT_EQ(bad.count, 1);
  ASSERT_EQ(bad.first.size(), 1u);
  EXPECT_NE(bad.first[0].find(path + " (in " + shard), std::string::npos) << bad.first[0];
  const ShardPlan& plan = *std::find_if(pk.plans.begin(), pk.plans.end(), [&](const auto& p) {
    return pk.out.path() + "/" + p.file == shard;
  });
  const ShardCheck c = check_shard(pk.out.path(), plan, pk.list, sizes(pk.list, Split::train));
  EXPECT_FALSE(c.complete);
  // (an edited label is found by comparing it with the source's class, before the checksum)
  expect_one_line(c.problem,
                  {shard + ": record " + std::to_string(j) + " (" + path + ")", ", expected "});
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

TEST(Packed, AFlippedByteInsideAJpegRecordIsABadImage) {
  Packed pk;
  const std::string shard = pk.out.path() + "/train-00001.h5";
  const ShardFile s = read_shard(shard);
  ASSERT_EQ(s.index.crc32.size(), s.index.offsets.size());
  const std::size_t j = first_jpeg(shard, s);
  flip_byte(shard, s.data_offset + s.index.offsets[j] + s.index.lengths[j] / 2);
  expect_damaged_record(pk, shard, j, s.index.paths[j]);
}

TEST(Packed, AnEditedLabelIsABadImage) {
  Packed pk;
  const std::string shard = pk.out.path() + "/train-00002.h5";
  const ShardFile s = read_shard(shard);
  const std::size_t j = s.index.offsets.size() - 1;
  edit_label(shard, j, (s.index.labels[j] + 1) % 10);  // another class, in range: a valid index
  ASSERT_NE(read_shard(shard).index.labels[j], s.index.labels[j]);
  expect_damaged_record(pk, shard, j, s.index.paths[j]);
}

TEST(Packed, VersionOneShardsAreReadUncheckedAndRepacked) {
  // A version-1 shard (before /crc32 and escaped names), made from a version-2 one.
  Packed pk;
  const std::string shard = pk.out.path() + "/train-00000.h5";
  {
    h5::Id f(H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    ASSERT_GE(f.get(), 0);
    ASSERT_GE(H5Ldelete(f.get(), "crc32", H5P_DEFAULT), 0);
    h5::set_attr(f.get(), "version", std::int64_t(1));
    f.close_checked();
  }
  const ShardFile s = read_shard(shard);
  EXPECT_EQ(s.version, 1);
  EXPECT_TRUE(s.index.crc32.empty());
  const auto a = open(pk.src.path(), "imagefolder", Split::train);
  const auto b = open(pk.out.path(), "packed", Split::train);
  std::vector<std::uint8_t> x(3 * 32 * 32), y(x.size());
  for (std::int64_t i = 0; i < std::int64_t(s.index.offsets.size()); ++i) {
    EXPECT_EQ(a->read_epoch(i, 0, x.data()), b->read_epoch(i, 0, y.data()));
    EXPECT_EQ(x, y);
  }
  const ShardCheck c =
      check_shard(pk.out.path(), pk.plans[0], pk.list, sizes(pk.list, Split::train));
  EXPECT_FALSE(c.complete);
  expect_one_line(c.problem,
                  {shard + ": a version-1 shard, without record checksums; expected version 2"});
}

TEST(Packed, NamesAreEscapedToValidUtf8AndBack) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"c0/x.jpg", "c0/x.jpg"},
      {"caf\xc3\xa9/\xe4\xb8\xad.jpg", "caf\xc3\xa9/\xe4\xb8\xad.jpg"},  // valid UTF-8 kept
      {"caf\xe9 100%.jpg", "caf%E9 100%25.jpg"},                         // Latin-1 byte, '%'
      {"a\nb\x7f", "a%0Ab%7F"},                                          // control characters
      {"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80",
       "%C0%AF%ED%A0%80%F4%90%80%80"},  // overlong, surrogate, > U+10FFFF
      {"\xe4\xb8", "%E4%B8"},           // a sequence cut short
  };
  for (const auto& [raw, escaped] : cases) {
    EXPECT_EQ(escape_name(raw), escaped);
    EXPECT_EQ(unescape_name(escaped, "t"), raw);
  }
  EXPECT_EQ(unescape_name("%e9", "t"), "\xe9");
  expect_one_line(
      error_of([] { unescape_name("100%.jpg", "s.h5: /paths[3]"); }),
      {"s.h5: /paths[3]: '100%.jpg' has a '%' at 3 without two hex digits, expected %XX"});
}

TEST(Packed, AFileNameThatIsNotUtf8IsPackedAndReadBack) {
  const std::string odd = "c1-trouser/caf\xe9 100%.jpg";
  Packed pk(false, [&](const std::string& src) {
    spit(src + "/train/" + odd, slurp(src + "/train/c0-tshirt/10.jpg"));
  });
  bool found = false;
  for (const auto& p : pk.plans)
    for (const auto& path : read_shard(pk.out.path() + "/" + p.file).index.paths)
      found = found || path == odd;
  EXPECT_TRUE(found);
  const auto a = open(pk.src.path(), "imagefolder", Split::train);
  const auto b = open(pk.out.path(), "packed", Split::train);
  ASSERT_EQ(a->size(), 41);
  ASSERT_EQ(a->size(), b->size());
  std::vector<std::uint8_t> x(3 * 32 * 32), y(x.size());
  for (std::int64_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ(a->read_epoch(i, 0, x.data()), b->read_epoch(i, 0, y.data()));
    EXPECT_EQ(x, y);
  }
  for (const auto& p : pk.plans)
    EXPECT_TRUE(shard_is_complete(pk.out.path(), p, pk.list, sizes(pk.list, p.split))) << p.file;
}
