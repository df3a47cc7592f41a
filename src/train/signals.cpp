// Stop signals are blocked in every thread (they inherit the mask from main, which blocks them
// before MPI, OpenMP or any thread of ours starts) and received synchronously by one thread with
// sigwait(): no handler ever interrupts MPI, oneDNN or malloc on some random thread.
#include "distnet/signals.hpp"
#include "distnet/world.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

namespace distnet {
namespace {

std::atomic<int> g_signal{0};

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGUSR2);
  return s;
}

}  // namespace

void install_stop_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    const sigset_t set = stop_set();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        // SIGUSR2 (what launch/run-local sends on a second Ctrl-C) or a second SIGINT: leave now.
        if (sig == SIGUSR2 || (sig == SIGINT && g_signal.load() == SIGINT)) _exit(130);
        if (g_signal.load() == 0 && launcher_rank() == 0) {
          const char* msg = sig == SIGINT
                                ? "alexnet: stop requested (SIGINT): saving a checkpoint at the "
                                  "last step boundary (Ctrl-C again to quit at once)\n"
                            : sig == SIGTERM ? "alexnet: stop requested (SIGTERM): saving a "
                                               "checkpoint at the last step boundary\n"
                                             : "alexnet: stop requested (SIGUSR1): saving a "
                                               "checkpoint at the last step boundary\n";
          [[maybe_unused]] const auto n = write(STDERR_FILENO, msg, std::strlen(msg));
        }
        g_signal.store(sig);
      }
    }).detach();
  });
}

bool stop_requested() {
  return g_signal.load() != 0;
}
int stop_signal() {
  return g_signal.load();
}
void request_stop_for_testing() {
  g_signal.store(SIGUSR1);
}

}  // namespace distnet
