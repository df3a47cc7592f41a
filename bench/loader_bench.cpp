// distnet_loader_bench: how fast the input pipeline delivers images, with no training to hide
// behind. Two modes, chosen by the dataset:
//   - fixed-size datasets (fashion-mnist, mnist, cifar10, synthetic): the Loader's images/s for
//     each worker count, with CPU-side resizing (float out) or raw uint8 out (the GPU path);
//       distnet_loader_bench --dataset fashion-mnist --resize 224 --workers 1,2
//   - encoded images (imagefolder, and every dataset dataset_is_image_folder() names): decoded
//     and augmented images/s per core and for the node, with the time split read / decode /
//     augment / copy, for the training and the evaluation transforms (encoded_bench.cpp);
//       distnet_loader_bench --dataset imagefolder --data-dir DIR [--cores 1,2] [--images 512]
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "distnet/data/loader.hpp"
#include "distnet/error.hpp"
#include "encoded_bench.hpp"

namespace po = boost::program_options;
using namespace distnet;
using namespace distnet::data;

namespace {

std::vector<int> int_list(const std::string& text, const char* what) {
  std::vector<int> v;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    int x = 0;
    try {
      x = std::stoi(item);
    } catch (const std::exception&) {
      x = -1;
    }
    DISTNET_CHECK_USAGE(
        x >= 0,
        std::string(what) + ": expected a comma-separated list of counts >= 0, got '" + text + "'");
    v.push_back(x);
  }
  DISTNET_CHECK_USAGE(!v.empty(), std::string(what) + ": empty list");
  return v;
}

void loader_mode(const DatasetOptions& d, int resize, int batch, int batches,
                 const std::vector<int>& workers, bool raw) {
  const auto ds = open_dataset(d, Split::train);
  const ImageTransform transform(ds->image_shape(), {resize, {}, {}});
  const Sampler sampler(ds->size(), batch, true, false, 1);
  std::printf("dataset %s\n", ds->description().c_str());
  std::printf("output %s, batch %d\n",
              raw ? ("raw uint8 " + ds->image_shape().str()).c_str()
                  : ("float " + transform.output_shape().str()).c_str(),
              batch);
  for (const int w : workers) {
    LoaderOptions o;
    o.workers = w;
    Loader loader(*ds, sampler, raw ? nullptr : &transform, o);
    loader.next();  // spin-up outside the timing
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t images = 0;
    for (int i = 0; i < batches; ++i) images += loader.next().size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("workers %d images_per_s %.0f (%.2f ms per batch)\n", o.workers, images / s,
                1000.0 * s / batches);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    DatasetOptions d;
    int resize = 224, batch = 128, batches = 60;
    std::string workers_list = "1,2";
    bool raw = false;
    bench::EncodedBenchOptions e;
    std::string cores_list =
        "1," + std::to_string(std::max(1u, std::thread::hardware_concurrency()));
    std::string transforms = "train,eval";
    po::options_description opts("Usage: distnet_loader_bench [options]");
    // clang-format off
    opts.add_options()
      ("help,h", "show this help")
      ("dataset", po::value(&d.name)->default_value(d.name),
       "fashion-mnist, mnist, cifar10, synthetic; imagefolder or packed (encoded images: per-stage mode)")
      ("data-dir", po::value(&d.dir), "dataset directory (default: the dataset's own)")
      ("resize", po::value(&resize)->default_value(resize),
       "resize to N x N on the CPU; encoded images: the crop size")
      ("batch", po::value(&batch)->default_value(batch), "batch size (one rank)")
      ("batches", po::value(&batches)->default_value(batches), "batches to time per worker count")
      ("workers", po::value(&workers_list)->default_value(workers_list),
       "comma-separated worker counts")
      ("raw", po::bool_switch(&raw), "uint8 out, no CPU transform (the GPU path)")
      ("cores", po::value(&cores_list)->default_value(cores_list),
       "encoded images: comma-separated thread counts, one thread per core")
      ("images", po::value(&e.images)->default_value(e.images),
       "encoded images: images per timed run (files are reused when the split has fewer)")
      ("repeats", po::value(&e.repeats)->default_value(e.repeats),
       "encoded images: timed runs per (transform, cores); the median is reported")
      ("transforms", po::value(&transforms)->default_value(transforms),
       "encoded images: train (RandomResizedCrop + flip), eval (resize + centre crop), or both");
    // clang-format on
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    if (dataset_is_image_folder(d.name)) {
      d.image_size = resize;
      e.batch = batch;
      e.cores = int_list(cores_list, "--cores");
      for (const int c : e.cores) DISTNET_CHECK_USAGE(c >= 1, "--cores: counts must be >= 1");
      e.transforms.clear();
      std::stringstream ss(transforms);
      for (std::string t; std::getline(ss, t, ',');) {
        DISTNET_CHECK_USAGE(
            t == "train" || t == "eval",
            "--transforms: expected train, eval or train,eval, got '" + transforms + "'");
        e.transforms.push_back(t);
      }
      bench::run_encoded_bench(d, e);
      return 0;
    }
    loader_mode(d, resize, batch, batches, int_list(workers_list, "--workers"), raw);
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "distnet_loader_bench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "distnet_loader_bench: error: " << e.what() << "\n";
    return 1;
  }
}
