// Datasets: indexed collections of raw uint8 images (C x H x W) with integer labels.
// Reading a sample copies only that sample's bytes, so a rank touches only its slice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/data/bytes.hpp"
#include "distnet/tensor.hpp"

namespace distnet::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string description() const = 0;  // "fashion-mnist train (60000 x 1x28x28)"
  virtual std::int64_t size() const = 0;
  virtual Shape image_shape() const = 0;  // C x H x W of the raw images
  virtual int classes() const = 0;
  // Copies sample `index`'s pixels (image_shape().numel() bytes, CHW) to `pixels`; returns the
  // label.
  virtual std::int32_t read(std::int64_t index, std::uint8_t* pixels) const = 0;
  // The sample as training epoch `epoch` sees it; the loader calls this one. Datasets whose
  // samples never change (IDX, CIFAR, synthetic) ignore the epoch; augmenting ones (image
  // folders) draw their crop and flip from (seed, epoch, index), so the sample is the same on any
  // rank and after a resume.
  virtual std::int32_t read_epoch(std::int64_t index, std::int64_t epoch,
                                  std::uint8_t* pixels) const {
    (void)epoch;
    return read(index, pixels);
  }

  // Bad files replaced under --on-bad-image skip while reading `epoch`'s samples on this rank
  // (count of replaced reads, and the first few paths); returns them and forgets them.
  struct BadSamples {
    std::int64_t count = 0;
    std::vector<std::string> first;
  };
  virtual BadSamples take_bad_samples(std::int64_t epoch) const {
    (void)epoch;
    return {};
  }
};

enum class Split { train, test };  // for image folders: DIR/train and DIR/val

struct ImageFolderList;  // distnet/data/image_folder.hpp
struct PackedManifest;   // distnet/data/packed.hpp

struct DatasetOptions {
  std::string name = "fashion-mnist";  // fashion-mnist, mnist, cifar10, synthetic, imagefolder,
                                       // packed
  std::string dir;                     // empty: the dataset's default directory
  std::int64_t limit = 0;              // use the first `limit` samples; 0 = all
  // synthetic only
  Shape synthetic_shape{1, 28, 28};
  std::int64_t synthetic_train_size = 60000, synthetic_test_size = 10000;
  int synthetic_classes = 10;
  std::uint64_t seed = 0;
  // imagefolder and packed only
  int image_size = 224;                           // the augmented images: 3 x S x S
  bool skip_bad_images = false;                   // --on-bad-image skip
  bool augment = true;                            // --augment standard (false: none)
  std::shared_ptr<const ImageFolderList> folder;  // a list rank 0 made; null: scan `dir`
  std::shared_ptr<const PackedManifest> packed;   // packed: the manifest rank 0 read; null: read it
};

// The names open_dataset() accepts and, per name, the default directory.
const std::vector<std::string>& dataset_names();
std::string default_data_dir(const std::string& name);
// Image shape and class count a dataset has by definition (no file is read), for --print-shapes.
Shape nominal_image_shape(const DatasetOptions& opts);
int nominal_classes(const DatasetOptions& opts);

// Opens and validates a split. Every problem (missing directory or file, wrong magic, truncated
// file, count mismatch, label out of range, corrupt gzip, bad record size) throws one line naming
// the file, what was expected and what was found; an unknown name throws UsageError.
std::unique_ptr<Dataset> open_dataset(const DatasetOptions& opts, Split split);

// ---- parsers over bytes in memory (also what the fuzz targets drive) ---------------------------

// An IDX pair (MNIST layout): images (magic 0x803, n x rows x cols of uint8) and labels (magic
// 0x801, n uint8 labels < classes).
std::unique_ptr<Dataset> make_idx_dataset(std::string description, FileBytes images,
                                          FileBytes labels, int classes);

// CIFAR-10 binary files: records of 1 label byte + 3 x 32 x 32 pixel bytes, concatenated.
std::unique_ptr<Dataset> make_cifar_dataset(std::string description, std::vector<FileBytes> files,
                                            int classes);

// Deterministic images and labels from Philox; learnable: each class has a fixed random template
// to which per-sample noise is added, so a model can tell the classes apart.
std::unique_ptr<Dataset> make_synthetic_dataset(Shape shape, std::int64_t size, int classes,
                                                std::uint64_t seed, Split split);

// The first `limit` samples of `base` (limit <= base->size()).
std::unique_ptr<Dataset> make_limited(std::unique_ptr<Dataset> base, std::int64_t limit);

// Whether a dataset produces a fixed-size image from encoded files of any size (an image folder,
// or packed shards of one): its images are cropped to DatasetOptions::image_size, so --resize 0
// has no meaning for it.
bool dataset_is_image_folder(const std::string& name);

}  // namespace distnet::data
