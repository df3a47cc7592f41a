// Writes a Fashion-MNIST image folder for the command-line tests and measured runs:
//   distnet_make_image_folder OUT TRAIN_PER_CLASS VAL_PER_CLASS [MIN_SIZE MAX_SIZE [SEED]]
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "data/image_folder_maker.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s OUT TRAIN_PER_CLASS VAL_PER_CLASS [MIN_SIZE MAX_SIZE [SEED]]\n",
                 argv[0]);
    return 2;
  }
  distnet::testkit::FolderSpec spec;
  spec.train_per_class = std::atoi(argv[2]);
  spec.val_per_class = std::atoi(argv[3]);
  if (argc >= 6) spec.min_size = std::atoi(argv[4]), spec.max_size = std::atoi(argv[5]);
  if (argc >= 7) spec.seed = std::uint32_t(std::atoi(argv[6]));
  try {
    distnet::testkit::make_fashion_folder(argv[1], spec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_make_image_folder: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
