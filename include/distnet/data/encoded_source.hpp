// Encoded images (JPEG or PNG bytes, as stored) by record index, with labels: what an image folder
// and packed HDF5 shards have in common. One Dataset over any source (make_encoded_image_dataset)
// decodes, augments and applies the --on-bad-image rule, so `--dataset imagefolder` and
// `--dataset packed` of the same tree produce the same samples, bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distnet/data/dataset.hpp"
#include "distnet/data/image_folder.hpp"

namespace distnet::data {

class EncodedSource {
 public:
  virtual ~EncodedSource() = default;
  virtual std::string description() const = 0;  // "imagefolder DIR/train", "packed OUT (train)"
  virtual std::int64_t size() const = 0;
  virtual int classes() const = 0;
  virtual std::int32_t label(std::int64_t i) const = 0;
  // How messages name record i: the source image's path (and, for shards, where it is stored).
  virtual std::string name(std::int64_t i) const = 0;
  // Record i's encoded bytes. Called by several loader threads at once; throws distnet::Error
  // starting with name(i) when they cannot be read.
  virtual std::vector<std::uint8_t> bytes(std::int64_t i) const = 0;
};

// The records of `source` as a Dataset of 3 x size x size uint8 images (training: random crop and
// flip; val: centre crop), with bad images refused or replaced according to opts.on_bad.
std::unique_ptr<Dataset> make_encoded_image_dataset(std::shared_ptr<const EncodedSource> source,
                                                    Split split, const ImageFolderOptions& opts);

}  // namespace distnet::data
