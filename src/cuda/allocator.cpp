#include "allocator.hpp"

#include <cuda_runtime.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "distnet/cuda_check.hpp"

namespace distnet::cuda {
namespace {

std::string mib(std::size_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

// Restores the calling thread's current device on scope exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    DISTNET_CUDA_CHECK(cudaGetDevice(&old_));
    if (old_ != device) DISTNET_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(old_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int old_ = 0;
};

}  // namespace

DeviceAllocator& DeviceAllocator::of(int device) {
  static std::mutex mu;
  static std::vector<DeviceAllocator*> all;  // intentionally leaked, see the header
  std::lock_guard<std::mutex> lock(mu);
  if (device >= static_cast<int>(all.size())) all.resize(std::size_t(device) + 1, nullptr);
  if (!all[std::size_t(device)]) all[std::size_t(device)] = new DeviceAllocator(device);
  return *all[std::size_t(device)];
}

// Small requests are rounded to 512 bytes, large ones to 2 MiB, so that blocks of the sizes a
// model asks for again (activations of a slightly different batch, workspaces) are reusable.
std::size_t DeviceAllocator::round_up(std::size_t bytes) {
  const std::size_t unit = bytes < (1u << 20) ? 512 : (2u << 20);
  return (std::max<std::size_t>(bytes, 1) + unit - 1) / unit * unit;
}

Buffer DeviceAllocator::allocate(std::size_t bytes) {
  const std::size_t size = round_up(bytes);
  std::unique_lock<std::mutex> lock(mu_);
  void* ptr = nullptr;
  // Best fit among cached blocks, but never more than twice the request (to bound waste).
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    ptr = it->second;
    cached_ -= it->first;
    free_.erase(it);
  } else {
    DeviceGuard guard(device_);
    cudaError_t rc = cudaMalloc(&ptr, size);
    if (rc == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      lock.unlock();
      release_cache();
      lock.lock();
      rc = cudaMalloc(&ptr, size);
    }
    if (rc == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      std::size_t free = 0, total = 0;
      cudaMemGetInfo(&free, &total);
      throw OutOfMemory("out of memory on cuda:" + std::to_string(device_) + " allocating " +
                            mib(size) + ": " + mib(free) + " free of " + mib(total) +
                            ", distnet holds " + mib(in_use_),
                        size, free, total);
    }
    DISTNET_CUDA_CHECK(rc);
    sizes_[ptr] = size;
    ++mallocs_;
  }
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return Buffer(ptr, bytes, Device::cuda(device_), &DeviceAllocator::free_block);
}

void DeviceAllocator::free_block(void* ptr, std::size_t, Device dev) {
  of(dev.index).give_back(ptr);
}

void DeviceAllocator::give_back(void* ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = sizes_.find(ptr);
  if (it == sizes_.end()) return;  // not ours; cannot happen through Buffer
  in_use_ -= it->second;
  cached_ += it->second;
  free_.emplace(it->second, ptr);
}

void DeviceAllocator::set_wait_timeout(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  wait_timeout_s_ = seconds;
}

void DeviceAllocator::release_cache() {
  std::vector<void*> blocks;
  double timeout_s = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return;
    for (const auto& [size, ptr] : free_) {
      blocks.push_back(ptr);
      sizes_.erase(ptr);
    }
    free_.clear();
    cached_ = 0;
    timeout_s = wait_timeout_s_;
  }
  // Neither cudaDeviceSynchronize nor cudaFree has a bound, and the device may be queued behind
  // a collective that never completes: they run on a helper thread, without the lock, and this
  // thread waits for it at most timeout_s.
  const int device = device_;
  auto task = std::make_shared<std::packaged_task<void()>>([device, blocks] {
    cudaSetDevice(device);
    cudaDeviceSynchronize();  // a cached block may still be read by queued work
    for (void* ptr : blocks) cudaFree(ptr);
  });
  std::future<void> finished = task->get_future();
  std::thread([task] { (*task)(); }).detach();
  if (timeout_s > 0 &&
      finished.wait_for(std::chrono::duration<double>(timeout_s)) != std::future_status::ready)
    throw Error("out of memory on cuda:" + std::to_string(device_) +
                ", and the device did not become idle within --comm-timeout to free the cache; "
                "its queue waits for a collective that a peer rank never joined");
  finished.get();
}

std::size_t DeviceAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}
std::size_t DeviceAllocator::bytes_cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_;
}
std::size_t DeviceAllocator::peak_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}
std::size_t DeviceAllocator::device_mallocs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mallocs_;
}

Buffer allocate_pinned(std::size_t bytes) {
  void* ptr = nullptr;
  DISTNET_CUDA_CHECK(cudaMallocHost(&ptr, std::max<std::size_t>(bytes, 1)));
  return Buffer(ptr, bytes, Device::cpu(), [](void* p, std::size_t, Device) { cudaFreeHost(p); });
}

}  // namespace distnet::cuda
