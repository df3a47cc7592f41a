// Writes an ImageNet-like JPEG tree for the loader benchmark (tests/data/photo_folder_maker.hpp):
//   distnet_make_photo_folder OUT TRAIN_PER_CLASS VAL_PER_CLASS [QUALITY [SEED]]
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "data/photo_folder_maker.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s OUT TRAIN_PER_CLASS VAL_PER_CLASS [QUALITY [SEED]]\n", argv[0]);
    return 2;
  }
  distnet::testkit::PhotoSpec spec;
  spec.train_per_class = std::atoi(argv[2]);
  spec.val_per_class = std::atoi(argv[3]);
  if (argc >= 5) spec.quality = std::atoi(argv[4]);
  if (argc >= 6) spec.seed = std::uint32_t(std::atoi(argv[5]));
  if (spec.train_per_class < 1 || spec.val_per_class < 1 || spec.quality < 1 ||
      spec.quality > 100) {
    std::fprintf(stderr, "%s: error: need per-class counts >= 1 and a quality in 1..100\n",
                 argv[0]);
    return 2;
  }
  try {
    distnet::testkit::make_photo_folder(argv[1], spec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_make_photo_folder: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
