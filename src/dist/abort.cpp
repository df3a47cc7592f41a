#include "distnet/abort.hpp"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "core/bounded_wait.hpp"
#include "distnet/progress.hpp"

namespace distnet {
namespace {

std::atomic<bool> g_aborting{false};

struct Registry {
  std::mutex mu;
  std::map<int, std::function<void()>> work;
  int next = 0;
  bool said = false;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: a watchdog may abort during exit
  return *r;
}

struct Kills {
  std::mutex mu;
  struct Fns {
    std::function<void()> revoke, quiet, abort;
  };
  std::map<int, Fns> comms;
  int next = 0;
};
Kills& kills() {
  static Kills* k = new Kills;  // never destroyed, as the registry above
  return *k;
}

// Runs one function of every registered communicator, in the order they were made.
void each_communicator(std::function<void()> Kills::Fns::*which) {
  Kills& k = kills();
  std::lock_guard<std::mutex> lock(k.mu);
  for (auto& [id, fns] : k.comms) {
    try {
      (fns.*which)();
    } catch (...) {  // the job is going down anyway
    }
  }
}

}  // namespace

void mark_aborting() {
  if (!g_aborting.exchange(true)) progress::publish_aborting();
}

bool aborting() {
  return g_aborting.load();
}

bool job_aborting() {
  return aborting() || progress::peer_aborting() || progress::peer_gone();
}

LastWords::LastWords(std::function<void()> work) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  id_ = r.next++;
  r.work.emplace(id_, std::move(work));
}

LastWords::~LastWords() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.work.erase(id_);
}

void say_last_words() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.said) return;
  r.said = true;
  for (auto& [id, work] : r.work) {
    try {
      work();
    } catch (...) {  // the job is going down anyway; the abort must still happen
    }
  }
}

CommunicatorKill::CommunicatorKill(std::function<void()> revoke, std::function<void()> quiet,
                                   std::function<void()> abort) {
  Kills& k = kills();
  std::lock_guard<std::mutex> lock(k.mu);
  id_ = k.next++;
  k.comms.emplace(id_, Kills::Fns{std::move(revoke), std::move(quiet), std::move(abort)});
}

CommunicatorKill::~CommunicatorKill() {
  Kills& k = kills();
  std::lock_guard<std::mutex> lock(k.mu);
  k.comms.erase(id_);
}

void revoke_all_communicators() {
  each_communicator(&Kills::Fns::revoke);
}

void abort_all_communicators() {
  each_communicator(&Kills::Fns::quiet);
  each_communicator(&Kills::Fns::abort);
}

void fail_job(int code, bool multi_rank) {
  run_abort({mark_aborting, revoke_all_communicators, say_last_words, [](int c) { abort_job(c); },
             abort_all_communicators},
            multi_rank, code);
}

namespace {
std::atomic<int> g_thread_level{-1};  // -1: not noted (MPI initialised elsewhere; as before)
std::thread::id g_mpi_thread;         // written once, before any thread that may abort starts
}  // namespace

void note_mpi_thread_level(int provided) {
  g_mpi_thread = std::this_thread::get_id();
  g_thread_level = provided;
}

void abort_job(int code) {
  mark_aborting();
  say_last_words();
  const int level = g_thread_level.load();
  const bool may_call_mpi =
      level < 0 || level == MPI_THREAD_MULTIPLE || std::this_thread::get_id() == g_mpi_thread;
  if (may_call_mpi) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) {
      // MPI_Abort asks the launcher to end the job and waits for it; a launcher that cannot
      // reach this node (a network partition) never does. So the process leaves by itself
      // kAbortGraceS seconds later; the launcher takes a rank's exit for the end of the job.
      try {
        std::thread([code] {
          std::this_thread::sleep_for(std::chrono::seconds(kAbortGraceS));
          std::_Exit(code);
        }).detach();
      } catch (...) {
      }
      MPI_Abort(MPI_COMM_WORLD, code);
    }
  }
  std::_Exit(code);
}

}  // namespace distnet
