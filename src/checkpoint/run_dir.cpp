#include "distnet/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "distnet/checkpoint.hpp"
#include "distnet/error.hpp"

namespace distnet {
namespace {

constexpr const char* kLockName = ".distnet.lock";

std::string base_name(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

}  // namespace

std::string new_run_id() {
  unsigned char bytes[8] = {};
  std::ifstream random("/dev/urandom", std::ios::binary);
  if (!random.read(reinterpret_cast<char*>(bytes), sizeof bytes))
    throw Error("/dev/urandom: cannot read a run id");
  char hex[17];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return hex;
}

RunDirLock::RunDirLock(const std::string& dir, const std::string& host)
    : path_(dir + "/" + kLockName), host_(host) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path_ + ": cannot open the lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[256] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string who = n > 0 ? std::string(holder, std::size_t(n)) : std::string();
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    if (err == EWOULDBLOCK)
      throw UsageError(dir + " is in use by another run (" +
                       (who.empty() ? std::string("holder unknown") : who) +
                       "); wait for it to end, or give this run another --checkpoint-dir");
    throw Error(path_ + ": cannot lock: " + std::strerror(err));
  }
  write_holder();
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays, naming the last holder
}

void RunDirLock::set_run_id(const std::string& run_id) {
  run_id_ = run_id;
  write_holder();
}

void RunDirLock::write_holder() {
  const std::string line = "host " + host_ + ", pid " + std::to_string(::getpid()) +
                           (run_id_.empty() ? std::string() : ", run " + run_id_) + "\n";
  // Best effort: the lock is the flock, the text only says whose it is.
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd_, line.data(), line.size(), 0);
  }
}

std::string set_files_aside(const std::string& dir, const std::vector<std::string>& files,
                            const std::string& owner) {
  std::string aside = dir + "/previous-" + (owner.empty() ? "run" : owner);
  for (int n = 2; ::mkdir(aside.c_str(), 0755) != 0; ++n) {
    if (errno != EEXIST) throw Error(aside + ": cannot create: " + std::strerror(errno));
    aside = dir + "/previous-" + (owner.empty() ? "run" : owner) + "-" + std::to_string(n);
  }
  for (const std::string& f : files) {
    const std::string to = aside + "/" + base_name(f);
    if (::rename(f.c_str(), to.c_str()) != 0)
      throw Error(f + ": cannot move to " + aside + ": " + std::strerror(errno));
  }
  return aside;
}

void prepare_new_run(const std::string& dir, const std::string& start_over) {
  std::vector<std::string> found = list_checkpoints(dir);  // newest first
  // --keep-best's file is its run's as much as the checkpoints are.
  const std::string best = dir + "/" + kBestCheckpointName;
  if (::access(best.c_str(), F_OK) == 0) found.push_back(best);
  if (found.empty()) return;
  std::string owner;
  try {
    owner = checkpoint_run_id(found.front());
  } catch (const Error&) {
  }
  const std::string files = std::to_string(found.size()) +
                            (found.size() == 1 ? " checkpoint" : " checkpoints") + " of " +
                            (owner.empty() ? "an earlier run" : "run " + owner) + " (newest " +
                            base_name(found.front()) + ")";
  if (start_over.empty()) {
    throw UsageError(dir + " holds " + files +
                     "; continue that run with --resume auto, or begin a new one with "
                     "--start-over aside (moves them into a subdirectory) or --start-over delete");
  }
  if (start_over == "delete") {
    for (const std::string& f : found)
      if (::unlink(f.c_str()) != 0 && errno != ENOENT)
        throw Error(f + ": cannot delete: " + std::strerror(errno));
    std::printf("--start-over delete: deleted %s from %s\n", files.c_str(), dir.c_str());
    return;
  }
  const std::string aside = set_files_aside(dir, found, owner);
  std::printf("--start-over aside: moved %s into %s\n", files.c_str(), aside.c_str());
}

std::string write_probe(const std::string& dir, const std::string& token) {
  const std::string path = dir + "/.distnet-probe-" + token;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << token << "\n";
  out.close();
  if (!out) throw Error(path + ": cannot write the probe file: " + std::strerror(errno));
  return path;
}

bool sees_probe(const std::string& path, const std::string& token, double patience_s) {
  const auto start = std::chrono::steady_clock::now();
  for (int attempt = 0;; ++attempt) {
    std::ifstream in(path, std::ios::binary);
    std::string got;
    if (in && std::getline(in, got) && got == token) return true;
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited >= patience_s) return false;
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min(1000, 50 << std::min(attempt, 4))));
  }
}

}  // namespace distnet
