// alexnet-pack: an image folder into HDF5 shards, for --dataset packed (docs/packed-shards.md).
//   mpirun -np K alexnet-pack SRC OUT      srun -n K alexnet-pack SRC OUT
// Reads top to bottom: options, the listing (rank 0 walks SRC and broadcasts it), the files'
// sizes (each rank stats a contiguous range), the plan (the same on every rank), each rank's
// contiguous block of shards (finished ones kept), the agreement, and rank 0's manifest.
#include <mpi.h>
#include <sys/stat.h>

#include <boost/program_options.hpp>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include "distnet/data/packer.hpp"
#include "distnet/error.hpp"
#include "distnet/version.hpp"
#include "distnet/world.hpp"

using namespace distnet;
using namespace distnet::data;
namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

struct PackOptions {
  std::string src, out, on_bad_image = "error";
  std::int64_t shard_mb = 1024, shard_records = 0;
  bool help = false;
  std::string help_text;
};

PackOptions parse_options(int argc, char** argv) {
  PackOptions o;
  po::options_description opts(
      "alexnet-pack SRC OUT: packs the image folder SRC (SRC/train/<class>/*.jpg|png, "
      "SRC/val/...)\n"
      "into HDF5 shard files OUT/train-NNNNN.h5, OUT/val-NNNNN.h5 and OUT/manifest.txt, for\n"
      "`alexnet --dataset packed --data-dir OUT`. The encoded files are stored unchanged.\n"
      "Parallel: `mpirun -np K alexnet-pack SRC OUT` or `srun -n K alexnet-pack SRC OUT` (each\n"
      "rank packs a contiguous block of shards). Resumable: rerun the same command; finished\n"
      "shards are kept, the rest packed again, and the manifest is written last.\n"
      "See docs/packed-shards.md.\n\nOptions");
  opts.add_options()                         //
      ("help,h", "show this help and exit")  //
      ("shard-mb", po::value(&o.shard_mb)->default_value(o.shard_mb),
       "a shard holds at most this many MiB of encoded images (a larger file gets a shard of its "
       "own); each packing rank holds one shard in memory")  //
      ("shard-records", po::value(&o.shard_records)->default_value(o.shard_records),
       "and at most this many images (0: no limit)")  //
      ("on-bad-image", po::value(&o.on_bad_image)->default_value(o.on_bad_image),
       "a file that cannot be read or whose header is not a valid JPEG/PNG (or is above the "
       "pixel limit): error (stop, naming it) or skip (leave it out; the manifest lists it)");
  po::options_description hidden;
  hidden.add_options()("src", po::value(&o.src))("out", po::value(&o.out));
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("src", 1).add("out", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  std::ostringstream help;
  help << opts;
  o.help_text = help.str();
  o.help = vm.count("help") > 0;
  if (o.help) return o;
  if (o.src.empty() || o.out.empty())
    throw UsageError("give the image folder and the output directory: alexnet-pack SRC OUT");
  if (o.shard_mb < 1 || o.shard_mb > (1 << 20))
    throw UsageError("--shard-mb must be between 1 and 1048576 (1 TiB), got " +
                     std::to_string(o.shard_mb));
  if (o.shard_records < 0)
    throw UsageError("--shard-records must be >= 0, got " + std::to_string(o.shard_records));
  if (o.on_bad_image != "error" && o.on_bad_image != "skip")
    throw UsageError("--on-bad-image must be one of error, skip, got '" + o.on_bad_image + "'");
  return o;
}

std::string prefix(const World& w) {
  return w.size() > 1 ? "[rank " + std::to_string(w.rank()) + " " + w.host() + "] " : "";
}

// Runs `step` on this rank and agrees with the others: the worst exit code. Every rank that
// failed says why, in one line.
int phase(const World& world, const std::function<void()>& step) {
  int code = kExitOk;
  try {
    step();
  } catch (const UsageError& e) {
    code = kExitUsage;
    std::fprintf(stderr, "%salexnet-pack: error: %s\n", prefix(world).c_str(), e.what());
  } catch (const std::exception& e) {
    code = kExitError;
    std::fprintf(stderr, "%salexnet-pack: error: %s\n", prefix(world).c_str(), e.what());
  }
  std::fflush(stderr);
  int worst = 0;
  MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, world.comm());
  return worst;
}

std::string broadcast_string(const World& world, std::string text) {
  std::uint64_t n = text.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, world.comm());
  text.resize(n);
  MPI_Bcast(text.data(), int(n), MPI_CHAR, 0, world.comm());  // lists under 2 GiB
  return text;
}

