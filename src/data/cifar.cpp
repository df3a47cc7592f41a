// CIFAR-10, binary version: each record is 1 label byte followed by 3072 pixel bytes (the red,
// green and blue 32x32 planes), so records are already CHW.
#include <string>

#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

constexpr std::int64_t kPixels = 3 * 32 * 32;
constexpr std::int64_t kRecord = 1 + kPixels;

class CifarDataset final : public Dataset {
 public:
  CifarDataset(std::string description, std::vector<FileBytes> files, int classes)
      : description_(std::move(description)), files_(std::move(files)), classes_(classes) {
    for (const FileBytes& f : files_) {
      if (f.size() == 0 || f.size() % kRecord != 0) {
        throw Error(f.path() + ": size " + std::to_string(f.size()) +
                    " bytes is not a positive multiple of the CIFAR record size " +
                    std::to_string(kRecord) + " (1 label + 3072 pixel bytes)");
      }
      const auto records = static_cast<std::int64_t>(f.size()) / kRecord;
      for (std::int64_t r = 0; r < records; ++r) {
        const std::uint8_t label = f.data()[r * kRecord];
        if (label >= classes_) {
          throw Error(f.path() + ": label " + std::to_string(label) + " of record " +
                      std::to_string(r) + " is out of range; expected 0.." +
                      std::to_string(classes_ - 1));
        }
      }
      starts_.push_back(size_);
      size_ += records;
    }
  }

  std::string description() const override {
    return description_ + " (" + std::to_string(size_) + " x 3x32x32)";
  }
  std::int64_t size() const override { return size_; }
  Shape image_shape() const override { return Shape{3, 32, 32}; }
  int classes() const override { return classes_; }
  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    std::size_t f = files_.size() - 1;
    while (starts_[f] > index) --f;
    const std::uint8_t* rec = files_[f].data() + (index - starts_[f]) * kRecord;
    std::copy(rec + 1, rec + kRecord, pixels);
    return rec[0];
  }

 private:
  std::string description_;
  std::vector<FileBytes> files_;
  std::vector<std::int64_t> starts_;
  int classes_;
  std::int64_t size_ = 0;
};

}  // namespace

std::unique_ptr<Dataset> make_cifar_dataset(std::string description, std::vector<FileBytes> files,
                                            int classes) {
  return std::make_unique<CifarDataset>(std::move(description), std::move(files), classes);
}

}  // namespace distnet::data
