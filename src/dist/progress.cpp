#include "distnet/progress.hpp"

#include "progress_tcp.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

namespace distnet::progress {
namespace {

constexpr std::int64_t kReady = 0x64697374706f7267;  // "distprog"
constexpr int kHost = 64;

struct ChannelWords {
  std::atomic<std::int64_t> signature, entered, finished;
};
struct Slot {
  std::atomic<std::int64_t> ready, aborting;
  std::int64_t pid;
  char host[kHost];
  ChannelWords ch[kChannels];
};
// A copy read over the network: the same layout in plain words.
struct PlainSlot {
  std::int64_t ready, aborting, pid;
  char host[kHost];
  struct {
    std::int64_t signature, entered, finished;
  } ch[kChannels];
};
static_assert(sizeof(std::atomic<std::int64_t>) == sizeof(std::int64_t) &&
                  std::atomic<std::int64_t>::is_always_lock_free,
              "the board needs address-free 64-bit atomics");
static_assert(sizeof(Slot) == sizeof(PlainSlot), "Slot and PlainSlot must match");

PlainSlot copy_of(const Slot& s) {
  PlainSlot p{};
  p.ready = s.ready.load(std::memory_order_acquire);
  p.aborting = s.aborting.load();
  p.pid = s.pid;
  std::memcpy(p.host, s.host, kHost);
  p.host[kHost - 1] = 0;
  for (int c = 0; c < kChannels; ++c) {
    p.ch[c].signature = s.ch[c].signature.load();
    p.ch[c].finished = s.ch[c].finished.load();  // before entered: never finished > entered
    p.ch[c].entered = s.ch[c].entered.load();
  }
  return p;
}

struct Board {
  int rank = 0, size = 1;
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Win shared = MPI_WIN_NULL, world = MPI_WIN_NULL;
  Slot* mine = nullptr;
  std::vector<Slot*> direct;  // by world rank; null where not on this host
  std::vector<pid_t> pids;    // by world rank: a process this one can probe (kill 0); 0: none
  bool remote_reads = false;  // the world window exists and MPI_THREAD_MULTIPLE is on
  bool rma_asked = false;     // DISTNET_PROGRESS_RMA asked for it
  // Between hosts: each host's leader serves its ranks' parts over TCP (progress_tcp.hpp).
  std::vector<std::pair<int, const Slot*>> local;  // this host's ranks (world rank, part)
  std::unique_ptr<tcp::Server> server;             // on this host's leader
  std::vector<tcp::Endpoint> where;                // by world rank: its host's server
  std::vector<std::string> hosts;                  // by world rank
  bool tcp = false;
  std::mutex mu;  // channels
  bool used[kChannels] = {};
  std::vector<int> members[kChannels];
};

std::mutex g_mu;  // the board's lifetime against readers on other threads
std::atomic<Board*> g_board{nullptr};
std::atomic<bool> g_open{false};

std::int64_t signature_of(const std::vector<int>& members) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  };
  mix(members.size());
  for (int m : members) mix(std::uint64_t(m));
  return std::int64_t(h | 1);  // never 0, the value of an unused channel
}

// DISTNET_PROGRESS_RMA: unset or 0 -- no world window (Open MPI 4's osc/pt2pt, its one-sided
// component over TCP, refuses MPI_THREAD_MULTIPLE and says so in a box); 1 -- a world window
// where the ranks span several hosts; force -- read every peer through it, even on one host
// (for testing the path).
int rma_mode() {
  const char* v = std::getenv("DISTNET_PROGRESS_RMA");
  if (!v || !*v || std::strcmp(v, "0") == 0) return 0;
  return std::strcmp(v, "force") == 0 ? 2 : 1;
}

// DISTNET_PROGRESS_TCP: unset or 1 -- where the ranks span several hosts, each host serves its
// parts over TCP; 0 -- not; force -- read every peer that way, even on one host (for testing).
int tcp_mode() {
  const char* v = std::getenv("DISTNET_PROGRESS_TCP");
  if (!v || !*v || std::strcmp(v, "1") == 0) return 1;
  if (std::strcmp(v, "force") == 0) return 2;
  return 0;
}