// Every file's size in bytes (0 when it cannot be stat'ed: the packing step names it). Rank r
// stats a contiguous range; all ranks get all sizes.
std::vector<std::int64_t> file_sizes(const World& world, const std::vector<std::string>& paths) {
  const std::int64_t n = std::int64_t(paths.size()), k = world.size();
  std::vector<int> counts(static_cast<std::size_t>(k)), displs(static_cast<std::size_t>(k));
  for (std::int64_t r = 0; r < k; ++r) {
    displs[std::size_t(r)] = int(r * n / k);
    counts[std::size_t(r)] = int((r + 1) * n / k - r * n / k);
  }
  const std::int64_t lo = displs[std::size_t(world.rank())], m = counts[std::size_t(world.rank())];
  std::vector<std::int64_t> mine(static_cast<std::size_t>(m)), all(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < m; ++i) {
    struct stat st {};
    mine[std::size_t(i)] = ::stat(paths[std::size_t(lo + i)].c_str(), &st) == 0 ? st.st_size : 0;
  }
  MPI_Allgatherv(mine.data(), int(m), MPI_INT64_T, all.data(), counts.data(), displs.data(),
                 MPI_INT64_T, world.comm());
  return all;
}

int pack(const PackOptions& o, const World& world) {
  std::string listing;
  if (int c = phase(world,
                    [&] {
                      if (!world.is_root()) return;
                      // The source by its absolute path: shards and messages name it from any
                      // directory.
                      std::string src =
                          std::filesystem::absolute(o.src).lexically_normal().string();
                      while (src.size() > 1 && src.back() == '/') src.pop_back();
                      listing = scan_image_folder(src).serialize();
                      std::filesystem::create_directories(o.out);
                      std::filesystem::remove(o.out + "/" + kManifestName);  // written again, last
                    });
      c != kExitOk)
    return c;
  const ImageFolderList list =
      ImageFolderList::parse(broadcast_string(world, listing), "the image list from rank 0");

  std::vector<ShardPlan> plans;
  std::vector<std::int64_t> sizes[2];
  for (Split s : {Split::train, Split::test}) {
    const ImageFolderSplit& sp = s == Split::train ? list.train : list.val;
    std::vector<std::string> paths;
    for (const auto& f : sp.files)
      paths.push_back(list.root + "/" + ImageFolderList::split_dir(s) + "/" + f);
    sizes[int(s)] = file_sizes(world, paths);
    const auto p = plan_shards(s, sizes[int(s)], o.shard_mb << 20, o.shard_records);
    plans.insert(plans.end(), p.begin(), p.end());
  }

  // Rank r packs shards [r S / K, (r + 1) S / K): a contiguous range of files.
  const std::size_t n = plans.size(), k = std::size_t(world.size()), r = std::size_t(world.rank());
  std::int64_t kept = 0, packed = 0, records = 0;
  const int code = phase(world, [&] {
    for (std::size_t i = r * n / k; i < (r + 1) * n / k; ++i) {
      const ShardPlan& p = plans[i];
      const ShardCheck c = check_shard(o.out, p, list, sizes[int(p.split)]);
      if (c.complete) {
        ++kept;
        continue;
      }
      if (!c.problem.empty()) {  // a shard file there, but damaged, unfinished or outdated
        std::fprintf(stderr, "%salexnet-pack: warning: %s; packing it again\n",
                     prefix(world).c_str(), c.problem.c_str());
        std::fflush(stderr);
      }
      records += pack_shard(o.out, p, list, o.on_bad_image == "skip");
      ++packed;
    }
  });
  std::int64_t mine[2] = {kept, packed}, sum[2] = {0, 0};
  MPI_Reduce(mine, sum, 2, MPI_INT64_T, MPI_SUM, 0, world.comm());
  if (code != kExitOk) {
    if (world.is_root())
      std::fprintf(stderr,
                   "alexnet-pack: %lld shard(s) finished, kept for a rerun; no manifest written\n",
                   static_cast<long long>(sum[0] + sum[1]));
    return code;
  }
  return phase(world, [&] {
    if (!world.is_root()) return;
    const PackedManifest m = collect_manifest(o.out, list, plans);
    write_file_atomic(o.out + "/" + kManifestName, m.serialize());
    for (const PackedSplit* s : {&m.train, &m.val})
      for (std::size_t i = 0; i < s->skipped.size(); ++i)
        if (i < 5)
          std::fprintf(stderr, "alexnet-pack: warning: skipped %s\n", s->skipped[i].c_str());
    std::printf(
        "%s: %lld train + %lld val images in %zu shards (%lld packed now, %lld kept), "
        "%lld bytes; %zu bad file(s) skipped\n",
        (o.out + "/" + kManifestName).c_str(), static_cast<long long>(m.train.records),
        static_cast<long long>(m.val.records), plans.size(), static_cast<long long>(sum[1]),
        static_cast<long long>(sum[0]), static_cast<long long>(m.train.bytes + m.val.bytes),
        m.train.skipped.size() + m.val.skipped.size());
  });
}

}  // namespace

int main(int argc, char** argv) {
  PackOptions o;
  try {
    o = parse_options(argc, argv);
    if (o.help) {
      std::cout << o.help_text << "\n";
      return kExitOk;
    }
  } catch (const UsageError& e) {
    if (launcher_rank() == 0) std::fprintf(stderr, "alexnet-pack: error: %s\n", e.what());
    return kExitUsage;
  }
  try {
    MpiSession mpi(&argc, &argv);
    World world;
    return pack(o, world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alexnet-pack: error: %s\n", e.what());
    return kExitError;
  }
}
