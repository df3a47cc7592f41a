// distnet_allreduce_bench: the communicator measured as nccl-tests measures NCCL -- for each size,
// warm-up, timed iterations, then a separate verified run; prints time, algbw = bytes / time and
// busbw = algbw * 2(n-1)/n (what each link carries in a ring), and exits non-zero on a wrong sum.
// --comm nccl measures the NCCL communicator on GPU buffers (one GPU per rank, bound by local
// rank), --comm mpi the MPI one on host buffers; --wire bf16 sends bfloat16 copies.
// --op allgather | reduce_scatter measures the hybrid grid's activation collectives instead, with
// nccl-tests' conventions: the size is the whole output (all-gather) or input (reduce-scatter),
// busbw = algbw * (n-1)/n.
//   mpiexec -n 2 distnet_allreduce_bench --min-bytes 8 --max-bytes 256M [--comm nccl]
//   mpiexec -n 2 distnet_allreduce_bench --op allgather --min-bytes 64K --max-bytes 4M
#include <mpi.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "distnet/comm.hpp"
#include "distnet/error.hpp"
#include "distnet/gpu.hpp"
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
    std::string min_s = "8", max_s = "256M", comm_name = "mpi", wire_name = "fp32",
                op_name = "allreduce";
    int warmup = 5, iters = 20;
    bool json = false;
    po::options_description opts("Usage: mpiexec -n N distnet_allreduce_bench [options]");
    opts.add_options()("help,h", "show this help")(
        "min-bytes", po::value(&min_s)->default_value(min_s), "smallest message (e.g. 8, 1K, 4M)")(
        "max-bytes", po::value(&max_s)->default_value(max_s), "largest message")(
        "warmup", po::value(&warmup)->default_value(warmup), "untimed iterations per size")(
        "iters", po::value(&iters)->default_value(iters), "timed iterations per size")(
        "comm", po::value(&comm_name)->default_value(comm_name),
        "communicator: mpi (host buffers) or nccl (GPU buffers)")(
        "wire", po::value(&wire_name)->default_value(wire_name), "fp32 or bf16 (all-reduce)")(
        "op", po::value(&op_name)->default_value(op_name),
        "allreduce, allgather or reduce_scatter")("json", po::bool_switch(&json),
                                                  "one JSON line per size as well");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (world.is_root()) std::cout << opts << "\n";
      return 0;
    }
    if (comm_name != "mpi" && comm_name != "nccl")
      throw UsageError("--comm must be mpi or nccl, got '" + comm_name + "'");
    if (op_name != "allreduce" && op_name != "allgather" && op_name != "reduce_scatter")
      throw UsageError("--op must be allreduce, allgather or reduce_scatter, got '" + op_name +
                       "'");
    const CollectiveOp op = op_name == "allreduce"   ? CollectiveOp::allreduce
                            : op_name == "allgather" ? CollectiveOp::allgather
                                                     : CollectiveOp::reduce_scatter;
    const Wire wire = parse_wire(wire_name);
    if (wire != Wire::fp32 && op != CollectiveOp::allreduce)
      throw UsageError("--wire bf16 applies to --op allreduce only");
    const std::size_t lo = parse_size(min_s), hi = parse_size(max_s);
    if (lo > hi || iters < 1 || warmup < 0)
      throw UsageError("need min-bytes <= max-bytes and iters >= 1");
    // NCCL: this rank's GPU (local rank modulo the visible ones) and device buffers.
    std::unique_ptr<Backend> be;
    std::unique_ptr<Communicator> comm;
    if (comm_name == "nccl") {
      std::string why;
      const int visible = gpu::usable_devices(&why);
      if (visible == 0) throw UsageError("--comm nccl: " + why);
      gpu::CudaOptions o;
      o.device = world.local_rank() % visible;
      be = gpu::make_cuda_backend(o);
      comm = gpu::make_nccl_communicator(world.comm(), *be, 0, "");
    } else {
      be = make_cpu_backend();
      comm = make_mpi_communicator(world.comm());
    }
    const int n = world.size();
    if (world.is_root()) {
      if (op == CollectiveOp::allreduce)
        std::printf(
            "# distnet_allreduce_bench: %d ranks, communicator %s on %s, float32 sum (%s on "
            "the wire), in place\n",
            n, comm->name().c_str(), be->description().c_str(), wire_name.c_str());
      else
        std::printf(
            "# distnet_allreduce_bench: %d ranks, communicator %s on %s, float32 %s; size: the "
            "whole %s, busbw = algbw * (n-1)/n\n",
            n, comm->name().c_str(), be->description().c_str(), collective_name(op),
            op == CollectiveOp::allgather ? "output" : "input");
      std::printf("# %12s %12s %12s %10s %10s %8s\n", "size(B)", "count", "time(us)", "algbw(GB/s)",
                  "busbw(GB/s)", "#wrong");
    }
    std::vector<float> host(std::max<std::size_t>(1, hi / sizeof(float)));
    Buffer dev = be->allocate(host.size() * sizeof(float));
    auto* buf = static_cast<float*>(dev.data());
    be->upload(buf, host.data(), host.size() * sizeof(float));
    Buffer out = be->allocate(op == CollectiveOp::reduce_scatter ? host.size() * sizeof(float) : 1);
    // Iterations are queued back to back (on the GPU: without a host wait in between), then the
    // device is synchronised: time per iteration as nccl-tests reports it. All-gather and
    // reduce-scatter take `count` floats in all, count / n per rank (in place for the gather).
    const std::size_t r = std::size_t(world.rank());
    auto run = [&](std::size_t count, int times) {
      const std::size_t piece = count / std::size_t(n);
      for (int i = 0; i < times; ++i) {
        if (op == CollectiveOp::allreduce)
          comm->allreduce_sum_async(buf, count, wire);
        else if (op == CollectiveOp::allgather)
          comm->allgather(buf + r * piece, buf, piece);
        else
          comm->reduce_scatter_sum(buf, static_cast<float*>(out.data()), piece);
      }
      comm->wait_pending();
      be->synchronize();
    };
    for (std::size_t bytes = std::max<std::size_t>(lo, 4); bytes <= hi; bytes *= 2) {
      std::size_t count = bytes / sizeof(float);
      if (op != CollectiveOp::allreduce) count -= count % std::size_t(n);  // equal pieces
      if (count == 0) continue;
      run(count, warmup);
      comm->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      run(count, iters);
      double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      double worst = 0;  // the slowest rank sets the pace
      MPI_Allreduce(&secs, &worst, 1, MPI_DOUBLE, MPI_MAX, world.comm());
      // Verification, outside the timing: rank r contributes r + 1 (exact in float32 and bf16
      // for the rank counts one runs this with); a gathered piece k holds k + 1.
      const std::size_t piece = count / std::size_t(n);
      std::fill(host.begin(), host.begin() + std::ptrdiff_t(count), float(world.rank() + 1));
      be->upload(buf, host.data(), count * sizeof(float));
      run(count, 1);
      const std::size_t got = op == CollectiveOp::reduce_scatter ? piece : count;
      be->download(host.data(), op == CollectiveOp::reduce_scatter ? out.data() : buf,
                   got * sizeof(float));
      int wrong = 0;
      for (std::size_t i = 0; i < got; ++i) {
        const float want =
            op == CollectiveOp::allgather ? float(i / piece + 1) : float(n * (n + 1) / 2);
        wrong += host[i] != want;
      }
      int all_wrong = 0;
      MPI_Allreduce(&wrong, &all_wrong, 1, MPI_INT, MPI_SUM, world.comm());
      wrong_total += all_wrong;
      const double algbw = double(count * sizeof(float)) / worst / 1e9;
      const double busbw = algbw * (op == CollectiveOp::allreduce ? 2.0 : 1.0) * (n - 1) / n;
      if (world.is_root()) {
        std::printf("  %12zu %12zu %12.2f %10.3f %10.3f %8d\n", count * sizeof(float), count,
                    worst * 1e6, algbw, busbw, all_wrong);
        if (json)
          std::printf(
              "{\"event\":\"%s\",\"ranks\":%d,\"bytes\":%zu,\"time_us\":%.3f,\"algbw_gbs\":%"
              ".4f,"
              "\"busbw_gbs\":%.4f,\"wrong\":%d}\n",
              op_name.c_str(), n, count * sizeof(float), worst * 1e6, algbw, busbw, all_wrong);
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
