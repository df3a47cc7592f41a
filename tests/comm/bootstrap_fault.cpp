// Stand-ins for the NCCL set-up steps, to check that a failure on one rank can never hang the
// others (tests/comm/test_bootstrap_fault.sh runs it under mpiexec):
//   bootstrap_fault ok          every rank gets rank 0's token; all exit 0
//   bootstrap_fault token-fails making the token throws on rank 0 (as ncclGetUniqueId does with
//                               no usable network interface): every rank exits 1 at once,
//                               naming rank 0's error
//   bootstrap_fault init-fails  the initialisation throws on the last rank at once while the
//                               others wait in it forever (as NCCL's bootstrap waits for a peer
//                               that never comes): the deadline (--comm-timeout, here 3 s) ends
//                               the job
// After the initialisation every rank joins an agreement, as alexnet's set-up does.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "distnet/bootstrap.hpp"
#include "distnet/error.hpp"

using namespace distnet;

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string mode = argc > 1 ? argv[1] : "ok";
  const std::string who = "[rank " + std::to_string(rank) + "] ";
  int code = 0;
  std::string message;
  try {
    const std::vector<char> token = broadcast_token(
        MPI_COMM_WORLD,
        [&]() -> std::vector<char> {
          if (mode == "token-fails") throw Error("no usable network interface (stand-in)");
          return {'i', 'd', '4', '2'};
        },
        "set-up (stand-in for ncclGetUniqueId)");
    if (std::string(token.begin(), token.end()) != "id42") throw Error("wrong token");
    run_with_deadline(
        [&] {
          if (mode != "init-fails") return;
          if (rank == size - 1) throw Error("initialisation failed here (stand-in)");
          std::this_thread::sleep_for(std::chrono::hours(1));  // waits for the failed peer
        },
        3.0, who, "initialisation (stand-in for ncclCommInitRank)");
  } catch (const std::exception& e) {
    code = 1;
    message = e.what();
  }
  int worst = 0;
  MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (code) std::fprintf(stderr, "%salexnet: error: %s\n", who.c_str(), message.c_str());
  MPI_Finalize();
  return worst;
}
