// Stop requests: SIGTERM, SIGUSR1 and SIGINT set a flag that the trainer reads between layers and
// at the step boundary: a step in progress is abandoned (its update is never applied), the ranks
// agree, rank 0 checkpoints the last completed step, and all exit with kExitStopped. A second
// SIGINT, or SIGUSR2, ends the process at once (exit 130).
#pragma once

namespace distnet {

constexpr int kExitStopped = 3;  // stopped on request after writing a checkpoint: resume to go on

// Call early in main, before MPI_Init and before any thread starts.
void install_stop_handlers();
bool stop_requested();

}  // namespace distnet
