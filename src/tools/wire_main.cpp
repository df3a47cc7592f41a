// distnet-wire: a network link with delay and packet loss, for launch/cluster (docs/multi-node.md).
//   distnet-wire --a TAP_A --b TAP_B [--delay-ms D] [--loss P] [--seed S] [--queue-frames N]
//                [--watch PID] [--stats FILE]
// Makes two TAP interfaces and copies every Ethernet frame that leaves one into the other, D ms
// later, dropping each frame with probability P, in both directions. launch/cluster puts a node's
// link through such a pair (one TAP on the node's side, one on the switch's) where tc's netem is
// not available. It prints "ready" once both interfaces exist, then forwards until SIGTERM, until
// the process --watch names is gone, or until an interface is removed. Every loop is bounded:
// frames read per wake-up, frames and bytes queued per direction (the tail is dropped beyond
// --queue-frames or 64 MiB), and a wake-up at least once a second.
//
// Without loss the TAPs carry the kernel's large (TSO) segments, up to 64 KiB each, so that one
// thread keeps up with both directions at 1 Gbit/s; with loss they carry single Ethernet frames,
// so that each frame is lost on its own, as on a wire. The counters count what the TAPs carry.
//
// The delay is constant, so each direction is a FIFO and frames stay in order. The TAPs are not
// persistent: they vanish with the process. With --stats, the counters are rewritten (atomically,
// by rename) about once a second and at exit:
//   a_to_b <forwarded> <lost> <overflowed>\nb_to_a <forwarded> <lost> <overflowed>\n
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kExitUsage = 2, kExitError = 1;
constexpr size_t kMaxFrame = 128 * 1024;  // a 64 KiB TSO frame and its header fit
constexpr size_t kQueueBytes = 64u << 20;
constexpr int kReadsPerWake = 256;  // frames read from one TAP before the other gets a turn

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// offload: the TAP takes and gives frames of up to 64 KiB that the kernel segments (TSO, with
// checksums left to it), each behind a virtio-net header that is copied through unread. Without
// it every frame is one Ethernet frame of at most the MTU.
int open_tap(const std::string& name, bool offload) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    std::fprintf(stderr, "distnet-wire: error: interface name '%s' must be 1..%d characters\n",
                 name.c_str(), IFNAMSIZ - 1);
    std::exit(kExitUsage);
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "distnet-wire: error: cannot open /dev/net/tun: %s\n",
                 std::strerror(errno));
    std::exit(kExitError);
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    std::fprintf(stderr, "distnet-wire: error: cannot make TAP interface %s: %s\n", name.c_str(),
                 std::strerror(errno));
    std::exit(kExitError);
  }
  if (offload && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
    std::fprintf(stderr, "distnet-wire: error: cannot set offloads on %s: %s\n", name.c_str(),
                 std::strerror(errno));
    std::exit(kExitError);
  }
  return fd;
}

struct Frame {
  int64_t due_ns;
  std::vector<unsigned char> bytes;
};

struct Direction {
  const char* name;
  int from, to;
  std::deque<Frame> queue;
  size_t queued_bytes = 0;
  uint64_t forwarded = 0, lost = 0, overflowed = 0;
};

void write_stats(const std::string& path, const Direction& ab, const Direction& ba) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return;  // the cluster's directory went away: nothing to report to
  for (const Direction* d : {&ab, &ba})
    std::fprintf(f, "%s %llu %llu %llu\n", d->name, (unsigned long long)d->forwarded,
                 (unsigned long long)d->lost, (unsigned long long)d->overflowed);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "distnet-wire: error: %s\n"
      "usage: distnet-wire --a TAP_A --b TAP_B [--delay-ms D] [--loss P (0..1)] [--seed S] "
      "[--queue-frames N] [--watch PID] [--stats FILE]\n",
      why);
  std::exit(kExitUsage);
}

