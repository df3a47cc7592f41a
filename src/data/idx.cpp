// IDX files as used by MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a type code
// 0x08 for uint8, the number of dimensions), the dimensions as big-endian uint32, then the data.
#include <string>

#include "distnet/data/dataset.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

std::string hex(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Validates the header of an IDX file of uint8 with `ndims` dimensions; returns the dimensions.
std::vector<std::uint64_t> read_header(const FileBytes& f, std::uint32_t magic, int ndims,
                                       const char* what) {
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (f.size() < header) {
    throw Error(f.path() + ": truncated " + what + " file: expected an IDX header of " +
                std::to_string(header) + " bytes, found " + std::to_string(f.size()) + " bytes");
  }
  const std::uint32_t found = be32(f.data());
  if (found != magic) {
    throw Error(f.path() + ": not an IDX " + what + " file: expected magic " + hex(magic) +
                ", found " + hex(found));
  }
  std::vector<std::uint64_t> dims;
  std::uint64_t bytes = 1;
  for (int i = 0; i < ndims; ++i) {
    dims.push_back(be32(f.data() + 4 + 4 * i));
    bytes *= dims.back();
  }
  if (f.size() != header + bytes) {
    std::string shape;
    for (std::size_t i = 0; i < dims.size(); ++i) shape += (i ? "x" : "") + std::to_string(dims[i]);
    throw Error(f.path() + ": " + (f.size() < header + bytes ? "truncated" : "oversized") + " " +
                what + " file: header says " + shape + " (" + std::to_string(header + bytes) +
                " bytes), found " + std::to_string(f.size()) + " bytes");
  }
  return dims;
}

class IdxDataset final : public Dataset {
 public:
  IdxDataset(std::string description, FileBytes images, FileBytes labels, int classes)
      : description_(std::move(description)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        classes_(classes) {
    const auto idims = read_header(images_, 0x00000803, 3, "image");
    const auto ldims = read_header(labels_, 0x00000801, 1, "label");
    if (idims[0] != ldims[0]) {
      throw Error(images_.path() + ": " + std::to_string(idims[0]) + " images but " +
                  labels_.path() + " has " + std::to_string(ldims[0]) +
                  " labels; expected the same count");
    }
    if (idims[1] == 0 || idims[2] == 0) {
      throw Error(images_.path() + ": images of " + std::to_string(idims[1]) + "x" +
                  std::to_string(idims[2]) + " pixels; expected at least 1x1");
    }
    size_ = static_cast<std::int64_t>(idims[0]);
    shape_ = Shape{1, static_cast<std::int64_t>(idims[1]), static_cast<std::int64_t>(idims[2])};
    pixels_ = images_.data() + 16;
    label_bytes_ = labels_.data() + 8;
    for (std::int64_t i = 0; i < size_; ++i) {
      if (label_bytes_[i] >= classes_) {
        throw Error(labels_.path() + ": label " + std::to_string(label_bytes_[i]) + " of sample " +
                    std::to_string(i) + " is out of range; expected 0.." +
                    std::to_string(classes_ - 1));
      }
    }
  }

  std::string description() const override {
    return description_ + " (" + std::to_string(size_) + " x " + shape_.str() + ")";
  }
  std::int64_t size() const override { return size_; }
  Shape image_shape() const override { return shape_; }
  int classes() const override { return classes_; }
  std::int32_t read(std::int64_t index, std::uint8_t* pixels) const override {
    const std::int64_t per = shape_.numel();
    std::copy(pixels_ + index * per, pixels_ + (index + 1) * per, pixels);
    return label_bytes_[index];
  }

 private:
  std::string description_;
  FileBytes images_, labels_;
  int classes_;
  std::int64_t size_ = 0;
  Shape shape_;
  const std::uint8_t* pixels_ = nullptr;
  const std::uint8_t* label_bytes_ = nullptr;
};

}  // namespace

std::unique_ptr<Dataset> make_idx_dataset(std::string description, FileBytes images,
                                          FileBytes labels, int classes) {
  return std::make_unique<IdxDataset>(std::move(description), std::move(images), std::move(labels),
                                      classes);
}

}  // namespace distnet::data
