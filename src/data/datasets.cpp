// Datasets by name, their default directories and file names.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "distnet/data/dataset.hpp"
#include "distnet/data/image_folder.hpp"
#include "distnet/data/packed.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// `base` or `base.gz`, whichever is there (raw preferred: it can be memory-mapped).
std::string find_file(const std::string& dir, const std::string& base) {
  const std::string raw = dir + "/" + base;
  if (exists(raw)) return raw;
  if (exists(raw + ".gz")) return raw + ".gz";
  throw Error(dir + ": missing " + base + " (or " + base + ".gz)");
}

std::string check_dir(const std::string& name, const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 && errno != ENOENT && errno != ENOTDIR)
    throw Error(dir + ": cannot reach the data directory of " + name + ": " + std::strerror(errno));
  if (is_dir(dir)) {
    // A directory that cannot be listed or entered would otherwise look like one without the
    // dataset's files.
    if (::access(dir.c_str(), R_OK | X_OK) != 0)
      throw Error(dir + ": cannot read the data directory of " + name + ": " +
                  std::strerror(errno));
    return dir;
  }
  std::string hint = " (pass --data-dir)";
  if (name == "fashion-mnist")
    hint = " (install the Debian package dataset-fashion-mnist, or pass --data-dir)";
  throw Error(dir + ": data directory of " + name + " does not exist" + hint);
}

std::unique_ptr<Dataset> open_idx(const std::string& name, const std::string& dir, Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string images = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = find_file(dir, prefix + "-labels-idx1-ubyte");
  return make_idx_dataset(name + (split == Split::train ? " train" : " test"),
                          FileBytes::open(images), FileBytes::open(labels), 10);
}

std::unique_ptr<Dataset> open_cifar(const std::string& dir, Split split) {
  std::vector<FileBytes> files;
  if (split == Split::train) {
    for (int i = 1; i <= 5; ++i) {
      const std::string base = "data_batch_" + std::to_string(i) + ".bin";
      if (!exists(dir + "/" + base)) throw Error(dir + ": missing " + base);
      files.push_back(FileBytes::open(dir + "/" + base));
    }
  } else {
    if (!exists(dir + "/test_batch.bin")) throw Error(dir + ": missing test_batch.bin");
    files.push_back(FileBytes::open(dir + "/test_batch.bin"));
  }
  return make_cifar_dataset(split == Split::train ? "cifar10 train" : "cifar10 test",
                            std::move(files), 10);
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"fashion-mnist", "mnist",       "cifar10",
                                              "synthetic",     "imagefolder", "packed"};
  return names;
}

std::string default_data_dir(const std::string& name) {
  if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
  if (name == "mnist") return "/usr/share/datasets/mnist";
  if (name == "cifar10") return "cifar-10-batches-bin";
  return "";
}

bool dataset_is_image_folder(const std::string& name) {
  return name == "imagefolder" || name == "packed";
}

Shape nominal_image_shape(const DatasetOptions& opts) {
  if (opts.name == "cifar10") return Shape{3, 32, 32};
  if (dataset_is_image_folder(opts.name)) return Shape{3, opts.image_size, opts.image_size};
  if (opts.name == "synthetic") return opts.synthetic_shape;
  return Shape{1, 28, 28};
}

int nominal_classes(const DatasetOptions& opts) {
  if (opts.name == "packed") {  // the manifest's classes, no shard read
    if (opts.packed) return int(opts.packed->train.classes.size());
    DISTNET_CHECK_USAGE(!opts.dir.empty(), "--dataset packed needs --data-dir DIR");
    const std::string file = opts.dir + "/" + kManifestName;
    return int(
        PackedManifest::parse(PackedManifest::read_text(opts.dir), file).train.classes.size());
  }
  if (dataset_is_image_folder(opts.name)) {  // the class folders of DIR/train, no file read
    if (opts.folder) return int(opts.folder->classes.size());
    DISTNET_CHECK_USAGE(!opts.dir.empty(), "--dataset imagefolder needs --data-dir DIR");
    std::int64_t n = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(opts.dir + "/train", ec), end; !ec && it != end;
         it.increment(ec))
      n += it->is_directory(ec);
    if (n == 0) throw Error(opts.dir + "/train: no class folders in it");
    return int(n);
  }
  return opts.name == "synthetic" ? opts.synthetic_classes : 10;
}

std::unique_ptr<Dataset> open_dataset(const DatasetOptions& opts, Split split) {
  const std::string& name = opts.name;
  const std::string dir = opts.dir.empty() ? default_data_dir(name) : opts.dir;
  std::unique_ptr<Dataset> ds;
  if (name == "fashion-mnist" || name == "mnist") {
    ds = open_idx(name, check_dir(name, dir), split);
  } else if (name == "cifar10") {
    ds = open_cifar(check_dir(name, dir), split);
  } else if (dataset_is_image_folder(name)) {
    DISTNET_CHECK_USAGE(!opts.dir.empty(), "--dataset " + name + " needs --data-dir DIR");
    ImageFolderOptions fo;
    fo.augment.size = opts.image_size;
    fo.augment.seed = opts.seed;
    fo.train_augment = opts.augment;
    fo.on_bad = opts.skip_bad_images ? BadImagePolicy::skip : BadImagePolicy::error;
    if (name == "packed") {
      auto m = opts.packed ? opts.packed
                           : std::make_shared<const PackedManifest>(PackedManifest::parse(
                                 PackedManifest::read_text(dir), dir + "/" + kManifestName));
      const std::int64_t n = m->split(split).records;
      if (opts.limit > 0 && opts.limit <= n) fo.limit = opts.limit;
      ds = make_encoded_image_dataset(open_packed_source(*m, dir, split, fo.limit), split, fo);
    } else {
      auto list = opts.folder ? opts.folder
                              : std::make_shared<const ImageFolderList>(scan_image_folder(dir));
      const auto& files = split == Split::train ? list->train.files : list->val.files;
      if (opts.limit > 0 && opts.limit <= std::int64_t(files.size())) fo.limit = opts.limit;
      ds = make_image_folder_dataset(std::move(list), split, fo);
    }
  } else if (name == "synthetic") {
    const std::int64_t n =
        split == Split::train ? opts.synthetic_train_size : opts.synthetic_test_size;
    DISTNET_CHECK_USAGE(n >= 1,
                        "synthetic dataset size must be at least 1, got " + std::to_string(n));
    DISTNET_CHECK_USAGE(opts.synthetic_classes >= 1, "synthetic classes must be at least 1, got " +
                                                         std::to_string(opts.synthetic_classes));
    DISTNET_CHECK_USAGE(
        opts.synthetic_shape.rank() == 3 && opts.synthetic_shape.numel() >= 1,
        "synthetic image shape must be C x H x W, got " + opts.synthetic_shape.str());
    ds = make_synthetic_dataset(opts.synthetic_shape, n, opts.synthetic_classes, opts.seed, split);
  } else {
    std::string all;
    for (const auto& n : dataset_names()) all += (all.empty() ? "" : ", ") + n;
    throw UsageError("unknown dataset '" + name + "'; expected one of: " + all);
  }
  if (opts.limit < 0)
    throw UsageError("sample limit must be >= 0, got " + std::to_string(opts.limit));
  if (opts.limit > ds->size()) {
    throw UsageError("sample limit " + std::to_string(opts.limit) + " exceeds the " +
                     std::to_string(ds->size()) + " samples of " + ds->description());
  }
  if (opts.limit > 0 && opts.limit < ds->size()) ds = make_limited(std::move(ds), opts.limit);
  return ds;
}

}  // namespace distnet::data
