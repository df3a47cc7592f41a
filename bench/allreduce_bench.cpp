// distnet_allreduce_bench: the communicator measured as nccl-tests measures NCCL -- for each size,
// warm-up, timed iterations, then a separate verified run; prints time, algbw = bytes / time and
// busbw = algbw * 2(n-1)/n (what each link carries in a ring), and exits non-zero on a wrong sum.
//   mpiexec -n 2 distnet_allreduce_bench --min-bytes 8 --max-bytes 256M
#include <mpi.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "distnet/comm.hpp"
#include "distnet/error.hpp"
#include "distnet/world.hpp"

namespace po = boost::program_options;
using namespace distnet;

namespace {
std::size_t parse_size(const std::string& s) {
  std::size_t pos = 0;
  const double v = std::stod(s, &pos);
  const std::string unit = s.substr(pos);
  const double m = unit.empty()  ? 1
                   : unit == "K" ? 1024.0
                   : unit == "M" ? 1048576.0
                   : unit == "G" ? 1073741824.0
                                 : -1;
  if (m < 0 || v <= 0)
    throw UsageError("size '" + s + "': expected a number with an optional K, M or G");
  return static_cast<std::size_t>(v * m);
}
}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  World world;
  int wrong_total = 0;
  try {
    std::string min_s = "8", max_s = "256M", comm_name = "mpi";
    int warmup = 5, iters = 20;
    bool json = false;
    po::options_description opts("Usage: mpiexec -n N distnet_allreduce_bench [options]");
    opts.add_options()("help,h", "show this help")(
        "min-bytes", po::value(&min_s)->default_value(min_s), "smallest message (e.g. 8, 1K, 4M)")(
        "max-bytes", po::value(&max_s)->default_value(max_s), "largest message")(
        "warmup", po::value(&warmup)->default_value(warmup), "untimed iterations per size")(
        "iters", po::value(&iters)->default_value(iters), "timed iterations per size")(
        "comm", po::value(&comm_name)->default_value(comm_name),
        "communicator: mpi (nccl comes with the NCCL backend)")("json", po::bool_switch(&json),
                                                                "one JSON line per size as well");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (world.is_root()) std::cout << opts << "\n";
      return 0;
    }
    if (comm_name != "mpi") throw UsageError("--comm " + comm_name + ": this build offers mpi");
    const std::size_t lo = parse_size(min_s), hi = parse_size(max_s);
    if (lo > hi || iters < 1 || warmup < 0)
      throw UsageError("need min-bytes <= max-bytes and iters >= 1");
    auto comm = make_mpi_communicator(world.comm());
    const int n = world.size();
    if (world.is_root()) {
      std::printf("# distnet_allreduce_bench: %d ranks, communicator %s, float32 sum, in place\n",
                  n, comm->name().c_str());
      std::printf("# %12s %12s %12s %10s %10s %8s\n", "size(B)", "count", "time(us)", "algbw(GB/s)",
                  "busbw(GB/s)", "#wrong");
    }
    std::vector<float> buf(std::max<std::size_t>(1, hi / sizeof(float)));
    for (std::size_t bytes = std::max<std::size_t>(lo, 4); bytes <= hi; bytes *= 2) {
      const std::size_t count = bytes / sizeof(float);
      for (int i = 0; i < warmup; ++i) comm->allreduce_sum(buf.data(), count);
      comm->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) comm->allreduce_sum(buf.data(), count);
      double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      double worst = 0;  // the slowest rank sets the pace
      MPI_Allreduce(&secs, &worst, 1, MPI_DOUBLE, MPI_MAX, world.comm());
      // Verification, outside the timing: rank r contributes r + 1 (exact in float32).
      std::fill(buf.begin(), buf.begin() + std::ptrdiff_t(count), float(world.rank() + 1));
      comm->allreduce_sum(buf.data(), count);
      const float want = float(n * (n + 1) / 2);
      int wrong = int(std::count_if(buf.begin(), buf.begin() + std::ptrdiff_t(count),
                                    [&](float v) { return v != want; }));
      int all_wrong = 0;
      MPI_Allreduce(&wrong, &all_wrong, 1, MPI_INT, MPI_SUM, world.comm());
      wrong_total += all_wrong;
      const double algbw = double(count * sizeof(float)) / worst / 1e9;
      const double busbw = algbw * 2.0 * (n - 1) / n;
      if (world.is_root()) {
        std::printf("  %12zu %12zu %12.2f %10.3f %10.3f %8d\n", count * sizeof(float), count,
                    worst * 1e6, algbw, busbw, all_wrong);
        if (json)
          std::printf(
              "{\"event\":\"allreduce\",\"ranks\":%d,\"bytes\":%zu,\"time_us\":%.3f,\"algbw_gbs\":%"
              ".4f,"
              "\"busbw_gbs\":%.4f,\"wrong\":%d}\n",
              n, count * sizeof(float), worst * 1e6, algbw, busbw, all_wrong);
      }
      if (bytes > hi / 2) break;
    }
    if (world.is_root())
      std::printf("# %s\n", wrong_total ? "VERIFICATION FAILED" : "all sums verified");
  } catch (const UsageError& e) {
    if (world.is_root()) std::fprintf(stderr, "distnet_allreduce_bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distnet_allreduce_bench: error: %s\n", e.what());
    return 1;
  }
  return wrong_total ? 1 : 0;
}
