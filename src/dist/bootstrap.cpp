#include "distnet/bootstrap.hpp"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "distnet/abort.hpp"
#include "distnet/error.hpp"
#include "distnet/mpi_check.hpp"

namespace distnet {

std::vector<char> broadcast_token(MPI_Comm comm, const std::function<std::vector<char>()>& make,
                                  const std::string& what) {
  int rank = 0;
  DISTNET_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  // One message: [ok][length][bytes or rank 0's error text].
  std::vector<char> payload;
  long long header[2] = {1, 0};
  if (rank == 0) {
    try {
      payload = make();
    } catch (const std::exception& e) {
      char host[256] = {};
      ::gethostname(host, sizeof host - 1);
      const std::string why = "rank 0 (" + std::string(host) + "): " + e.what();
      payload.assign(why.begin(), why.end());
      header[0] = 0;
    }
    header[1] = static_cast<long long>(payload.size());
  }
  DISTNET_CHECK_MPI(MPI_Bcast(header, 2, MPI_LONG_LONG, 0, comm));
  payload.resize(std::size_t(header[1]));
  if (header[1] > 0)
    DISTNET_CHECK_MPI(MPI_Bcast(payload.data(), int(header[1]), MPI_CHAR, 0, comm));
  if (header[0] == 0)
    throw Error(what + " failed on " + std::string(payload.begin(), payload.end()));
  return payload;
}

void run_with_deadline(const std::function<void()>& init, double timeout_s, const std::string& who,
                       const std::string& what) {
  if (timeout_s <= 0) {
    init();
    return;
  }
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  // The watcher only ever aborts; `init` keeps running on this thread, so whatever it throws
  // reaches the caller as it would without a deadline.
  std::thread watcher([&] {
    std::unique_lock<std::mutex> lock(mu);
    if (cv.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return done; })) return;
    mark_aborting();  // the SIGTERM that follows is not a stop request (abort.hpp)
    std::fprintf(stderr,
                 "%salexnet: error: %s did not complete within --comm-timeout %g s; a peer rank "
                 "failed before joining, or cannot be reached -- aborting the job\n",
                 who.c_str(), what.c_str(), timeout_s);
    std::fflush(stderr);
    abort_job(1);
  });
  auto finish = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
    watcher.join();
  };
  try {
    init();
  } catch (...) {
    finish();
    throw;
  }
  finish();
}

}  // namespace distnet
