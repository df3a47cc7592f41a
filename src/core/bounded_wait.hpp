// The decisions behind every host wait on device work and every communicator shut-down, as pure
// code: what is polled, in which order, when to give up. The CUDA and NCCL code (src/cuda) plugs
// in the real queries; tests plug in fake clocks and fake states, so the order is checked on a
// machine without a GPU and without any timing. Internal to distnet's sources.
#pragma once

#include <exception>
#include <functional>

namespace distnet {

enum class WaitEnd { done, timed_out };

// Polls `done()` until it says true (WaitEnd::done), or until more than `timeout_s` > 0 seconds
// have passed by `now()` (WaitEnd::timed_out; timeout_s <= 0 waits without a bound). `between()`
// runs after every query that found the work pending -- it may throw to stop the wait (an NCCL
// error); `pause(spins)` runs before the next query (spin first, then sleep). The first query
// comes before any clock reading, so work that is already done never times out.
template <typename Done, typename Between, typename Now, typename Pause>
WaitEnd poll_until(Done done, Between between, Now now, Pause pause, double timeout_s) {
  const double t0 = now();
  for (long spins = 0;; ++spins) {
    if (done()) return WaitEnd::done;
    between();
    if (timeout_s > 0 && now() - t0 > timeout_s) return WaitEnd::timed_out;
    pause(spins);
  }
}

// How a communicator (src/cuda/nccl_comm.cpp) ends, each step a stand-in in tests. Every wait in
// it is bounded; a step that throws counts as a failure.
struct CommShutdownSteps {
  std::function<WaitEnd()> drain;  // queued collectives finish (bounded, polls the comm's error)
  std::function<void()> finalize;  // ncclCommFinalize: flush, start the quiet-down (no wait)
  std::function<WaitEnd()> wait_quiet;  // poll the comm's state until finalize/revoke completed
  std::function<void()> destroy;        // ncclCommDestroy: local resources only, no wait left
  std::function<void()> revoke;         // ncclCommRevoke: stop in-flight work (no wait)
  std::function<void()> abort;          // ncclCommAbort
};
enum class CommEnd { destroyed, aborted };

// `failing`: the process is leaving on an error (its peers may never match what is queued).
// Normal end: drain, finalize, wait until quiet, destroy. Any step that fails or times out, or
// `failing`: revoke (only if finalize has not been called: revoking after finalize is invalid),
// wait until quiet (bounded; the result does not matter), abort.
inline CommEnd shut_down_comm(const CommShutdownSteps& s, bool failing) {
  bool finalized = false;
  if (!failing) {
    try {
      if (s.drain() == WaitEnd::done) {
        finalized = true;
        s.finalize();
        if (s.wait_quiet() == WaitEnd::done) {
          s.destroy();
          return CommEnd::destroyed;
        }
      }
    } catch (const std::exception&) {
    }
  }
  try {
    if (!finalized) {
      s.revoke();
      s.wait_quiet();
    }
  } catch (const std::exception&) {
  }
  s.abort();
  return CommEnd::aborted;
}

// The one abort path (include/distnet/abort.hpp's fail_job), as its side effects in order.
struct AbortSteps {
  std::function<void()> mark;                 // mark_aborting: a coming SIGTERM is no stop request
  std::function<void()> revoke_all;           // every NCCL communicator of this process: revoked
  std::function<void()> last_words;           // local, quick, no MPI
  std::function<void(int)> abort_world;       // MPI_Abort (does not return in production)
  std::function<void()> abort_communicators;  // ncclCommAbort on each, after all were revoked
};

// A rank that fails while others may wait for it. More than one rank: mark, revoke every
// communicator (their kernels stop; nothing waits on them any more), last words, MPI_Abort --
// before any destructor, so no peer waits for this rank and no destructor of this rank waits for
// a peer. One rank: revoke all, then abort all (all revoked first: aborting one communicator
// while another's kernels run is NVIDIA/nccl#549), and return; the caller's destructors then
// free buffers that no kernel uses any more.
inline void run_abort(const AbortSteps& s, bool multi_rank, int code) {
  if (multi_rank) {
    s.mark();
    s.revoke_all();
    s.last_words();
    s.abort_world(code);
    return;  // only stand-ins return
  }
  s.revoke_all();
  s.abort_communicators();
}

}  // namespace distnet
