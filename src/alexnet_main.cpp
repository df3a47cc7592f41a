// alexnet: the distnet command. This stage of the project offers model inspection
// (--print-shapes) and version/build information; training is added by the trainer.
#include <hdf5.h>
#include <mpi.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "distnet/backend.hpp"
#include "distnet/gpu.hpp"
#include "distnet/model.hpp"
#include "distnet/version.hpp"

namespace po = boost::program_options;
using namespace distnet;

namespace {

std::string with_commas(std::int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

void print_version() {
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  MPI_Get_library_version(mpi, &len);  // allowed before MPI_Init
  std::string mpi_line(mpi, static_cast<std::size_t>(len));
  mpi_line = mpi_line.substr(0, mpi_line.find_first_of(",\n"));
  unsigned h5maj = 0, h5min = 0, h5rel = 0;
  H5get_libversion(&h5maj, &h5min, &h5rel);
  std::cout << "distnet " << DISTNET_VERSION << "\n"
            << "  cpu backend: " << make_cpu_backend()->description() << "\n"
            << "  gpu backend: " << gpu::library_versions() << "\n"
            << "  MPI: " << mpi_line << "\n"
            << "  HDF5: " << h5maj << "." << h5min << "." << h5rel << "\n";
}

void print_shapes(const ModelConfig& cfg) {
  const auto layers = build_layers(cfg);
  std::printf("model %s, input %s, %d classes\n", cfg.name.c_str(), cfg.input.str().c_str(),
              cfg.classes);
  std::printf("%-10s %-30s %-14s %14s\n", "layer", "kind", "output", "parameters");
  std::int64_t total = 0, state = 0;
  for (const auto& l : layers) {
    std::int64_t n = 0;
    for (const auto& p : l->param_specs()) (p.trainable() ? n : state) += p.shape.numel();
    total += n;
    std::printf("%-10s %-30s %-14s %14s\n", l->name().c_str(), l->kind().c_str(),
                l->output_shape().str().c_str(), with_commas(n).c_str());
  }
  std::printf("total parameters: %s\n", with_commas(total).c_str());
  if (state) std::printf("running statistics (not trained): %s\n", with_commas(state).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    ModelConfig model;
    int channels = 1, resize = 224;
    po::options_description general("General");
    general.add_options()("help,h", "show this help and exit")(
        "version", "show versions of distnet and the libraries it uses, then exit")(
        "print-shapes", "print each layer's output shape and parameter count, then exit");
    po::options_description model_opts("Model");
    model_opts.add_options()("model", po::value(&model.name)->default_value(model.name),
                             "network: alexnet, alexnet-nopad, alexnet-bn, lenet")(
        "channels", po::value(&channels)->default_value(channels),
        "input channels (1 for Fashion-MNIST/MNIST, 3 for CIFAR-10)")(
        "resize", po::value(&resize)->default_value(resize),
        "input images are resized to resize x resize")(
        "classes", po::value(&model.classes)->default_value(model.classes), "number of classes")(
        "dropout", po::value(&model.dropout)->default_value(model.dropout),
        "dropout probability of the dense layers");
    po::options_description all("Usage: alexnet [options]");
    all.add(general).add(model_opts);

    po::variables_map vm;
    try {
      po::store(po::parse_command_line(argc, argv, all), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      throw UsageError(e.what());
    }
    if (vm.count("help")) {
      std::cout << all << "\n";
      return 0;
    }
    if (vm.count("version")) {
      print_version();
      return 0;
    }
    DISTNET_CHECK_USAGE(channels >= 1,
                        "--channels must be at least 1, got " + std::to_string(channels));
    DISTNET_CHECK_USAGE(resize >= 1, "--resize must be at least 1, got " + std::to_string(resize));
    model.input = Shape{channels, resize, resize};
    if (vm.count("print-shapes")) {
      print_shapes(model);
      return 0;
    }
    build_layers(model);  // validates the model against the input before reporting
    throw UsageError("nothing to do: this build offers --print-shapes and --version (see --help)");
  } catch (const UsageError& e) {
    std::cerr << "alexnet: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "alexnet: error: " << e.what() << "\n";
    return 1;
  }
}