// What a host's server hands out: (world rank, part) for each rank of the host.
std::string snapshot_of(const Board& b) {
  std::string out;
  for (const auto& [rank, slot] : b.local) {
    const std::int32_t r = rank;
    const PlainSlot p = copy_of(*slot);
    out.append(reinterpret_cast<const char*>(&r), sizeof r);
    out.append(reinterpret_cast<const char*>(&p), sizeof p);
  }
  return out;
}

// Collective over `world`: the leader of each host starts its server, every rank learns where
// each rank's host serves and the host's name. A server that cannot start is port 0 (its
// ranks are then read no other way than before).
void open_tcp(Board& b, MPI_Comm world, bool leader, bool force) {
  struct Wire {
    tcp::Endpoint ep;
    char host[kHost];
  };
  Wire mine{};
  if (leader) {
    try {
      const Board* board = &b;
      b.server = std::make_unique<tcp::Server>([board] { return snapshot_of(*board); });
      mine.ep.port = b.server->port();
      const std::vector<std::uint32_t> addrs = tcp::host_addresses();
      for (std::uint32_t a : addrs)
        if (mine.ep.count < tcp::kMaxAddrs) mine.ep.addrs[mine.ep.count++] = a;
      if (force && mine.ep.count < tcp::kMaxAddrs)  // one host: its loopback serves too
        mine.ep.addrs[mine.ep.count++] = htonl(INADDR_LOOPBACK);
    } catch (const std::exception&) {
      b.server.reset();
      mine.ep = tcp::Endpoint{};
    }
  }
  MPI_Bcast(&mine.ep, int(sizeof mine.ep), MPI_BYTE, 0, b.node);
  std::memcpy(mine.host, b.mine->host, kHost);
  std::vector<Wire> all(std::size_t(b.size));
  if (MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE,
                    world) != MPI_SUCCESS)
    return;
  b.where.resize(all.size());
  b.hosts.resize(all.size());
  for (std::size_t r = 0; r < all.size(); ++r) {
    b.where[r] = all[r].ep;
    all[r].host[kHost - 1] = 0;
    b.hosts[r] = all[r].host;
  }
  b.tcp = true;
  if (force)
    for (int r = 0; r < b.size; ++r)
      if (r != b.rank) b.direct[std::size_t(r)] = nullptr;
}

}  // namespace

