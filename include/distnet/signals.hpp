// Stop requests: SIGTERM, SIGUSR1, SIGHUP and SIGINT set a flag that the trainer reads between
// layers and at the step boundary: a step in progress is abandoned (its update is never applied),
// the ranks agree, rank 0 checkpoints the last completed step, and all exit with kExitStopped.
// A second SIGINT, or SIGUSR2, ends the process at once (exit 130). A SIGTERM that arrives while
// the job is being aborted (abort.hpp: a watchdog's MPI_Abort, here or on a rank of this host)
// is the launcher taking the job down: it is not announced as a stop that saves anything.
//
// Under a launcher (Open MPI's prted/orted or mpirun, srun's slurmstepd, MPICH's hydra proxy:
// the environment names a rank), the parent process at start-up is remembered; if it goes, the
// launcher has gone -- mpirun killed, a node's daemon lost -- and that too is a stop request.
#pragma once

namespace distnet {

constexpr int kExitStopped = 3;  // stopped on request after writing a checkpoint: resume to go on

// Call early in main, before MPI_Init and before any thread starts.
void install_stop_handlers();
bool stop_requested();
// The signal that asked for the stop (0: none; -1: the launcher has gone).
int stop_signal();

// Whether the process that started this one under a launcher (its parent when
// install_stop_handlers ran) has gone since. Always false for a process not started by a launcher
// (a shell that started one process may exit on purpose: nohup, a batch script) and where the
// parent was already init. The trainer calls it just before submitting a checkpoint write and
// skips the write when it is true: nobody is left to resume from it, and a launcher that has
// returned must not find files still changing.
bool launcher_gone();

// What the stop message printed when a stop request arrives may promise: the trainer says
// whether a stop will save a checkpoint (with --checkpoint-dir). Until it does, the message
// promises nothing: "stop requested (SIGTERM): stopping after the last completed step".
void set_stop_saves_checkpoint(bool saves);

// Tests only: as if SIGUSR1 had arrived.
void request_stop_for_testing();

}  // namespace distnet
