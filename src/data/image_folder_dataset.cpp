// A split of an image folder as a Dataset: read, decode, augment; bad files refused or replaced.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "distnet/data/image_folder.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

constexpr std::size_t kBadPathsKept = 5;  // per epoch, the first few named at its end

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(std::shared_ptr<const ImageFolderList> list, Split split,
                     const ImageFolderOptions& opts)
      : list_(std::move(list)),
        split_(split == Split::train ? list_->train : list_->val),
        dir_(list_->root + "/" + ImageFolderList::split_dir(split)),
        opts_(opts) {
    opts_.augment.train = split == Split::train && opts.train_augment;
    DISTNET_CHECK(!split_.files.empty(), dir_ + ": no images");
  }

  std::string description() const override {
    const int s = opts_.augment.size;
    return "imagefolder " + dir_ + " (" + std::to_string(size()) + " images, " +
           std::to_string(classes()) + " classes, " +
           (opts_.augment.train ? "random crops" : "centre crops") + " to 3x" + std::to_string(s) +
           "x" + std::to_string(s) + ")";
  }
  std::int64_t size() const override {
    const auto n = std::int64_t(split_.files.size());
    return opts_.limit > 0 ? std::min(opts_.limit, n) : n;
  }
  Shape image_shape() const override { return Shape{3, opts_.augment.size, opts_.augment.size}; }
  int classes() const override { return int(list_->classes.size()); }

  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    return read_epoch(index, 0, pixels);
  }

  std::int32_t read_epoch(std::int64_t index, std::int64_t epoch,
                          std::uint8_t* pixels) const override {
    DISTNET_CHECK(index >= 0 && index < size(),
                  dir_ + ": sample index " + std::to_string(index) + " out of range");
    if (opts_.on_bad == BadImagePolicy::error) {
      load(index, epoch, index, pixels);
      return split_.labels[std::size_t(index)];
    }
    // Skip: the next good index (index + 1, + 2, ..., wrapping), decided from the sample index
    // alone, so every rank and every resumed run substitutes the same sample. The substitute is
    // augmented with the original index's draws.
    const std::int64_t n = size();
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t j = (index + k) % n;
      if (known_bad(j)) continue;
      try {
        load(j, epoch, index, pixels);
        if (k > 0) count_bad(epoch, index);
        return split_.labels[std::size_t(j)];
      } catch (const Error&) {
        mark_bad(j);
      }
    }
    throw Error(dir_ + ": every image is bad (--on-bad-image skip has nothing to use)");
  }

  BadSamples take_bad_samples(std::int64_t epoch) const override {
    std::lock_guard<std::mutex> lock(mu_);
    BadSamples b;
    if (auto it = per_epoch_.find(epoch); it != per_epoch_.end()) {
      b = std::move(it->second);
      per_epoch_.erase(it);
    }
    return b;
  }

 private:
  std::string path(std::int64_t i) const { return dir_ + "/" + split_.files[std::size_t(i)]; }

  void load(std::int64_t file, std::int64_t epoch, std::int64_t draw, std::uint8_t* out) const {
    const std::string p = path(file);
    const std::vector<std::uint8_t> bytes = read_image_file(p);
    decode_augmented(bytes.data(), bytes.size(), p, opts_.augment, epoch, draw, out);
  }

  bool known_bad(std::int64_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    return bad_.count(i) > 0;
  }
  void mark_bad(std::int64_t i) const {
    std::lock_guard<std::mutex> lock(mu_);
    bad_.insert(i);
  }
  void count_bad(std::int64_t epoch, std::int64_t index) const {
    std::lock_guard<std::mutex> lock(mu_);
    BadSamples& b = per_epoch_[epoch];
    ++b.count;
    const std::string p = path(index);
    if (b.first.size() < kBadPathsKept &&
        std::find(b.first.begin(), b.first.end(), p) == b.first.end())
      b.first.push_back(p);
  }

  std::shared_ptr<const ImageFolderList> list_;
  const ImageFolderSplit& split_;
  std::string dir_;
  ImageFolderOptions opts_;
  mutable std::mutex mu_;
  mutable std::set<std::int64_t> bad_;  // files known to fail (decoding is deterministic)
  mutable std::map<std::int64_t, BadSamples> per_epoch_;
};

}  // namespace

std::unique_ptr<Dataset> make_image_folder_dataset(std::shared_ptr<const ImageFolderList> list,
                                                   Split split, const ImageFolderOptions& opts) {
  DISTNET_CHECK(list != nullptr, "make_image_folder_dataset: no list");
  DISTNET_CHECK_USAGE(opts.augment.size >= 1,
                      "image size must be at least 1, got " + std::to_string(opts.augment.size));
  return std::make_unique<ImageFolderDataset>(std::move(list), split, opts);
}

}  // namespace distnet::data
