// Setting up a communicator that needs every rank (NCCL's: a unique id made by rank 0, then an
// initialisation in which each rank waits for all the others) without any way to hang:
//  - rank 0 makes the token and sends it together with whether that worked, so when it fails
//    every rank learns why and fails too, instead of waiting for a token that never comes;
//  - the initialisation runs under a deadline: a rank still inside it after --comm-timeout
//    (because a peer failed before joining, or the network is wrong) says so and aborts the job.
// Not tied to NCCL, so the failure paths are tested on the CPU with stand-ins.
#pragma once

#include <mpi.h>

#include <functional>
#include <string>
#include <vector>

namespace distnet {

// Collective over `comm`. Rank 0 calls `make` and every rank returns its bytes. If `make` throws
// on rank 0, every rank throws an Error carrying rank 0's message ("rank 0 (host): ...").
std::vector<char> broadcast_token(MPI_Comm comm, const std::function<std::vector<char>()>& make,
                                  const std::string& what);

// Runs `init` on this rank. If it has not returned after `timeout_s` seconds (0: no limit), prints
// "<who>alexnet: error: <what> did not complete within --comm-timeout <t> s; ..." and calls
// MPI_Abort, ending every rank. Exceptions from `init` pass through unchanged.
void run_with_deadline(const std::function<void()>& init, double timeout_s, const std::string& who,
                       const std::string& what);

}  // namespace distnet