bool open_board(MPI_Comm world) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_board) return true;
  auto b = std::make_unique<Board>();
  if (MPI_Comm_rank(world, &b->rank) != MPI_SUCCESS ||
      MPI_Comm_size(world, &b->size) != MPI_SUCCESS)
    return false;
  if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, b->rank, MPI_INFO_NULL, &b->node) !=
      MPI_SUCCESS)
    return false;
  void* base = nullptr;
  if (MPI_Win_allocate_shared(MPI_Aint(sizeof(Slot)), 1, MPI_INFO_NULL, b->node, &base,
                              &b->shared) != MPI_SUCCESS) {
    MPI_Comm_free(&b->node);
    return false;
  }
  MPI_Win_set_errhandler(b->shared, MPI_ERRORS_RETURN);
  b->mine = new (base) Slot;
  b->mine->aborting.store(0);
  b->mine->pid = getpid();
  std::memset(b->mine->host, 0, kHost);
  gethostname(b->mine->host, kHost - 1);
  for (ChannelWords& c : b->mine->ch) c.signature = 0, c.entered = 0, c.finished = 0;
  b->mine->ready.store(kReady, std::memory_order_release);
  // Every part on this host is filled in before anyone reads one.
  int node_size = 1, all_ok = 0, ok = 1;
  MPI_Comm_size(b->node, &node_size);
  MPI_Group node_group = MPI_GROUP_NULL, world_group = MPI_GROUP_NULL;
  std::vector<int> node_ranks(std::size_t(node_size), 0), world_ranks(std::size_t(node_size), -1);
  for (int i = 0; i < node_size; ++i) node_ranks[std::size_t(i)] = i;
  if (MPI_Comm_group(b->node, &node_group) != MPI_SUCCESS ||
      MPI_Comm_group(world, &world_group) != MPI_SUCCESS ||
      MPI_Group_translate_ranks(node_group, node_size, node_ranks.data(), world_group,
                                world_ranks.data()) != MPI_SUCCESS)
    ok = 0;
  if (node_group != MPI_GROUP_NULL) MPI_Group_free(&node_group);
  if (world_group != MPI_GROUP_NULL) MPI_Group_free(&world_group);
  b->direct.assign(std::size_t(b->size), nullptr);
  // The same choice on every rank (a window is made collectively).
  int rma = rma_mode();
  if (MPI_Allreduce(MPI_IN_PLACE, &rma, 1, MPI_INT, MPI_MIN, world) != MPI_SUCCESS) rma = 0;
  for (int i = 0; ok && i < node_size; ++i) {
    MPI_Aint bytes = 0;
    int unit = 1;
    void* p = nullptr;
    if (MPI_Win_shared_query(b->shared, i, &bytes, &unit, &p) != MPI_SUCCESS ||
        bytes < MPI_Aint(sizeof(Slot)) || world_ranks[std::size_t(i)] < 0) {
      ok = 0;
      break;
    }
    if (rma != 2 || world_ranks[std::size_t(i)] == b->rank)
      b->direct[std::size_t(world_ranks[std::size_t(i)])] = static_cast<Slot*>(p);
    b->local.emplace_back(world_ranks[std::size_t(i)], static_cast<const Slot*>(p));
  }
  // Peers on this host whose pid this process can probe (not so across pid namespaces): alive
  // now -- every part is filled in, nobody has left yet -- so a later ESRCH means it has died.
  b->pids.assign(std::size_t(b->size), 0);
  if (MPI_Barrier(b->node) != MPI_SUCCESS) ok = 0;
  for (int r = 0; ok && r < b->size; ++r) {
    const Slot* peer = b->direct[std::size_t(r)];
    if (r != b->rank && peer && peer->ready.load() == kReady && peer->pid > 0 &&
        kill(pid_t(peer->pid), 0) == 0)
      b->pids[std::size_t(r)] = pid_t(peer->pid);
  }
  // One agreement over the world: the board is on everywhere or nowhere.
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, world) != MPI_SUCCESS) all_ok = 0;
  int node_count = 0, node_rank = 0;
  MPI_Comm_rank(b->node, &node_rank);
  const int leader = node_rank == 0 ? 1 : 0;
  if (MPI_Allreduce(&leader, &node_count, 1, MPI_INT, MPI_SUM, world) != MPI_SUCCESS) all_ok = 0;
  b->rma_asked = rma != 0;
  if (all_ok && rma != 0 && (node_count > 1 || rma == 2)) {
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (level == MPI_THREAD_MULTIPLE &&
        MPI_Win_create(b->mine, MPI_Aint(sizeof(Slot)), 1, MPI_INFO_NULL, world, &b->world) ==
            MPI_SUCCESS) {
      MPI_Win_set_errhandler(b->world, MPI_ERRORS_RETURN);
      b->remote_reads = true;
    }
  }
  if (!all_ok) {
    MPI_Win_free(&b->shared);
    MPI_Comm_free(&b->node);
    return false;
  }
  int tcp = tcp_mode();
  if (MPI_Allreduce(MPI_IN_PLACE, &tcp, 1, MPI_INT, MPI_MIN, world) != MPI_SUCCESS) tcp = 0;
  if (tcp != 0 && (node_count > 1 || tcp == 2)) open_tcp(*b, world, node_rank == 0, tcp == 2);
  g_board = b.release();
  g_open = true;
  return true;
}

void close_board() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_board) return;
  g_open = false;
  Board* b = g_board;
  g_board = nullptr;
  b->server.reset();  // its thread reads the parts: stopped before they go
  if (b->world != MPI_WIN_NULL) MPI_Win_free(&b->world);
  MPI_Win_free(&b->shared);
  MPI_Comm_free(&b->node);
  delete b;
}

