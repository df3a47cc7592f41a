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
// MPI is not running). Prints nothing: the caller has said why.
[[noreturn]] void abort_job(int code);

}  // namespace distnet