double number(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno || end == text || *end)
    usage((std::string(flag) + " expects a number, got '" + text + "'").c_str());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string a, b, stats;
  double delay_ms = 0, loss = 0;
  uint64_t seed = 1;
  size_t queue_frames = 20000;
  long watch = 0;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::printf(
          "distnet-wire --a TAP_A --b TAP_B [--delay-ms D] [--loss P] [--seed S] [--queue-frames "
          "N] "
          "[--watch PID] [--stats FILE]\n");
      return 0;
    }
    if (i + 1 >= argc) usage((flag + " needs a value").c_str());
    const char* v = argv[++i];
    if (flag == "--a")
      a = v;
    else if (flag == "--b")
      b = v;
    else if (flag == "--stats")
      stats = v;
    else if (flag == "--delay-ms")
      delay_ms = number("--delay-ms", v);
    else if (flag == "--loss")
      loss = number("--loss", v);
    else if (flag == "--seed")
      seed = uint64_t(number("--seed", v));
    else if (flag == "--queue-frames")
      queue_frames = size_t(number("--queue-frames", v));
    else if (flag == "--watch")
      watch = long(number("--watch", v));
    else
      usage(("unknown option " + flag).c_str());
  }
  if (a.empty() || b.empty() || a == b) usage("--a and --b must name two different interfaces");
  if (!(delay_ms >= 0 && delay_ms <= 60000)) usage("--delay-ms must be 0..60000");
  if (!(loss >= 0 && loss < 1)) usage("--loss must be a probability in [0, 1)");
  if (queue_frames < 1) usage("--queue-frames must be at least 1");

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Loss is of Ethernet frames, as on a wire: with loss the TAPs carry single frames. Without it
  // they carry the kernel's large segments, which costs the one thread that moves both
  // directions about 40 times fewer system calls at full rate.
  const bool offload = loss == 0;
  Direction ab{"a_to_b", open_tap(a, offload), -1, {}}, ba{"b_to_a", -1, -1, {}};
  ba.from = open_tap(b, offload);
  ab.to = ba.from;
  ba.to = ab.from;
  std::printf("ready\n");
  std::fflush(stdout);

  std::mt19937_64 rng(seed);
  std::bernoulli_distribution drop(loss);
  const int64_t delay_ns = int64_t(delay_ms * 1e6);
  std::vector<unsigned char> buf(kMaxFrame);
  int64_t next_check = now_ns() + 1000000000LL;
  int rc = 0;
  while (!g_stop) {
    // Sleep until a frame is due or one arrives (at most a second: the watch and the stats).
    int64_t now = now_ns();
    int64_t wake = next_check;
    for (Direction* d : {&ab, &ba})
      if (!d->queue.empty() && d->queue.front().due_ns < wake) wake = d->queue.front().due_ns;
    int64_t wait = wake > now ? wake - now : 0;
    timespec ts{time_t(wait / 1000000000LL), long(wait % 1000000000LL)};
    pollfd fds[2] = {{ab.from, POLLIN, 0}, {ba.from, POLLIN, 0}};
    int n = ppoll(fds, 2, &ts, nullptr);
    if (n < 0 && errno != EINTR) {
      std::fprintf(stderr, "distnet-wire: error: poll: %s\n", std::strerror(errno));
      rc = kExitError;
      break;
    }
    bool gone = false;
    for (int k = 0; k < 2 && n > 0; ++k) {
      Direction& d = k == 0 ? ab : ba;
      if (fds[k].revents & (POLLERR | POLLHUP | POLLNVAL)) gone = true;
      if (!(fds[k].revents & POLLIN)) continue;
      for (int r = 0; r < kReadsPerWake; ++r) {
        ssize_t got = read(d.from, buf.data(), buf.size());
        if (got < 0) {
          if (errno != EAGAIN && errno != EINTR) gone = true;  // EBADFD: the interface was removed
          break;
        }
        if (got == 0) break;
        if (loss > 0 && drop(rng)) {
          ++d.lost;
          continue;
        }
        if (d.queue.size() >= queue_frames || d.queued_bytes + size_t(got) > kQueueBytes) {
          ++d.overflowed;
          continue;
        }
        d.queued_bytes += size_t(got);
        d.queue.push_back(
            Frame{now_ns() + delay_ns, std::vector<unsigned char>(buf.begin(), buf.begin() + got)});
      }
    }
    if (gone) break;
    now = now_ns();
    for (Direction* d : {&ab, &ba}) {
      while (!d->queue.empty() && d->queue.front().due_ns <= now) {
        const Frame& f = d->queue.front();
        // A TAP write is not refused for lack of room: the kernel takes the frame or drops it
        // (an interface that is down answers EIO). Either way the frame has left the wire.
        if (write(d->to, f.bytes.data(), f.bytes.size()) == ssize_t(f.bytes.size())) ++d->forwarded;
        d->queued_bytes -= f.bytes.size();
        d->queue.pop_front();
      }
    }
    if (now >= next_check) {
      next_check = now + 1000000000LL;
      write_stats(stats, ab, ba);
      if (watch > 0 && kill(pid_t(watch), 0) != 0 && errno == ESRCH) break;
    }
  }
  write_stats(stats, ab, ba);
  return rc;
}
