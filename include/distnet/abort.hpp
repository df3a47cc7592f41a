// Taking the whole job down from one rank (MPI_Abort): the watchdog, the set-up deadline and
// main's error boundary do it. Before the call the rank marks itself as aborting -- locally and
// on the progress board (progress.hpp), where the other ranks of its host can see it -- so that
// the SIGTERM the launcher then sends to every rank is not taken for a stop request that will
// save a checkpoint; and it runs its "last words" (e.g. writing its own timeline rows), which
// are local, quick and never call MPI.
#pragma once

#include <functional>

namespace distnet {

// Marks this process as aborting the job (idempotent); publishes it on the progress board.
void mark_aborting();
// This process is aborting the job.
bool aborting();
// The job is being taken down: this process, or a rank on this host that published it on the
// progress board, is aborting it, or a rank on this host has died (a launcher ends the others
// then). Memory loads and kill(pid, 0) only: safe on the signal-receiving thread.
bool job_aborting();

// Work this rank does just before it aborts the job; unregistered by the destructor (which
// waits while the work runs). Not copyable or movable.
class LastWords {
 public:
  explicit LastWords(std::function<void()> work);
  ~LastWords();
  LastWords(const LastWords&) = delete;
  LastWords& operator=(const LastWords&) = delete;

 private:
  int id_;
};
// Runs every registered piece of last words once (later calls do nothing); exceptions are
// swallowed. abort_job calls it; so does the signal thread when a SIGTERM arrives while the
// job is aborting.
void say_last_words();

// mark_aborting(), say_last_words(), then MPI_Abort(MPI_COMM_WORLD, code) (or _Exit(code) when
// MPI is not running). Prints nothing: the caller has said why. Safe on any thread (the MPI
// watchdog's); it does not touch NCCL communicators (not thread-safe), the process ends them.
// MPI_Abort is called only where MPI allows this thread to call it: the thread that initialised
// MPI, or any thread under MPI_THREAD_MULTIPLE. Elsewhere (a watchdog thread with FUNNELED or
// SERIALIZED) the process leaves with _Exit(code) without finalising, and the launcher ends the
// job (mpirun does; srun with --kill-on-bad-exit=1, as slurm/alexnet.sbatch sets).
// A process whose MPI_Abort has not ended it after kAbortGraceS seconds (the launcher cannot
// reach its node) leaves with _Exit(code).
constexpr int kAbortGraceS = 10;
[[noreturn]] void abort_job(int code);
// Records the thread support MPI_Init_thread provided, on the thread that initialised MPI
// (world.cpp); abort_job reads it.
void note_mpi_thread_level(int provided);

// Every NCCL communicator of this process registers how to revoke it (stop its in-flight work,
// without waiting), how to wait (bounded) until the revoke has taken effect, and how to abort it,
// so the one abort path can stop all of them before it aborts any (aborting one while another's
// kernels run deadlocks: NVIDIA/nccl#549, #829). Unregistered by the destructor. Not copyable or
// movable. Called on the thread that uses the communicator (the main thread) only.
class CommunicatorKill {
 public:
  CommunicatorKill(std::function<void()> revoke, std::function<void()> quiet,
                   std::function<void()> abort);
  ~CommunicatorKill();
  CommunicatorKill(const CommunicatorKill&) = delete;
  CommunicatorKill& operator=(const CommunicatorKill&) = delete;

 private:
  int id_;
};
// revoke_all: revokes every registered communicator. abort_all: waits until each is quiet, then
// aborts each. Exceptions are swallowed.
void revoke_all_communicators();
void abort_all_communicators();

// The one abort path for an error that not every rank knows of, called on the main thread
// before any destructor that can block (src/core/bounded_wait.hpp, run_abort): with
// `multi_rank`, mark, revoke every communicator, last words, MPI_Abort -- no return; otherwise
// revoke and abort every communicator and return, so that the caller's destructors free only
// memory no kernel uses. Prints nothing: the caller has said why.
void fail_job(int code, bool multi_rank);

}  // namespace distnet
