#include "distnet/world.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "distnet/abort.hpp"
#include "distnet/mpi_check.hpp"
#include "distnet/progress.hpp"

namespace distnet {

MpiSession::MpiSession(int* argc, char*** argv) {
  // The loader's threads never call MPI; a checkpoint writer or watchdog thread may, hence
  // MULTIPLE when the library offers it. FUNNELED is the least distnet accepts: then only the
  // main thread calls MPI, and a watchdog that must abort the job exits the process instead of
  // calling MPI_Abort (abort.hpp, abort_job; docs/reliability.md).
  DISTNET_CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided_));
  if (provided_ < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    throw Error("the MPI library offers no thread support (MPI_THREAD_FUNNELED or better needed)");
  }
  note_mpi_thread_level(provided_);
  // Errors come back as return codes, which DISTNET_CHECK_MPI turns into exceptions.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  // Where each rank has got to, readable by the others without a collective: the watchdog
  // names the ranks a timed-out collective waits for (off, silently, where MPI cannot make it).
  progress::open_board(MPI_COMM_WORLD);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  progress::close_board();
  MPI_Finalize();
}

World::World(MPI_Comm comm) : comm_(comm) {
  DISTNET_CHECK_MPI(MPI_Comm_rank(comm, &rank_));
  DISTNET_CHECK_MPI(MPI_Comm_size(comm, &size_));
  MPI_Comm local;
  DISTNET_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  host_ = name;
}

std::vector<RankInfo> World::gather_ranks(const std::string& my_device) const {
  constexpr int kField = 128;
  char mine[2 * kField] = {};
  std::strncpy(mine, host_.c_str(), kField - 1);
  std::strncpy(mine + kField, my_device.c_str(), kField - 1);
  std::vector<char> all(static_cast<std::size_t>(2 * kField * size_));
  int local_ranks[1] = {local_rank_};
  std::vector<int> locals(static_cast<std::size_t>(size_));
  DISTNET_CHECK_MPI(
      MPI_Allgather(mine, 2 * kField, MPI_CHAR, all.data(), 2 * kField, MPI_CHAR, comm_));
  DISTNET_CHECK_MPI(MPI_Allgather(local_ranks, 1, MPI_INT, locals.data(), 1, MPI_INT, comm_));
  std::vector<RankInfo> out;
  for (int r = 0; r < size_; ++r) {
    const char* p = all.data() + 2 * kField * r;
    out.push_back({r, std::string(p), locals[std::size_t(r)], std::string(p + kField)});
  }
  return out;
}

int launcher_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* s = std::getenv(v)) return std::atoi(s);
  }
  return 0;
}

}  // namespace distnet
