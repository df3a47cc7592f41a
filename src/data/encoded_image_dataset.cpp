// Encoded images (an image folder's files, packed shards' records) as a Dataset: read, decode,
// augment; bad images refused or replaced by the next good one.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "distnet/data/encoded_source.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

constexpr std::size_t kBadPathsKept = 5;  // per epoch, the first few named at its end

class EncodedImageDataset final : public Dataset {
 public:
  EncodedImageDataset(std::shared_ptr<const EncodedSource> source, Split split,
                      const ImageFolderOptions& opts)
      : source_(std::move(source)), opts_(opts) {
    opts_.augment.train = split == Split::train && opts.train_augment;
    DISTNET_CHECK(source_->size() > 0, source_->description() + ": no images");
  }

  std::string description() const override {
    const int s = opts_.augment.size;
    return source_->description() + " (" + std::to_string(size()) + " images, " +
           std::to_string(classes()) + " classes, " +
           (opts_.augment.train ? "random crops" : "centre crops") + " to 3x" + std::to_string(s) +
           "x" + std::to_string(s) + ")";
  }
  std::int64_t size() const override {
    const std::int64_t n = source_->size();
    return opts_.limit > 0 ? std::min(opts_.limit, n) : n;
  }
  Shape image_shape() const override { return Shape{3, opts_.augment.size, opts_.augment.size}; }
  int classes() const override { return source_->classes(); }

  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    return read_epoch(index, 0, pixels);
  }

  std::int32_t read_epoch(std::int64_t index, std::int64_t epoch,
                          std::uint8_t* pixels) const override {
    DISTNET_CHECK(index >= 0 && index < size(), source_->description() + ": sample index " +
                                                    std::to_string(index) + " out of range");
    if (opts_.on_bad == BadImagePolicy::error) {
      load(index, epoch, index, pixels);
      return source_->label(index);
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
        return source_->label(j);
      } catch (const Error&) {
        mark_bad(j);
      }
    }
    throw Error(source_->description() +
                ": every image is bad (--on-bad-image skip has nothing to use)");
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
  void load(std::int64_t record, std::int64_t epoch, std::int64_t draw, std::uint8_t* out) const {
    const std::vector<std::uint8_t> bytes = source_->bytes(record);
    decode_augmented(bytes.data(), bytes.size(), source_->name(record), opts_.augment, epoch, draw,
                     out);
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
    const std::string p = source_->name(index);
    if (b.first.size() < kBadPathsKept &&
        std::find(b.first.begin(), b.first.end(), p) == b.first.end())
      b.first.push_back(p);
  }

  std::shared_ptr<const EncodedSource> source_;
  ImageFolderOptions opts_;
  mutable std::mutex mu_;
  mutable std::set<std::int64_t> bad_;  // files known to fail (decoding is deterministic)
  mutable std::map<std::int64_t, BadSamples> per_epoch_;
};

}  // namespace

std::unique_ptr<Dataset> make_encoded_image_dataset(std::shared_ptr<const EncodedSource> source,
                                                    Split split, const ImageFolderOptions& opts) {
  DISTNET_CHECK(source != nullptr, "make_encoded_image_dataset: no source");
  DISTNET_CHECK_USAGE(opts.augment.size >= 1,
                      "image size must be at least 1, got " + std::to_string(opts.augment.size));
  return std::make_unique<EncodedImageDataset>(std::move(source), split, opts);
}

}  // namespace distnet::data
