// Synthetic data with no I/O: every byte is a pure function of (seed, split, index). Each class
// has a fixed random template shared by both splits; a sample is the mean of its class template
// and its own noise, so models can learn it and test accuracy means something.
#include "distnet/data/dataset.hpp"
#include "distnet/philox.hpp"

namespace distnet::data {
namespace {

class SyntheticDataset final : public Dataset {
 public:
  SyntheticDataset(Shape shape, std::int64_t size, int classes, std::uint64_t seed, Split split)
      : shape_(std::move(shape)),
        size_(size),
        classes_(classes),
        seed_(seed),
        split_stream_(split == Split::train ? 1u : 2u) {
    const std::int64_t per = shape_.numel();
    templates_.resize(static_cast<std::size_t>(classes * per));
    for (int c = 0; c < classes; ++c)
      for (std::int64_t p = 0; p < per; ++p)
        templates_[std::size_t(c * per + p)] = byte_at(1000u + std::uint32_t(c), 0, p);
  }

  std::string description() const override {
    return std::string("synthetic ") + (split_stream_ == 1 ? "train" : "test") + " (" +
           std::to_string(size_) + " x " + shape_.str() + ", " + std::to_string(classes_) +
           " classes)";
  }
  std::int64_t size() const override { return size_; }
  Shape image_shape() const override { return shape_; }
  int classes() const override { return classes_; }

  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    const auto item = static_cast<std::uint32_t>(index);
    const int label = static_cast<int>(
        philox_block(seed_, RngPurpose::synthetic, split_stream_ * 2, 0, item, 0).v[0] %
        static_cast<std::uint32_t>(classes_));
    const std::int64_t per = shape_.numel();
    const std::uint8_t* t = templates_.data() + label * per;
    for (std::int64_t b = 0; b * 4 < per; ++b) {
      const Philox4 r = philox_block(seed_, RngPurpose::synthetic, split_stream_ * 2 + 1, 0, item,
                                     static_cast<std::uint32_t>(b));
      for (int j = 0; j < 4 && b * 4 + j < per; ++j) {
        const std::int64_t p = b * 4 + j;
        pixels[p] = static_cast<std::uint8_t>((t[p] + (r.v[j] & 0xFFu)) / 2);
      }
    }
    return label;
  }

 private:
  std::uint8_t byte_at(std::uint32_t stream, std::uint32_t item, std::int64_t p) const {
    const Philox4 r = philox_block(seed_, RngPurpose::synthetic, stream, 0, item,
                                   static_cast<std::uint32_t>(p / 4));
    return static_cast<std::uint8_t>(r.v[p % 4] & 0xFFu);
  }

  Shape shape_;
  std::int64_t size_;
  int classes_;
  std::uint64_t seed_;
  std::uint32_t split_stream_;
  std::vector<std::uint8_t> templates_;
};

class LimitedDataset final : public Dataset {
 public:
  LimitedDataset(std::unique_ptr<Dataset> base, std::int64_t limit)
      : base_(std::move(base)), limit_(limit) {}
  std::string description() const override {
    return base_->description() + ", first " + std::to_string(limit_);
  }
  std::int64_t size() const override { return limit_; }
  Shape image_shape() const override { return base_->image_shape(); }
  int classes() const override { return base_->classes(); }
  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    return base_->read(index, pixels);
  }
  std::int32_t read_epoch(std::int64_t index, std::int64_t epoch,
                          std::uint8_t* pixels) const override {
    return base_->read_epoch(index, epoch, pixels);
  }
  BadSamples take_bad_samples(std::int64_t epoch) const override {
    return base_->take_bad_samples(epoch);
  }

 private:
  std::unique_ptr<Dataset> base_;
  std::int64_t limit_;
};

}  // namespace

std::unique_ptr<Dataset> make_synthetic_dataset(Shape shape, std::int64_t size, int classes,
                                                std::uint64_t seed, Split split) {
  return std::make_unique<SyntheticDataset>(std::move(shape), size, classes, seed, split);
}

std::unique_ptr<Dataset> make_limited(std::unique_ptr<Dataset> base, std::int64_t limit) {
  return std::make_unique<LimitedDataset>(std::move(base), limit);
}

}  // namespace distnet::data