bool board_open() {
  return g_open.load();
}

int open_channel(const std::vector<int>& members) {
  std::lock_guard<std::mutex> lock(g_mu);
  Board* b = g_board;
  if (!b) return -1;
  std::lock_guard<std::mutex> channels(b->mu);
  for (int c = 0; c < kChannels; ++c) {
    if (b->used[c]) continue;
    b->used[c] = true;
    b->members[c] = members;
    ChannelWords& w = b->mine->ch[c];
    w.entered = 0;
    w.finished = 0;
    w.signature.store(signature_of(members), std::memory_order_release);
    return c;
  }
  return -1;
}

void close_channel(int channel) {
  if (channel < 0 || channel >= kChannels) return;
  std::lock_guard<std::mutex> lock(g_mu);
  Board* b = g_board;
  if (!b) return;
  std::lock_guard<std::mutex> channels(b->mu);
  b->mine->ch[channel].signature = 0;
  b->used[channel] = false;
  b->members[channel].clear();
}

// The training thread's hot path: no lock; the channel stays valid while its communicator lives,
// and the board outlives every communicator.
void entered(int channel) {
  Board* b = g_board.load(std::memory_order_acquire);
  if (channel >= 0 && b) b->mine->ch[channel].entered.fetch_add(1, std::memory_order_release);
}
void finished(int channel) {
  Board* b = g_board.load(std::memory_order_acquire);
  if (channel >= 0 && b) b->mine->ch[channel].finished.fetch_add(1, std::memory_order_release);
}
std::int64_t entered_count(int channel) {
  Board* b = g_board.load(std::memory_order_acquire);
  return channel >= 0 && b ? b->mine->ch[channel].entered.load() : 0;
}

void publish_aborting() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (Board* b = g_board.load()) b->mine->aborting.store(1, std::memory_order_release);
}

bool peer_gone() {
  std::lock_guard<std::mutex> lock(g_mu);
  const Board* b = g_board;
  if (!b) return false;
  for (pid_t p : b->pids)
    if (p > 0 && kill(p, 0) != 0 && errno == ESRCH) return true;
  return false;
}

bool peer_aborting() {
  std::lock_guard<std::mutex> lock(g_mu);
  const Board* b = g_board;
  if (!b) return false;
  for (int r = 0; r < b->size; ++r) {
    const Slot* s = b->direct[std::size_t(r)];
    if (r != b->rank && s && s->ready.load(std::memory_order_acquire) == kReady &&
        s->aborting.load(std::memory_order_acquire) != 0)
      return true;
  }
  return false;
}

std::vector<int> world_ranks_of(MPI_Comm comm) {
  int size = 0;
  if (MPI_Comm_size(comm, &size) != MPI_SUCCESS) return {};
  MPI_Group g, w;
  std::vector<int> in(static_cast<std::size_t>(size)), out(static_cast<std::size_t>(size), -1);
  for (int i = 0; i < size; ++i) in[std::size_t(i)] = i;
  if (MPI_Comm_group(comm, &g) != MPI_SUCCESS) return {};
  if (MPI_Comm_group(MPI_COMM_WORLD, &w) != MPI_SUCCESS ||
      MPI_Group_translate_ranks(g, size, in.data(), w, out.data()) != MPI_SUCCESS) {
    MPI_Group_free(&g);
    return {};
  }
  MPI_Group_free(&g);
  MPI_Group_free(&w);
  for (int r : out)
    if (r < 0) return {};
  return out;
}

