// Stop signals are blocked in every thread (they inherit the mask from main, which blocks them
// before MPI, OpenMP or any thread of ours starts) and received synchronously by one thread with
// sigtimedwait(): no handler ever interrupts MPI, oneDNN or malloc on some random thread. The
// same thread looks at the parent process twice a second (the launcher, see signals.hpp).
#include "distnet/signals.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include "distnet/abort.hpp"
#include "distnet/world.hpp"

namespace distnet {
namespace {

constexpr int kLauncherGone = -1;  // g_signal's value for a stop because the launcher went

std::atomic<int> g_signal{0};
std::atomic<int> g_saves{-1};  // will a stop save a checkpoint? -1: not said
pid_t g_parent = 0;            // the parent at start-up, under a launcher; 0: not watched

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGHUP);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGUSR2);
  return s;
}

bool started_by_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (std::getenv(v)) return true;
  return false;
}

void say(const char* text) {
  [[maybe_unused]] const auto n = write(STDERR_FILENO, text, std::strlen(text));
}

// "alexnet: stop requested (SIGTERM): will save a checkpoint of the last completed step"
void announce(int sig) {
  const char* name = sig == SIGINT    ? "SIGINT"
                     : sig == SIGTERM ? "SIGTERM"
                     : sig == SIGHUP  ? "SIGHUP"
                                      : "SIGUSR1";
  const int saves = g_saves.load();
  const char* what = saves > 0    ? "will save a checkpoint of the last completed step"
                     : saves == 0 ? "stopping after the last completed step (no --checkpoint-dir: "
                                    "nothing will be saved)"
                                  : "stopping after the last completed step";
  char text[256];
  std::snprintf(text, sizeof text, "alexnet: stop requested (%s): %s%s\n", name, what,
                sig == SIGINT ? " (Ctrl-C again to quit at once)" : "");
  say(text);
}

void receive(const sigset_t set) {
  for (;;) {
    const timespec poll{0, 500 * 1000 * 1000};
    const int sig = sigtimedwait(&set, nullptr, &poll);
    if (sig < 0) {
      if (errno == EAGAIN && g_signal.load() == 0 && launcher_gone()) {
        if (launcher_rank() == 0) {
          char text[160];
          std::snprintf(text, sizeof text,
                        "alexnet: the launcher (parent process %d) has gone: stopping after the "
                        "last completed step\n",
                        int(g_parent));
          say(text);
        }
        g_signal.store(kLauncherGone);
      }
      continue;
    }
    // SIGUSR2 (what launch/run-local sends on a second Ctrl-C) or a second SIGINT: leave now.
    if (sig == SIGUSR2 || (sig == SIGINT && g_signal.load() == SIGINT)) _exit(130);
    if (sig == SIGTERM && job_aborting()) {
      // The launcher ends every rank of an aborted job: no stop, no checkpoint, nothing to say
      // (the aborting rank has said why). This rank leaves what it can (its timeline rows).
      say_last_words();
      g_signal.store(sig);
      continue;
    }
    if (g_signal.load() == 0 && launcher_rank() == 0) announce(sig);
    g_signal.store(sig);
  }
}

}  // namespace

void install_stop_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    const pid_t parent = getppid();
    if (started_by_launcher() && parent > 1) g_parent = parent;
    const sigset_t set = stop_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] { receive(set); }).detach();
  });
}

bool stop_requested() {
  return g_signal.load() != 0;
}
int stop_signal() {
  return g_signal.load();
}
bool launcher_gone() {
  return g_parent > 1 && getppid() != g_parent;
}
void set_stop_saves_checkpoint(bool saves) {
  g_saves.store(saves ? 1 : 0);
}
void request_stop_for_testing() {
  g_signal.store(SIGUSR1);
}

}  // namespace distnet
