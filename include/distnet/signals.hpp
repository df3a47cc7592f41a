// Stop requests: SIGTERM, SIGUSR1 and SIGINT set a flag that the trainer reads at the next step
// boundary (where the ranks agree, checkpoint and exit with kExitStopped). A second SIGINT ends
// the process at once.
#pragma once

namespace distnet {

constexpr int kExitStopped = 3;  // stopped on request after writing a checkpoint: resume to go on

// Call early in main, before MPI_Init and before any thread starts.
void install_stop_handlers();
bool stop_requested();

}  // namespace distnet