namespace {

// Remote parts, read on a helper thread; the reader waits for it a bounded time and, if it
// never comes back (a Get that needs a hung target's progress), leaves it behind: the job is
// being aborted.
struct RemoteRead {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::vector<std::pair<int, PlainSlot>> got;
};

std::shared_ptr<RemoteRead> read_remote(MPI_Win win, std::vector<int> targets) {
  auto r = std::make_shared<RemoteRead>();
  std::thread([r, win, targets] {
    std::vector<std::pair<int, PlainSlot>> got;
    for (int t : targets) {
      PlainSlot s{};
      if (MPI_Win_lock(MPI_LOCK_SHARED, t, 0, win) != MPI_SUCCESS) continue;
      const int rc = MPI_Get(&s, int(sizeof s), MPI_BYTE, t, 0, int(sizeof s), MPI_BYTE, win);
      if (MPI_Win_unlock(t, win) == MPI_SUCCESS && rc == MPI_SUCCESS) got.emplace_back(t, s);
    }
    std::lock_guard<std::mutex> lock(r->mu);
    r->got = std::move(got);
    r->done = true;
    r->cv.notify_all();
  }).detach();
  return r;
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s;
}

// "3, 5-9, 12": ranks in ascending order, runs as ranges.
std::string ranges(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(ranks[i])
                           : std::to_string(ranks[i]) + "-" + std::to_string(ranks[j]));
    i = j + 1;
  }
  return join(parts);
}

}  // namespace

