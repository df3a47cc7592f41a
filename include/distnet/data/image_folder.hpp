// Image folders, torchvision's ImageFolder convention:
//   DIR/train/<class>/*.{jpg,jpeg,png}   DIR/val/<class>/*.{jpg,jpeg,png}   (any case)
// Classes are the sorted folder names, the same for both splits; files are sorted by name within
// a class. Rank 0 scans the tree once (scan_image_folder) and sends the list to the other ranks as
// text (ImageFolderList::serialize / parse), so a parallel file system sees one directory walk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/data/augment.hpp"
#include "distnet/data/dataset.hpp"

namespace distnet::data {

struct ImageFolderSplit {
  std::vector<std::string> files;  // relative to the split's directory: "<class>/<file>"
  std::vector<std::int32_t> labels;
};

struct ImageFolderList {
  std::string root;  // DIR
  std::vector<std::string> classes;
  ImageFolderSplit train, val;

  std::string serialize() const;
  // Throws distnet::Error naming `source` for text that serialize() did not write.
  static ImageFolderList parse(const std::string& text, const std::string& source);
  static const char* split_dir(Split s) { return s == Split::train ? "train" : "val"; }
};

// Walks DIR/train and DIR/val. Throws one line for: a missing DIR, train or val; a split without
// class folders; an empty class folder (no .jpg/.jpeg/.png file); train and val with different
// class sets (naming a class that only one of them has). Other files are ignored, as torchvision
// does; whether a listed file is readable and an image is found when it is read.
ImageFolderList scan_image_folder(const std::string& dir);

// Writes the class names, one a line in label order (rank 0, next to the checkpoints). Atomic:
// a temporary file renamed over `path`.
void write_class_names(const std::string& path, const std::vector<std::string>& classes);

// What --on-bad-image does with a file that cannot be read or decoded.
enum class BadImagePolicy {
  error,  // throw: the run stops, naming the file
  skip    // use the next good sample instead (index + 1, + 2, ... wrapping), and count it
};

struct ImageFolderOptions {
  AugmentSpec augment;  // size, seed; `train` is set from the split
  BadImagePolicy on_bad = BadImagePolicy::error;
  bool train_augment = true;  // false: training images get the evaluation centre crop too
  std::int64_t limit = 0;     // use the first `limit` files of the split (0: all); skipping wraps
                              // within them
};

// A split of the list as a Dataset of 3 x size x size uint8 images: read(index, epoch, pixels)
// decodes and augments sample `index` for `epoch` (training: random crop and flip; val: centre
// crop). Bad images are skipped or refused according to opts.on_bad; skipped ones are counted
// per epoch (Dataset::take_bad_samples).
std::unique_ptr<Dataset> make_image_folder_dataset(std::shared_ptr<const ImageFolderList> list,
                                                   Split split, const ImageFolderOptions& opts);

// The bytes of an image file; refuses (distnet::Error naming the path) a missing or dangling
// path, a directory, a FIFO or device, or an unreadable file, without ever blocking.
std::vector<std::uint8_t> read_image_file(const std::string& path);

}  // namespace distnet::data
