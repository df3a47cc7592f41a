// MPI for device buffers without a CUDA-aware MPI: each collective copies the data to the host,
// runs the MPI collective there and copies the result back (--comm mpi with --device cuda; slow,
// for comparison and for machines where NCCL cannot run).
#include <vector>

#include "core/clock.hpp"
#include "distnet/comm.hpp"

namespace distnet {
namespace {

using steady::seconds_since;

class HostStagedCommunicator final : public Communicator {
 public:
  HostStagedCommunicator(std::unique_ptr<Communicator> host, Backend& be)
      : host_(std::move(host)), be_(be) {}

  std::string name() const override { return host_->name() + " (through host memory)"; }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  void allreduce_sum(float* data, std::size_t count) override {
    staged(data, count, [&](float* h) { host_->allreduce_sum(h, count); });
  }
  void allreduce_sum(double* data, std::size_t count) override {
    staged(data, count, [&](double* h) { host_->allreduce_sum(h, count); });
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    staged(static_cast<char*>(data), bytes, [&](char* h) { host_->broadcast(h, bytes, root); });
  }
  void allgather(const float* send, float* recv, std::size_t count) override {
    // The whole output travels through the host: this rank's piece is copied into its place.
    const std::size_t all = count * std::size_t(size());
    float* mine = recv + std::size_t(rank()) * count;
    if (send != mine) be_.copy(mine, send, count * sizeof(float));
    be_.synchronize();  // the input's compute is not exchange time
    const auto t0 = steady::Clock::now();
    staged(recv, all,
           [&](float* h) { host_->allgather(h + std::size_t(rank()) * count, h, count); });
    add_exchange_seconds(seconds_since(t0));
  }
  void reduce_scatter_sum(const float* send, float* recv, std::size_t count) override {
    const std::size_t all = count * std::size_t(size());
    if (host_copy_.size() < (all + count) * sizeof(float)) host_copy_.resize((all + count) * 4);
    auto* h = reinterpret_cast<float*>(host_copy_.data());
    be_.synchronize();  // the input's compute is not exchange time
    const auto t0 = steady::Clock::now();
    be_.download(h, send, all * sizeof(float));
    host_->reduce_scatter_sum(h, h + all, count);
    be_.upload(recv, h + all, count * sizeof(float));
    add_exchange_seconds(seconds_since(t0));
  }
  CommBytes bytes_sent() const override { return host_->bytes_sent(); }
  void set_timeline(Timeline* timeline) override { host_->set_timeline(timeline); }
  void reset_bytes() override { host_->reset_bytes(); }
  void barrier() override {
    be_.synchronize();
    host_->barrier();
  }
  void allreduce_sum_async(float* data, std::size_t count, Wire wire) override {
    staged(data, count, [&](float* h) { host_->allreduce_sum_async(h, count, wire); });
  }

 private:
  template <typename T, typename Op>
  void staged(T* device, std::size_t count, Op op) {
    const std::size_t bytes = count * sizeof(T);
    if (host_copy_.size() < bytes) host_copy_.resize(bytes);
    auto* h = reinterpret_cast<T*>(host_copy_.data());
    be_.download(h, device, bytes);  // waits for the compute stream
    op(h);
    be_.upload(device, h, bytes);
  }

  std::unique_ptr<Communicator> host_;
  Backend& be_;
  std::vector<char> host_copy_;
};

}  // namespace

std::unique_ptr<Communicator> through_host(std::unique_ptr<Communicator> host, Backend& backend) {
  if (backend.device().is_cpu()) return host;
  return std::make_unique<HostStagedCommunicator>(std::move(host), backend);
}

}  // namespace distnet
