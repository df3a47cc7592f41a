// Stop requests and the launcher, in child processes (each test forks: the signal thread and the
// blocked signals stay out of the test runner). Every wait is for a condition, with a generous
// bound only against a hang.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "distnet/abort.hpp"
#include "distnet/signals.hpp"

using namespace distnet;

namespace {

// Reads until `n` bytes or end of file or `limit_s` seconds; returns what came.
std::string read_some(int fd, std::size_t n, double limit_s) {
  std::string got;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (got.size() < n) {
    const int left = int(
        std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    char c[256];
    const ssize_t k = read(fd, c, std::min(sizeof c, n - got.size()));
    if (k <= 0) break;
    got.append(c, std::size_t(k));
  }
  return got;
}

template <class Pred>
bool wait_until(Pred pred, double limit_s = 30) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

struct Child {
  pid_t pid = -1;
  int out = -1;  // the child's report
  int err = -1;  // the child's stderr
};

// Runs `body(report_fd)` in a child whose stderr is captured; the child exits 0 after it.
template <class Body>
Child spawn(Body body) {
  int rep[2], err[2];
  EXPECT_EQ(pipe(rep), 0);
  EXPECT_EQ(pipe(err), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(rep[0]);
    close(err[0]);
    dup2(err[1], STDERR_FILENO);
    body(rep[1]);
    _exit(0);
  }
  close(rep[1]);
  close(err[1]);
  return {pid, rep[0], err[0]};
}

void report(int fd, const std::string& s) {
  [[maybe_unused]] const auto n = write(fd, s.data(), s.size());
}

// The child's stderr once it has exited.
std::string finish(const Child& c, int* status) {
  waitpid(c.pid, status, 0);
  std::string err = read_some(c.err, 1 << 16, 5);
  close(c.out);
  close(c.err);
  return err;
}

}  // namespace

TEST(Signals, SighupIsAStopRequestWithItsOwnMessage) {
  const Child c = spawn([](int rep) {
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);  // rank 0 announces stops
    install_stop_handlers();
    set_stop_saves_checkpoint(true);
    report(rep, "r");
    if (wait_until([] { return stop_requested(); }))
      report(rep, stop_signal() == SIGHUP ? "H" : "?");
  });
  ASSERT_EQ(read_some(c.out, 1, 30), "r");
  kill(c.pid, SIGHUP);
  EXPECT_EQ(read_some(c.out, 1, 30), "H");
  int status = 0;
  const std::string err = finish(c, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "SIGHUP ended the process instead of asking it to stop (status " << status << ")";
  EXPECT_NE(err.find("alexnet: stop requested (SIGHUP): will save a checkpoint of the last "
                     "completed step"),
            std::string::npos)
      << err;
}

TEST(Signals, StopMessagePromisesACheckpointOnlyWhenOneWillBeSaved) {
  for (int saves : {-1, 0}) {
    const Child c = spawn([saves](int rep) {
      setenv("OMPI_COMM_WORLD_RANK", "0", 1);
      install_stop_handlers();
      if (saves >= 0) set_stop_saves_checkpoint(saves != 0);
      report(rep, "r");
      if (wait_until([] { return stop_requested(); })) report(rep, "s");
    });
    ASSERT_EQ(read_some(c.out, 1, 30), "r");
    kill(c.pid, SIGTERM);
    EXPECT_EQ(read_some(c.out, 1, 30), "s");
    int status = 0;
    const std::string err = finish(c, &status);
    EXPECT_NE(err.find("alexnet: stop requested (SIGTERM): stopping after the last completed step"),
              std::string::npos)
        << err;
    EXPECT_EQ(err.find("will save"), std::string::npos) << err;
    if (saves == 0) EXPECT_NE(err.find("nothing will be saved"), std::string::npos) << err;
  }
}

// The launcher kills the job after a rank's MPI_Abort: that SIGTERM promises nothing.
TEST(Signals, SigtermWhileAbortingIsNotAnnouncedAsAStop) {
  const Child c = spawn([](int rep) {
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    install_stop_handlers();
    set_stop_saves_checkpoint(true);
    mark_aborting();
    report(rep, "r");
    if (wait_until([] { return stop_requested(); })) report(rep, "s");
  });
  ASSERT_EQ(read_some(c.out, 1, 30), "r");
  kill(c.pid, SIGTERM);
  EXPECT_EQ(read_some(c.out, 1, 30), "s");  // the flag is set after any message is written
  int status = 0;
  const std::string err = finish(c, &status);
  EXPECT_EQ(err.find("stop requested"), std::string::npos) << err;
  EXPECT_EQ(err.find("checkpoint"), std::string::npos) << err;
}

// A launched process (here "rank 1" of an Open MPI job) whose launcher -- its parent at start-up
// -- is killed: launcher_gone() turns true, and that is a stop request.
TEST(Signals, LauncherGoneWhenTheParentAtStartUpDies) {
  int rep[2];
  ASSERT_EQ(pipe(rep), 0);
  const pid_t launcher = fork();
  if (launcher == 0) {  // the launcher: starts the rank, then waits to be killed
    if (fork() == 0) {
      setenv("OMPI_COMM_WORLD_RANK", "1", 1);
      install_stop_handlers();
      const pid_t parent = getppid();  // before saying it is ready: then the launcher is killed
      report(rep[1], launcher_gone() ? "G" : "r");
      wait_until([&] { return getppid() != parent; }, 60);
      report(rep[1], launcher_gone() ? "g" : "-");
      report(rep[1],
             wait_until([] { return stop_requested(); }) && stop_signal() == -1 ? "s" : "-");
      _exit(0);
    }
    for (;;) pause();
  }
  close(rep[1]);
  EXPECT_EQ(read_some(rep[0], 1, 30), "r") << "launcher_gone() before the launcher went";
  kill(launcher, SIGKILL);
  int status = 0;
  waitpid(launcher, &status, 0);
  EXPECT_EQ(read_some(rep[0], 2, 60), "gs")
      << "after its launcher died: launcher_gone() and a stop request (g, s)";
  close(rep[0]);
}

// A process started from a shell, not a launcher: its parent may go on purpose (nohup, a batch
// script that ends); that is no reason to stop or to skip checkpoints.
TEST(Signals, NoLauncherNoLauncherGone) {
  int rep[2];
  ASSERT_EQ(pipe(rep), 0);
  const pid_t shell = fork();
  if (shell == 0) {
    if (fork() == 0) {
      for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
        unsetenv(v);
      install_stop_handlers();
      const pid_t parent = getppid();
      report(rep[1], "r");
      wait_until([&] { return getppid() != parent; }, 60);
      report(rep[1], launcher_gone() ? "g" : "-");
      _exit(0);
    }
    for (;;) pause();
  }
  close(rep[1]);
  ASSERT_EQ(read_some(rep[0], 1, 30), "r");
  kill(shell, SIGKILL);
  int status = 0;
  waitpid(shell, &status, 0);
  EXPECT_EQ(read_some(rep[0], 1, 60), "-");
  close(rep[0]);
}
