// A checkpoint directory belongs to one run: every run has an id (written into each checkpoint
// and the metrics), holds a lock on the directory while it runs, deletes only its own files, and
// a new run refuses to start over another run's checkpoints unless told what to do with them.
// Rank 0 does all of it; docs/reliability.md has the rules as users see them.
#pragma once

#include <string>
#include <vector>

namespace distnet {

// A new run id: 16 hexadecimal digits from the kernel's random source.
std::string new_run_id();

// An exclusive advisory lock (flock) on DIR/.distnet.lock, held until destruction. The file
// names the holder (host, pid, run id) so that a second run can say who holds it. Throws a
// one-line UsageError when another process holds it. A lock left by a killed process is released
// by the kernel with its last descriptor, so there is never a stale lock to clean up.
class RunDirLock {
 public:
  RunDirLock(const std::string& dir, const std::string& host);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  void set_run_id(const std::string& run_id);  // rewrites the holder line

 private:
  void write_holder();
  int fd_ = -1;
  std::string path_, host_, run_id_;
};

// A run that is not resuming, in a directory that may hold checkpoints of an earlier run (its
// ckpt-* files and best.h5): with none, nothing happens; otherwise `start_over` decides: ""
// refuses (UsageError naming the directory, the files and the choices), "aside" moves them into
// DIR/previous-<run id>/ (or previous-<n>/ for files without one), "delete" deletes them. Call
// under the lock.
void prepare_new_run(const std::string& dir, const std::string& start_over);

// Moves `files` (paths in `dir`) into DIR/previous-<owner>/ (previous-run/ without an owner;
// -2, -3 ... appended when taken) and returns that directory.
std::string set_files_aside(const std::string& dir, const std::vector<std::string>& files,
                            const std::string& owner);

// Whether a directory is shared between hosts, by a probe file: rank 0 writes
// DIR/.distnet-probe-<token> holding the token (write_probe returns its path), every rank on
// another host checks that it reads the same token there (sees_probe; it retries for up to
// `patience_s` seconds, since a network filesystem may show a new name late), and rank 0
// removes it.
std::string write_probe(const std::string& dir, const std::string& token);
bool sees_probe(const std::string& path, const std::string& token, double patience_s);

}  // namespace distnet
