#include "distnet/abort.hpp"

#include <mpi.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

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

void abort_job(int code) {
  mark_aborting();
  say_last_words();
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace distnet
