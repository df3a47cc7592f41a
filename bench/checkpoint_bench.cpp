// distnet_checkpoint_bench: how long saving and loading an AlexNet checkpoint takes, beside the
// disk's own sequential write bandwidth (the same number of bytes with write() + fsync).
//   distnet_checkpoint_bench --dir /scratch/me --repeat 3
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "distnet/checkpoint.hpp"

namespace po = boost::program_options;
using namespace distnet;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double raw_write_seconds(const std::string& path, std::size_t bytes) {
  std::vector<char> block(8 << 20, 1);
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(path + ": cannot create");
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(block.size(), bytes - done);
    if (::write(fd, block.data(), n) != static_cast<ssize_t>(n))
      throw Error(path + ": write failed");
    done += n;
  }
  ::fsync(fd);
  ::close(fd);
  const double s = since(t0);
  ::unlink(path.c_str());
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    std::string dir = "/tmp", model_name = "alexnet";
    int resize = 224, repeat = 3;
    po::options_description opts("Usage: distnet_checkpoint_bench [options]");
    opts.add_options()("help,h", "show this help")("dir", po::value(&dir)->default_value(dir),
                                                   "where to write")(
        "model", po::value(&model_name)->default_value(model_name), "network")(
        "resize", po::value(&resize)->default_value(resize), "input size")(
        "repeat", po::value(&repeat)->default_value(repeat), "repetitions");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    auto be = make_cpu_backend();
    ModelConfig mc;
    mc.name = model_name, mc.input = Shape{1, resize, resize};
    Model model(mc, *be, 1);
    model.initialize({});
    CheckpointMeta meta;
    meta.model = mc.name, meta.input = mc.input, meta.classes = mc.classes, meta.global_batch = 128;
    const std::string path = dir + "/distnet-bench.h5";
    const double mb = 2.0 * model.num_trainable() * sizeof(float) / 1e6;  // parameters + momentum
    std::printf("model %s: %.1f MB of parameters and momentum, directory %s\n", mc.name.c_str(), mb,
                dir.c_str());
    for (int r = 0; r < repeat; ++r) {
      auto t0 = Clock::now();
      Snapshot snap = take_snapshot(model, meta);
      const double copy = since(t0);
      t0 = Clock::now();
      write_checkpoint(snap, path);
      const double write = since(t0);
      t0 = Clock::now();
      load_checkpoint(path, model, false);
      const double read = since(t0);
      const double raw = raw_write_seconds(dir + "/distnet-bench.raw", std::size_t(mb * 1e6));
      std::printf(
          "host copy (training stall) %.3f s | write %.3f s (%.0f MB/s) | read %.3f s (%.0f MB/s) "
          "| "
          "disk write+fsync %.3f s (%.0f MB/s)\n",
          copy, write, mb / write, read, mb / read, raw, mb / raw);
    }
    ::unlink(path.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "distnet_checkpoint_bench: error: " << e.what() << "\n";
    return 1;
  }
}
