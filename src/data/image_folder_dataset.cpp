// A split of an image folder as an encoded-record source: record i is the i-th listed file.
#include "distnet/data/encoded_source.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

class ImageFolderSource final : public EncodedSource {
 public:
  ImageFolderSource(std::shared_ptr<const ImageFolderList> list, Split split)
      : list_(std::move(list)),
        split_(split == Split::train ? list_->train : list_->val),
        dir_(list_->root + "/" + ImageFolderList::split_dir(split)) {}

  std::string description() const override { return "imagefolder " + dir_; }
  std::int64_t size() const override { return std::int64_t(split_.files.size()); }
  int classes() const override { return int(list_->classes.size()); }
  std::int32_t label(std::int64_t i) const override { return split_.labels[std::size_t(i)]; }
  std::string name(std::int64_t i) const override {
    return dir_ + "/" + split_.files[std::size_t(i)];
  }
  std::vector<std::uint8_t> bytes(std::int64_t i) const override {
    return read_image_file(name(i));
  }

 private:
  std::shared_ptr<const ImageFolderList> list_;
  const ImageFolderSplit& split_;
  std::string dir_;
};

}  // namespace

std::unique_ptr<Dataset> make_image_folder_dataset(std::shared_ptr<const ImageFolderList> list,
                                                   Split split, const ImageFolderOptions& opts) {
  DISTNET_CHECK(list != nullptr, "make_image_folder_dataset: no list");
  return make_encoded_image_dataset(std::make_shared<ImageFolderSource>(std::move(list), split),
                                    split, opts);
}

}  // namespace distnet::data
