#include <gtest/gtest.h>

#include <array>
#include <fstream>

#include "data/data_files.hpp"
#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;
using distnet::testkit::TempDir;
namespace tk = distnet::testkit;

namespace {
// The message of the distnet::Error that opening `dir` as fashion-mnist train throws.
std::string open_error(const std::string& dir, Split split = Split::train) {
  DatasetOptions o;
  o.dir = dir;
  try {
    open_dataset(o, split);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_has(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}
}  // namespace

// The real Fashion-MNIST from Debian's dataset-fashion-mnist (installed by launch/setup).
TEST(FashionMnist, RealFilesHaveTheKnownCountsAndBalancedLabels) {
  for (Split split : {Split::train, Split::test}) {
    const auto ds = open_dataset(DatasetOptions{}, split);
    const std::int64_t n = split == Split::train ? 60000 : 10000;
    ASSERT_EQ(ds->size(), n);
    EXPECT_EQ(ds->image_shape(), (Shape{1, 28, 28}));
    EXPECT_EQ(ds->classes(), 10);
    std::array<std::int64_t, 10> hist{};
    std::vector<std::uint8_t> px(784);
    std::int64_t nonzero = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      ++hist[std::size_t(ds->read(i, px.data()))];
      if (i < 100)
        for (auto p : px) nonzero += p != 0;
    }
    for (int c = 0; c < 10; ++c) EXPECT_EQ(hist[std::size_t(c)], n / 10) << "class " << c;
    EXPECT_GT(nonzero, 100 * 784 / 4);  // real pictures, not zeros
  }
}

TEST(Idx, RawAndGzippedGiveTheSameSamples) {
  TempDir raw, gz;
  raw.write("train-images-idx3-ubyte", tk::idx_images(20, 5, 4));
  raw.write("train-labels-idx1-ubyte", tk::idx_labels(20));
  gz.write_gz("train-images-idx3-ubyte.gz", tk::idx_images(20, 5, 4));
  gz.write_gz("train-labels-idx1-ubyte.gz", tk::idx_labels(20));
  DatasetOptions a, b;
  a.dir = raw.path(), b.dir = gz.path();
  const auto da = open_dataset(a, Split::train), db = open_dataset(b, Split::train);
  ASSERT_EQ(da->size(), 20);
  EXPECT_EQ(da->image_shape(), (Shape{1, 5, 4}));
  std::vector<std::uint8_t> pa(20), pb(20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(da->read(i, pa.data()), i % 10);
    EXPECT_EQ(db->read(i, pb.data()), i % 10);
    EXPECT_EQ(pa, pb);
    EXPECT_EQ(pa[3], std::uint8_t((i * 20 + 3) * 7 + (i * 20 + 3) / 13));
  }
}

TEST(Idx, LimitUsesTheFirstSamples) {
  DatasetOptions o;
  o.limit = 1000;
  const auto ds = open_dataset(o, Split::train);
  EXPECT_EQ(ds->size(), 1000);
  o.limit = 60001;
  EXPECT_THROW(open_dataset(o, Split::train), UsageError);
  o.limit = -1;
  EXPECT_THROW(open_dataset(o, Split::train), UsageError);
}

TEST(IdxBadInput, MissingDirectory) {
  expect_has(open_error("/nonexistent/fmnist"),
             {"/nonexistent/fmnist: data directory of fashion-mnist does not exist"});
}

TEST(IdxBadInput, MissingFile) {
  TempDir d;
  d.write("train-images-idx3-ubyte", tk::idx_images(4, 2, 2));
  expect_has(open_error(d.path()),
             {"missing train-labels-idx1-ubyte (or train-labels-idx1-ubyte.gz)"});
}

TEST(IdxBadInput, WrongMagic) {
  TempDir d;
  auto img = tk::idx_images(4, 2, 2);
  img[3] = 1;  // says "labels"
  d.write("train-images-idx3-ubyte", img);
  d.write("train-labels-idx1-ubyte", tk::idx_labels(4));
  expect_has(open_error(d.path()), {"train-images-idx3-ubyte: not an IDX image file",
                                    "expected magic 0x00000803, found 0x00000801"});
}

TEST(IdxBadInput, TruncatedImageFile) {
  TempDir d;
  auto img = tk::idx_images(4, 2, 2);
  img.resize(img.size() - 3);
  d.write("train-images-idx3-ubyte", img);
  d.write("train-labels-idx1-ubyte", tk::idx_labels(4));
  expect_has(open_error(d.path()), {"train-images-idx3-ubyte: truncated image file",
                                    "header says 4x2x2 (32 bytes), found 29 bytes"});
}

TEST(IdxBadInput, TruncatedLabelFile) {
  TempDir d;
  auto lab = tk::idx_labels(4);
  lab.resize(6);  // even the header is cut
  d.write("train-images-idx3-ubyte", tk::idx_images(4, 2, 2));
  d.write("train-labels-idx1-ubyte", lab);
  expect_has(open_error(d.path()), {"train-labels-idx1-ubyte: truncated label file",
                                    "expected an IDX header of 8 bytes, found 6 bytes"});
}

TEST(IdxBadInput, CountsDiffer) {
  TempDir d;
  d.write("train-images-idx3-ubyte", tk::idx_images(4, 2, 2));
  d.write("train-labels-idx1-ubyte", tk::idx_labels(5));
  expect_has(open_error(d.path()), {"4 images but", "train-labels-idx1-ubyte has 5 labels"});
}

TEST(IdxBadInput, LabelOutOfRange) {
  TempDir d;
  auto lab = tk::idx_labels(4);
  lab[8 + 2] = 10;
  d.write("train-images-idx3-ubyte", tk::idx_images(4, 2, 2));
  d.write("train-labels-idx1-ubyte", lab);
  expect_has(open_error(d.path()), {"label 10 of sample 2 is out of range; expected 0..9"});
}

TEST(IdxBadInput, CorruptGzipStream) {
  TempDir d;
  d.write_gz("train-images-idx3-ubyte.gz", tk::idx_images(50, 8, 8));
  d.write_gz("train-labels-idx1-ubyte.gz", tk::idx_labels(50));
  // Flip bytes in the middle of the deflate stream of the images.
  const std::string p = d.path() + "/train-images-idx3-ubyte.gz";
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(40);
  f.write("\xff\x00\xff\x00\xff\x00", 6);
  f.close();
  expect_has(open_error(d.path()), {"train-images-idx3-ubyte.gz: corrupt gzip stream"});
}

TEST(IdxBadInput, TruncatedGzipStream) {
  TempDir d;
  d.write("x", {});
  const std::string full = d.write_gz("train-images-idx3-ubyte.gz", tk::idx_images(50, 8, 8));
  d.write_gz("train-labels-idx1-ubyte.gz", tk::idx_labels(50));
  std::filesystem::resize_file(full, std::filesystem::file_size(full) / 2);
  expect_has(open_error(d.path()), {"train-images-idx3-ubyte.gz: corrupt gzip stream"});
}

TEST(Cifar, ReadsRecordsAcrossFiles) {
  TempDir d;
  for (int i = 1; i <= 5; ++i)
    d.write("data_batch_" + std::to_string(i) + ".bin", tk::cifar_records(3));
  d.write("test_batch.bin", tk::cifar_records(2));
  DatasetOptions o;
  o.name = "cifar10", o.dir = d.path();
  const auto train = open_dataset(o, Split::train);
  EXPECT_EQ(train->size(), 15);
  EXPECT_EQ(train->image_shape(), (Shape{3, 32, 32}));
  std::vector<std::uint8_t> px(3072);
  EXPECT_EQ(train->read(4, px.data()), 1);  // second record of the second file
  EXPECT_EQ(px[0], 1);
  EXPECT_EQ(px[100], 101);
  EXPECT_EQ(open_dataset(o, Split::test)->size(), 2);
}

TEST(CifarBadInput, SizeNotAMultipleOfTheRecord) {
  TempDir d;
  auto rec = tk::cifar_records(2);
  rec.pop_back();
  d.write("test_batch.bin", rec);
  DatasetOptions o;
  o.name = "cifar10", o.dir = d.path();
  try {
    open_dataset(o, Split::test);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_has(e.what(), {"test_batch.bin: size 6145 bytes is not a positive multiple of the CIFAR "
                          "record size 3073"});
  }
}

TEST(CifarBadInput, MissingFileAndLabelOutOfRange) {
  TempDir d;
  auto rec = tk::cifar_records(2);
  rec[3073] = 12;
  d.write("test_batch.bin", rec);
  DatasetOptions o;
  o.name = "cifar10", o.dir = d.path();
  try {
    open_dataset(o, Split::train);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_has(e.what(), {"missing data_batch_1.bin"});
  }
  try {
    open_dataset(o, Split::test);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_has(e.what(), {"label 12 of record 1 is out of range; expected 0..9"});
  }
}

TEST(Synthetic, DeterministicLearnableAndOfAnyShape) {
  DatasetOptions o;
  o.name = "synthetic", o.synthetic_shape = Shape{3, 8, 8}, o.synthetic_train_size = 100;
  o.synthetic_classes = 4, o.seed = 9;
  const auto a = open_dataset(o, Split::train), b = open_dataset(o, Split::train);
  const auto t = open_dataset(o, Split::test);
  EXPECT_EQ(a->size(), 100);
  EXPECT_EQ(a->image_shape(), (Shape{3, 8, 8}));
  std::vector<std::uint8_t> pa(192), pb(192), pt(192);
  std::array<int, 4> hist{};
  for (int i = 0; i < 100; ++i) {
    const int la = a->read(i, pa.data());
    EXPECT_EQ(la, b->read(i, pb.data()));
    EXPECT_EQ(pa, pb);
    ++hist[std::size_t(la)];
  }
  for (int h : hist) EXPECT_GT(h, 10);
  EXPECT_NE((a->read(0, pa.data()), pa), (t->read(0, pt.data()), pt));  // splits differ
}

TEST(Datasets, UnknownNameIsAUsageError) {
  DatasetOptions o;
  o.name = "imagenet";
  try {
    open_dataset(o, Split::train);
    FAIL();
  } catch (const UsageError& e) {
    expect_has(e.what(), {"unknown dataset 'imagenet'; expected one of: fashion-mnist, mnist, "
                          "cifar10, synthetic, imagefolder, packed"});
  }
}
