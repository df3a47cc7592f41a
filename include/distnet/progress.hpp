// The progress board: every rank publishes, in a few words of memory that the other ranks read
// without a collective, how far it has got through the collectives of each watched
// communicator, its host, and whether it is aborting the job. When a collective times out, the
// watchdog reads it to name the ranks that have not reached that collective (as Horovod's stall
// inspector does) -- the stuck collective itself cannot tell; when a SIGTERM arrives, the signal
// thread reads it to tell the launcher killing an aborted job from a stop request.
//
// Two MPI-3 windows over the same few hundred bytes per rank, made at start-up:
//   - a shared-memory window over the ranks of each host (MPI_Win_allocate_shared): the parts of
//     the ranks on this host are read directly, with atomic loads, from any thread, whatever the
//     ranks are doing (hung, stopped, sleeping);
//   - a window over MPI_COMM_WORLD (MPI_Win_create on that memory): the parts of ranks on other
//     hosts are read with MPI_Get in a passive-target epoch (MPI_Win_lock_all, MPI_Win_flush) on
//     a helper thread (needs MPI_THREAD_MULTIPLE), which the reader waits for only a bounded
//     time: transports without true one-sided progress (Open MPI's osc/pt2pt over TCP) complete
//     a Get only when the target calls MPI, and a hung target never does.
// A rank writes only its own part, with atomic stores: publishing costs no MPI call. Where a part
// cannot be read, the reader says it could not tell.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace distnet::progress {

constexpr int kChannels = 8;  // watched communicators alive at once in one process

// Collective over `world` (MpiSession calls it after MPI_Init). Returns false, and the board
// stays off, where the MPI library cannot make the windows; nothing else changes then.
bool open_board(MPI_Comm world);
// Collective: frees the windows (MpiSession, before MPI_Finalize). Never throws.
void close_board();
bool board_open();

// A watched communicator's counters on this rank. `members` are its ranks' ranks in the board's
// world, in the communicator's rank order. Channels are numbered in the order the process opens
// them (the lowest free one), so ranks that make their communicators in the same order -- as
// collective creation requires -- use the same numbers; a signature of the members guards it.
// Returns -1 (nothing is tracked) when the board is off or every channel is taken.
int open_channel(const std::vector<int>& members);
void close_channel(int channel);
void entered(int channel);   // a collective starts on it
void finished(int channel);  // ... and has ended
std::int64_t entered_count(int channel);

// This rank is aborting the job (abort.hpp's mark_aborting calls it).
void publish_aborting();
// A rank on this host other than this one has published that it is aborting.
bool peer_aborting();
// A rank on this host has died (its process is gone): the launcher ends the others next.
bool peer_gone();

// The members of `channel` that have not entered its collective number `n` (1-based; this rank
// is in it), e.g. "1 (hostA, last finished collective #122 here)". Remote parts are waited for
// at most `limit_s` seconds. Says "could not tell ..." (and why) where it cannot read, and
// "none: every rank has reached it" when every member has.
std::string describe_laggards(int channel, std::int64_t n, double limit_s);

// World ranks of `comm`'s members in its rank order (local: MPI_Group_translate_ranks).
std::vector<int> world_ranks_of(MPI_Comm comm);

}  // namespace distnet::progress
