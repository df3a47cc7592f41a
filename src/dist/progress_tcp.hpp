// The progress board's side channel between hosts (progress.cpp): one small TCP server per host
// hands out the board parts of that host's ranks, so that a rank whose collective timed out can
// read how far the ranks on other hosts got -- and, when a host does not answer at all, say that
// it is unreachable. Plain sockets and poll; nothing here calls MPI, so it works while MPI hangs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace distnet::progress::tcp {

// Where a host's server listens: its port and this host's IPv4 addresses (network byte order).
constexpr int kMaxAddrs = 8;
struct Endpoint {
  std::uint16_t port = 0;  // 0: no server
  int count = 0;
  std::uint32_t addrs[kMaxAddrs] = {};
};

// The IPv4 addresses of this host's interfaces that are up, loopback excluded.
std::vector<std::uint32_t> host_addresses();

// Listens on every interface, on a port the kernel picks; answers each connection that sends
// the request with the bytes `snapshot` returns, on a thread of its own, until destroyed.
class Server {
 public:
  explicit Server(std::function<std::string()> snapshot);  // throws std::runtime_error
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::uint16_t port_ = 0;
};

enum class Outcome {
  answered,  // the snapshot came back
  refused,   // the host answered, but nothing listens there any more (the processes are gone)
  silent,    // no answer in time: the host is unreachable (a partition, a lost node)
};
struct Reply {
  Outcome outcome = Outcome::silent;
  std::string bytes;  // the snapshot, when answered
};

// Asks every endpoint at once (all of an endpoint's addresses), waiting `limit_s` seconds at most
// in all. One reply per endpoint, in order.
std::vector<Reply> ask_all(const std::vector<Endpoint>& endpoints, double limit_s);

}  // namespace distnet::progress::tcp
