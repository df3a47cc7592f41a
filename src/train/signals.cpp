#include "distnet/signals.hpp"

#include <unistd.h>

#include <csignal>
#include <initializer_list>

namespace distnet {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (sig == SIGINT && g_signal == SIGINT) _exit(130);  // the second Ctrl-C: leave now
  g_signal = sig;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a system call interrupted by the signal resumes
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) sigaction(sig, &sa, nullptr);
}

bool stop_requested() {
  return g_signal != 0;
}
int stop_signal() {
  return g_signal;
}
void request_stop_for_testing() {
  g_signal = SIGUSR1;
}

}  // namespace distnet
