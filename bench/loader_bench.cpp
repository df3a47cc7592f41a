// distnet_loader_bench: how fast the loader delivers one rank's batches, with no training to
// hide behind. Reports images/s for each worker count, for CPU-side resizing (float out) or raw
// uint8 out (what the GPU path consumes before resizing on the device).
//   distnet_loader_bench --dataset fashion-mnist --resize 224 --workers 1,2
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "distnet/data/loader.hpp"
#include "distnet/error.hpp"

namespace po = boost::program_options;
using namespace distnet;
using namespace distnet::data;

int main(int argc, char** argv) {
  try {
    DatasetOptions d;
    int resize = 224, batch = 128, batches = 60;
    std::string workers_list = "1,2";
    bool raw = false;
    po::options_description opts("Usage: distnet_loader_bench [options]");
    opts.add_options()("help,h", "show this help")("dataset",
                                                   po::value(&d.name)->default_value(d.name),
                                                   "fashion-mnist, mnist, cifar10, synthetic")(
        "data-dir", po::value(&d.dir), "dataset directory (default: the dataset's own)")(
        "resize", po::value(&resize)->default_value(resize), "resize to N x N on the CPU")(
        "batch", po::value(&batch)->default_value(batch), "batch size (one rank)")(
        "batches", po::value(&batches)->default_value(batches), "batches to time per worker count")(
        "workers", po::value(&workers_list)->default_value(workers_list),
        "comma-separated worker counts")("raw", po::bool_switch(&raw),
                                         "uint8 out, no CPU transform (the GPU path)");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    const auto ds = open_dataset(d, Split::train);
    const ImageTransform transform(ds->image_shape(), {resize, {}, {}});
    const Sampler sampler(ds->size(), batch, true, false, 1);
    std::printf("dataset %s\n", ds->description().c_str());
    std::printf("output %s, batch %d\n",
                raw ? ("raw uint8 " + ds->image_shape().str()).c_str()
                    : ("float " + transform.output_shape().str()).c_str(),
                batch);
    std::stringstream ss(workers_list);
    for (std::string item; std::getline(ss, item, ',');) {
      LoaderOptions o;
      o.workers = std::stoi(item);
      Loader loader(*ds, sampler, raw ? nullptr : &transform, o);
      loader.next();  // spin-up outside the timing
      const auto t0 = std::chrono::steady_clock::now();
      std::int64_t images = 0;
      for (int i = 0; i < batches; ++i) images += loader.next().size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("workers %d images_per_s %.0f (%.2f ms per batch)\n", o.workers, images / s,
                  1000.0 * s / batches);
    }
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "distnet_loader_bench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "distnet_loader_bench: error: " << e.what() << "\n";
    return 1;
  }
}
