#include "progress_tcp.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace distnet::progress::tcp {
namespace {

constexpr char kAsk[8] = {'d', 'i', 's', 't', 'p', 'r', 'g', '?'};
constexpr char kAnswer[8] = {'d', 'i', 's', 't', 'p', 'r', 'g', '!'};
constexpr std::size_t kMaxReply = 1 << 24;

bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= std::size_t(w);
  }
  return true;
}

bool recv_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r, n -= std::size_t(r);
  }
  return true;
}

}  // namespace

std::vector<std::uint32_t> host_addresses() {
  std::vector<std::uint32_t> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    if (!(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK)) continue;
    out.push_back(reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
  }
  ::freeifaddrs(list);
  return out;
}

struct Server::State {
  int fd = -1;
  std::atomic<bool> stop{false};
  std::function<std::string()> snapshot;
  std::thread thread;
};

namespace {

void answer(int c, const std::function<std::string()>& snapshot) {
  timeval t{2, 0};  // a client that stalls is dropped; the next one is served
  ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
  ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
  char ask[sizeof kAsk];
  if (!recv_all(c, ask, sizeof ask) || std::memcmp(ask, kAsk, sizeof kAsk) != 0) return;
  const std::string body = snapshot();
  const std::uint64_t size = body.size();
  char head[sizeof kAnswer + sizeof size];
  std::memcpy(head, kAnswer, sizeof kAnswer);
  std::memcpy(head + sizeof kAnswer, &size, sizeof size);
  if (send_all(c, head, sizeof head)) send_all(c, body.data(), body.size());
}

}  // namespace

Server::Server(std::function<std::string()> snapshot) : state_(std::make_shared<State>()) {
  state_->snapshot = std::move(snapshot);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(std::string("bind/listen: ") + std::strerror(err));
  }
  state_->fd = fd;
  port_ = ntohs(a.sin_port);
  std::shared_ptr<State> st = state_;
  st->thread = std::thread([st] {
    while (!st->stop.load()) {
      pollfd p{st->fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const int c = ::accept4(st->fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      answer(c, st->snapshot);
      ::close(c);
    }
  });
}

Server::~Server() {
  state_->stop = true;
  if (state_->thread.joinable()) state_->thread.join();
  ::close(state_->fd);
}

std::vector<Reply> ask_all(const std::vector<Endpoint>& endpoints, double limit_s) {
  struct Conn {
    int fd = -1;
    std::size_t ep = 0;
    bool connected = false;
    std::string in;
  };
  std::vector<Reply> replies(endpoints.size());
  std::vector<int> tried(endpoints.size(), 0), refused(endpoints.size(), 0);
  std::vector<bool> answered(endpoints.size(), false);
  std::vector<Conn> conns;
  auto finish = [&](Conn& c, bool was_refused) {
    if (c.fd < 0) return;
    ::close(c.fd);
    c.fd = -1;
    if (was_refused) ++refused[c.ep];
  };
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    const Endpoint& ep = endpoints[e];
    for (int i = 0; ep.port != 0 && i < ep.count && i < kMaxAddrs; ++i) {
      Conn c;
      c.ep = e;
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) continue;
      ++tried[e];
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = ep.addrs[i];
      a.sin_port = htons(ep.port);
      if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        c.connected = true;
        if (!send_all(c.fd, kAsk, sizeof kAsk)) finish(c, false);
      } else if (errno != EINPROGRESS) {
        finish(c, errno == ECONNREFUSED);
      }
      conns.push_back(std::move(c));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      if (c.fd >= 0 && answered[c.ep]) finish(c, false);  // another address answered
      if (c.fd < 0) continue;
      fds.push_back({c.fd, short(c.connected ? POLLIN : POLLOUT), 0});
      which.push_back(i);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (fds.empty() || left <= 0) break;
    const int n = ::poll(fds.data(), fds.size(), int(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Conn& c = conns[which[k]];
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          finish(c, err == ECONNREFUSED);
          continue;
        }
        c.connected = true;
        if (!send_all(c.fd, kAsk, sizeof kAsk)) finish(c, false);
        continue;
      }
      char buf[4096];
      const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r > 0 && c.in.size() + std::size_t(r) <= kMaxReply + 16) {
        c.in.append(buf, std::size_t(r));
        std::uint64_t size = 0;
        if (c.in.size() >= 16) std::memcpy(&size, c.in.data() + 8, sizeof size);
        if (c.in.size() >= 16 && std::memcmp(c.in.data(), kAnswer, 8) == 0 &&
            c.in.size() == 16 + size) {
          replies[c.ep].outcome = Outcome::answered;
          replies[c.ep].bytes = c.in.substr(16);
          answered[c.ep] = true;
          finish(c, false);
        }
        continue;
      }
      finish(c, false);  // closed early, reset or too long: not an answer
    }
  }
  for (Conn& c : conns) finish(c, false);
  for (std::size_t e = 0; e < endpoints.size(); ++e)
    if (!answered[e])
      replies[e].outcome =
          tried[e] > 0 && refused[e] == tried[e] ? Outcome::refused : Outcome::silent;
  return replies;
}

}  // namespace distnet::progress::tcp
