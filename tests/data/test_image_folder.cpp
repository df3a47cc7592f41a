// Image folders on a tree of real Fashion-MNIST pictures encoded here (image_folder_maker.hpp):
// the listing, the dataset, the loader over ranks and epochs, and every kind of bad input.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "data/data_files.hpp"
#include "data/error_text.hpp"
#include "data/image_folder_maker.hpp"
#include "distnet/data/image_folder.hpp"
#include "distnet/data/loader.hpp"
#include "distnet/error.hpp"

using namespace distnet;
using namespace distnet::data;
using distnet::testkit::error_of;
using distnet::testkit::expect_one_line;
using distnet::testkit::TempDir;
namespace tk = distnet::testkit;
namespace fs = std::filesystem;

namespace {

// A fresh tree per test: 4 train and 2 val pictures per class, 40-500 px.
struct Tree {
  TempDir dir;
  Tree() {
    tk::FolderSpec spec;
    spec.train_per_class = 4, spec.val_per_class = 2, spec.max_size = 500;
    tk::make_fashion_folder(dir.path(), spec);
  }
  std::string at(const std::string& rel) const { return dir.path() + "/" + rel; }
  void write(const std::string& rel, const std::vector<std::uint8_t>& b) const {
    std::ofstream(at(rel), std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }
};

std::unique_ptr<Dataset> open(const std::string& dir, Split split, bool skip = false,
                              int size = 32) {
  DatasetOptions o;
  o.name = "imagefolder", o.dir = dir, o.image_size = size, o.skip_bad_images = skip, o.seed = 5;
  return open_dataset(o, split);
}

// The position of `rel` ("<class>/<file>") in the split's list.
std::int64_t index_of(const ImageFolderList& l, Split s, const std::string& rel) {
  const auto& files = s == Split::train ? l.train.files : l.val.files;
  return std::find(files.begin(), files.end(), rel) - files.begin();
}

}  // namespace

TEST(ImageFolder, ScanSortsClassesAndFilesAndTheListSurvivesText) {
  Tree t;
  t.write("train/c3-dress/zz.Jpeg", tk::encode_jpeg(tk::test_picture(50, 60), 50, 60));
  t.write("train/c3-dress/readme.txt", {'h', 'i'});  // not an image extension: ignored
  const ImageFolderList l = scan_image_folder(t.dir.path());
  ASSERT_EQ(l.classes, tk::fashion_class_folders());
  EXPECT_EQ(l.train.files.size(), 41u);
  EXPECT_EQ(l.val.files.size(), 20u);
  EXPECT_TRUE(std::is_sorted(l.train.files.begin(), l.train.files.end()));
  for (std::size_t i = 0; i < l.train.files.size(); ++i)
    EXPECT_EQ(l.classes[std::size_t(l.train.labels[i])] + "/",
              l.train.files[i].substr(0, l.train.files[i].find('/') + 1));
  EXPECT_LT(index_of(l, Split::train, "c3-dress/zz.Jpeg"), 41);
  const ImageFolderList back = ImageFolderList::parse(l.serialize(), "test");
  EXPECT_EQ(back.root, l.root);
  EXPECT_EQ(back.classes, l.classes);
  EXPECT_EQ(back.train.files, l.train.files);
  EXPECT_EQ(back.val.labels, l.val.labels);
  EXPECT_THROW(ImageFolderList::parse("distnet-image-folder 1\nx\n2\na\n", "rank 0"), Error);
}

TEST(ImageFolder, EveryFileDecodesToTheFixedShapeWithItsLabel) {
  Tree t;
  const auto train = open(t.dir.path(), Split::train), val = open(t.dir.path(), Split::test);
  EXPECT_EQ(train->size(), 40);
  EXPECT_EQ(val->size(), 20);
  EXPECT_EQ(train->image_shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(train->classes(), 10);
  const ImageFolderList l = scan_image_folder(t.dir.path());
  std::vector<std::uint8_t> a(3 * 32 * 32), b(a.size());
  int changed = 0;
  for (std::int64_t i = 0; i < train->size(); ++i) {
    EXPECT_EQ(train->read_epoch(i, 0, a.data()), l.train.labels[std::size_t(i)]);
    train->read_epoch(i, 0, b.data());
    EXPECT_EQ(a, b);  // the same (epoch, index): the same sample
    train->read_epoch(i, 1, b.data());
    changed += a != b;  // another epoch: another crop or flip
    long sum = 0;
    for (auto v : a) sum += v;
    EXPECT_GT(sum, 0) << l.train.files[std::size_t(i)];
  }
  EXPECT_GT(changed, 35);
  for (std::int64_t i = 0; i < val->size(); ++i) {  // evaluation: no randomness at all
    val->read_epoch(i, 0, a.data());
    val->read_epoch(i, 7, b.data());
    EXPECT_EQ(a, b);
  }
}

TEST(ImageFolder, AugmentNoneGivesTrainingTheEvaluationCrop) {
  Tree t;
  DatasetOptions o;
  o.name = "imagefolder", o.dir = t.dir.path(), o.image_size = 24, o.augment = false;
  const auto ds = open_dataset(o, Split::train);
  std::vector<std::uint8_t> a(3 * 24 * 24), b(a.size()), c(a.size());
  for (std::int64_t i = 0; i < ds->size(); i += 7) {
    ds->read_epoch(i, 0, a.data());
    ds->read_epoch(i, 5, b.data());
    EXPECT_EQ(a, b);
    const std::string p =
        t.dir.path() + "/train/" + scan_image_folder(t.dir.path()).train.files[std::size_t(i)];
    const auto bytes = read_image_file(p);
    decode_augmented(bytes.data(), bytes.size(), p, AugmentSpec{24, false, 0}, 0, i, c.data());
    EXPECT_EQ(a, c);
  }
}

TEST(ImageFolder, RankSlicesOfAugmentedBatchesAddUpToOneProcess) {
  Tree t;
  const auto ds = open(t.dir.path(), Split::train);
  const Sampler sampler(ds->size(), 16, true, false, 3);
  std::vector<Batch> one;
  {
    Loader l(*ds, sampler, nullptr, LoaderOptions{0, 1, 0, 4, nullptr}, 1, 0);
    for (int b = 0; b < 6; ++b) one.push_back(l.next());  // epochs 1 and 2
  }
  std::vector<std::vector<Batch>> parts(3);
  for (int r = 0; r < 3; ++r) {
    Loader l(*ds, sampler, nullptr, LoaderOptions{r, 3, 2, 4, nullptr}, 1, 0);
    for (int b = 0; b < 6; ++b) parts[std::size_t(r)].push_back(l.next());
  }
  for (std::size_t b = 0; b < one.size(); ++b) {
    std::vector<std::uint8_t> joined;
    std::vector<std::int32_t> labels;
    for (const auto& p : parts) {
      joined.insert(joined.end(), p[b].raw.begin(), p[b].raw.end());
      labels.insert(labels.end(), p[b].labels.begin(), p[b].labels.end());
    }
    EXPECT_EQ(joined, one[b].raw) << "batch " << b;
    EXPECT_EQ(labels, one[b].labels);
  }
  // Resuming at epoch 2 gives epoch 2's batches.
  Loader resumed(*ds, sampler, nullptr, LoaderOptions{0, 1, 1, 4, nullptr}, 2, 1);
  EXPECT_EQ(resumed.next().raw, one[4].raw);
}

TEST(ImageFolder, EmptyClassFolderIsAnError) {
  Tree t;
  for (const auto& e : fs::directory_iterator(t.at("val/c5-sandal"))) fs::remove(e.path());
  std::ofstream(t.at("val/c5-sandal/notes.txt")) << "no pictures\n";
  expect_one_line(error_of([&] { scan_image_folder(t.dir.path()); }),
                  {t.at("val/c5-sandal"), "empty class folder"});
}

TEST(ImageFolder, TrainAndValWithDifferentClassesAreAnError) {
  Tree t;
  fs::rename(t.at("val/c8-bag"), t.at("val/c8-handbag"));
  expect_one_line(error_of([&] { scan_image_folder(t.dir.path()); }),
                  {t.at("train"), t.at("val"), "different classes", "'c8-bag' is only in train"});
  fs::create_directories(t.at("train/c8-handbag"));
  fs::rename(t.at("train/c8-bag"), t.at("train/c8-x"));
  fs::remove_all(t.at("train/c8-x"));
  fs::remove_all(t.at("train/c8-handbag"));
  expect_one_line(error_of([&] { scan_image_folder(t.dir.path()); }),
                  {"different classes (9 and 10)", "'c8-handbag' is only in val"});
  expect_one_line(error_of([&] { scan_image_folder(t.at("nowhere")); }),
                  {t.at("nowhere"), "does not exist"});
  fs::remove_all(t.at("val"));
  expect_one_line(error_of([&] { scan_image_folder(t.dir.path()); }), {t.at("val"), "missing"});
}

// Each bad file as the only bad one of a tree: reading it fails with its path and the problem.
TEST(ImageFolder, BadFilesFailNamingTheFile) {
  const auto good = tk::encode_jpeg(tk::test_picture(64, 64), 64, 64);
  struct Case {
    const char* name;
    std::function<void(const std::string&)> make;
    const char* says;
  };
  const std::vector<Case> cases{
      {"truncated.jpg",
       [&](const std::string& p) {
         std::ofstream(p, std::ios::binary)
             .write(reinterpret_cast<const char*>(good.data()), std::streamsize(good.size() / 2));
       },
       "corrupt or truncated JPEG data"},
      {"text.jpg", [](const std::string& p) { std::ofstream(p) << "not a picture"; },
       "not a JPEG or PNG image"},
      {"bomb.png",
       [](const std::string& p) {
         const auto b = tk::encode_png({}, 65000, 65000, 8, 2, {}, false);
         std::ofstream(p, std::ios::binary)
             .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
       },
       "above the limit of 178956970"},
      // Tests run as root, for whom chmod 000 does not stop a read: unreadable entries are made
      // of things no one can read as a file.
      {"dangling.jpg", [](const std::string& p) { fs::create_symlink(p + ".gone", p); },
       "symbolic link to a file that does not exist"},
      {"fifo.jpg", [](const std::string& p) { ASSERT_EQ(mkfifo(p.c_str(), 0600), 0); },
       "is a FIFO, not an image file"},
      {"folder.jpeg", [](const std::string& p) { fs::create_directories(p); },
       "is a directory, not an image file"},
  };
  Tree t;
  for (const Case& c : cases) {
    const std::string rel = std::string("c2-pullover/") + c.name;
    c.make(t.at("train/" + rel));
    const auto ds = open(t.dir.path(), Split::train);
    const auto l = scan_image_folder(t.dir.path());
    const std::int64_t i = index_of(l, Split::train, rel);
    ASSERT_LT(i, ds->size()) << rel;
    std::vector<std::uint8_t> px(3 * 32 * 32);
    expect_one_line(error_of([&] { ds->read_epoch(i, 0, px.data()); }),
                    {t.at("train/" + rel) + ": ", c.says});
    fs::remove_all(t.at("train/" + rel));
  }
}

TEST(ImageFolder, SkipReplacesABadFileByTheNextGoodOneAndCountsIt) {
  Tree t;
  // Val has no randomness, so the substitute's pixels are exactly the next file's.
  std::ofstream(t.at("val/c4-coat/0bad.png")) << "truncated";
  std::ofstream(t.at("val/c9-ankle-boot/zzz.jpg")) << "last in the list";
  const auto l = scan_image_folder(t.dir.path());
  const std::int64_t bad = index_of(l, Split::test, "c4-coat/0bad.png");
  const std::int64_t last = index_of(l, Split::test, "c9-ankle-boot/zzz.jpg");
  ASSERT_EQ(last, 21);
  const auto strict = open(t.dir.path(), Split::test);
  const auto skip = open(t.dir.path(), Split::test, /*skip=*/true);
  std::vector<std::uint8_t> got(3 * 32 * 32), want(got.size());
  EXPECT_THROW(strict->read_epoch(bad, 0, got.data()), Error);
  EXPECT_EQ(skip->read_epoch(bad, 3, got.data()), strict->read_epoch(bad + 1, 3, want.data()));
  EXPECT_EQ(got, want);
  EXPECT_EQ(skip->read_epoch(last, 3, got.data()), 0);  // wraps to the first sample
  strict->read_epoch(0, 3, want.data());
  EXPECT_EQ(got, want);
  skip->read_epoch(bad, 3, got.data());  // counted again (known bad: not decoded again)
  skip->read_epoch(bad, 4, got.data());
  const Dataset::BadSamples e3 = skip->take_bad_samples(3);
  EXPECT_EQ(e3.count, 3);
  EXPECT_EQ(e3.first, (std::vector<std::string>{t.at("val/c4-coat/0bad.png"),
                                                t.at("val/c9-ankle-boot/zzz.jpg")}));
  EXPECT_EQ(skip->take_bad_samples(3).count, 0);  // taken
  EXPECT_EQ(skip->take_bad_samples(4).count, 1);
}

TEST(ImageFolder, ClassNamesAreWrittenOneALineInLabelOrder) {
  TempDir d;
  write_class_names(d.path() + "/classes.txt", {"ant", "bee", "cat dog"});
  std::ifstream in(d.path() + "/classes.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "ant\nbee\ncat dog\n");
  EXPECT_FALSE(fs::exists(d.path() + "/classes.txt.tmp"));
  EXPECT_THROW(write_class_names(d.path() + "/none/classes.txt", {"a"}), Error);
}

TEST(ImageFolder, OptionsAreChecked) {
  DatasetOptions o;
  o.name = "imagefolder";
  EXPECT_THROW(open_dataset(o, Split::train), UsageError);  // no --data-dir
  Tree t;
  o.dir = t.dir.path();
  o.limit = 41;
  EXPECT_THROW(open_dataset(o, Split::train), UsageError);
  o.limit = 12;
  EXPECT_EQ(open_dataset(o, Split::train)->size(), 12);
  o.limit = 0;
  EXPECT_EQ(nominal_classes(o), 10);
  EXPECT_EQ(nominal_image_shape(o), (Shape{3, 224, 224}));
}