std::string describe_laggards(int channel, std::int64_t n, double limit_s) {
  std::lock_guard<std::mutex> lock(g_mu);
  const Board* b = g_board;
  if (!b) return "could not tell which rank (no progress board: MPI could not make its window)";
  if (channel < 0) return "could not tell which rank (this communicator is not tracked)";
  const std::vector<int>& members = b->members[channel];
  const std::int64_t sig = b->mine->ch[channel].signature.load();
  std::vector<std::pair<int, PlainSlot>> parts;
  std::vector<int> remote, unread;
  for (int m : members) {
    if (m == b->rank) continue;
    if (const Slot* s = b->direct[std::size_t(m)])
      parts.emplace_back(m, copy_of(*s));
    else
      remote.push_back(m);
  }
  // Other hosts over TCP: one question per host, all at once.
  std::vector<int> unreachable, gone;
  double asked_s = 0;
  if (!remote.empty() && b->tcp) {
    std::vector<tcp::Endpoint> eps;
    std::vector<std::vector<int>> asked;
    std::vector<int> rest;
    for (int m : remote) {
      const tcp::Endpoint& e = b->where[std::size_t(m)];
      if (e.port == 0) {
        rest.push_back(m);
        continue;
      }
      std::size_t j = 0;
      while (j < eps.size() && !(eps[j].port == e.port && eps[j].count == e.count &&
                                 std::memcmp(eps[j].addrs, e.addrs, sizeof e.addrs) == 0))
        ++j;
      if (j == eps.size()) eps.push_back(e), asked.emplace_back();
      asked[j].push_back(m);
    }
    asked_s = std::min(limit_s, 3.0);
    const std::vector<tcp::Reply> replies = tcp::ask_all(eps, asked_s);
    for (std::size_t j = 0; j < eps.size(); ++j) {
      if (replies[j].outcome == tcp::Outcome::refused) {
        gone.insert(gone.end(), asked[j].begin(), asked[j].end());
        continue;
      }
      if (replies[j].outcome == tcp::Outcome::silent) {
        unreachable.insert(unreachable.end(), asked[j].begin(), asked[j].end());
        continue;
      }
      const std::string& bytes = replies[j].bytes;
      constexpr std::size_t kRecord = sizeof(std::int32_t) + sizeof(PlainSlot);
      for (int m : asked[j]) {
        bool found = false;
        for (std::size_t at = 0; at + kRecord <= bytes.size(); at += kRecord) {
          std::int32_t r = 0;
          std::memcpy(&r, bytes.data() + at, sizeof r);
          if (r != m) continue;
          PlainSlot slot{};
          std::memcpy(&slot, bytes.data() + at + sizeof r, sizeof slot);
          slot.host[kHost - 1] = 0;
          parts.emplace_back(m, slot);
          found = true;
          break;
        }
        if (!found) unread.push_back(m);
      }
    }
    remote = rest;
  }
  if (!remote.empty() && b->remote_reads) {
    auto r = read_remote(b->world, remote);
    std::unique_lock<std::mutex> wait(r->mu);
    r->cv.wait_for(wait, std::chrono::duration<double>(limit_s), [&] { return r->done; });
    for (auto& [m, s] : r->got) parts.emplace_back(m, s);
    if (!r->done) {
      unread = remote;  // nothing came back in time
    } else {
      for (int m : remote) {
        bool found = false;
        for (auto& [got, s] : r->got) found = found || got == m;
        if (!found) unread.push_back(m);
      }
    }
  } else {
    unread.insert(unread.end(), remote.begin(), remote.end());
  }
  std::sort(parts.begin(), parts.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> late;
  std::vector<int> unknown, more;  // more: late ranks beyond the first kDetailed
  constexpr std::size_t kDetailed = 8;
  for (auto& [m, s] : parts) {
    const int c = channel;
    if (s.ready != kReady || s.ch[c].signature != sig) {
      unknown.push_back(m);
      continue;
    }
    if (s.ch[c].entered >= n) continue;
    if (late.size() == kDetailed) {
      more.push_back(m);
      continue;
    }
    std::string what = std::to_string(m) + " (" + s.host + ", ";
    if (s.ch[c].entered > s.ch[c].finished)
      what += "still in collective #" + std::to_string(s.ch[c].entered) + ")";
    else
      what += "last finished collective #" + std::to_string(s.ch[c].finished) + ")";
    late.push_back(what);
  }
  unknown.insert(unknown.end(), unread.begin(), unread.end());
  std::string unread_text;
  if (!unknown.empty()) {
    unread_text = "could not read the progress of rank" +
                  std::string(unknown.size() > 1 ? "s " : " ") + ranges(unknown);
    if (!unread.empty() && !b->remote_reads)
      unread_text += b->rma_asked ? " (MPI could not make the one-sided window that "
                                    "DISTNET_PROGRESS_RMA asks for)"
                                  : " (on other hosts: DISTNET_PROGRESS_RMA=1 reads those with "
                                    "MPI one-sided gets)";
    else if (!unread.empty())
      unread_text += " (the one-sided reads did not complete within " +
                     std::to_string(int(limit_s + 0.5)) + " s)";
  }
  // Ranks no host answered for: by host, "2-3 on node2, 5 on node3".
  auto by_host = [&](const std::vector<int>& ranks) {
    std::vector<std::string> hosts, parts_text;
    for (int m : ranks)
      if (std::find(hosts.begin(), hosts.end(), b->hosts[std::size_t(m)]) == hosts.end())
        hosts.push_back(b->hosts[std::size_t(m)]);
    for (const std::string& h : hosts) {
      std::vector<int> on;
      for (int m : ranks)
        if (b->hosts[std::size_t(m)] == h) on.push_back(m);
      parts_text.push_back(ranges(on) + " on " + h);
    }
    return std::string(ranks.size() > 1 ? "ranks " : "rank ") + join(parts_text);
  };
  std::vector<std::string> silent;
  if (!unreachable.empty())
    silent.push_back(by_host(unreachable) + " unreachable (no answer within " +
                     std::to_string(int(asked_s + 0.5)) +
                     " s: a network partition, or the node is lost)");
  if (!gone.empty())
    silent.push_back(by_host(gone) +
                     " gone (the host answers, but none of its ranks' processes does)");
  std::string text;
  if (!silent.empty() && late.empty() && unknown.empty())
    text = join(silent);
  else if (!silent.empty())
    text = (late.empty() ? "" : "ranks that have not reached it: " + join(late) + "; ") +
           join(silent) + (unknown.empty() ? "" : "; " + unread_text);
  else if (!late.empty())
    text = "ranks that have not reached it: " + join(late) +
           (more.empty() ? ""
                         : " and " + std::to_string(more.size()) + " more (" + ranges(more) + ")") +
           (unknown.empty() ? "" : "; " + unread_text);
  else if (unknown.empty())
    text = "every rank has reached it";
  else
    text = "could not tell which rank: " + unread_text;
  return text;
}

}  // namespace distnet::progress
