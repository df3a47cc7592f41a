// Device memory for the CUDA backend: one caching allocator per GPU, so that after the first step
// no cudaMalloc or cudaFree happens inside a training step. Freed blocks go back to a pool keyed
// by size and are reused by later requests of a similar size. All distnet work on a device is
// ordered on the backend's compute stream (the communication stream only touches the gradient
// buffer, which lives as long as the model), so a block freed by one op can be handed to the next
// without waiting -- the same stream-ordered reasoning PyTorch's allocator uses. Private to
// src/cuda.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "distnet/error.hpp"
#include "distnet/tensor.hpp"

namespace distnet::cuda {

// Thrown when a device allocation fails even after the cache was emptied.
class OutOfMemory : public Error {
 public:
  OutOfMemory(const std::string& what, std::size_t requested, std::size_t free, std::size_t total)
      : Error(what), requested(requested), free(free), total(total) {}
  std::size_t requested, free, total;
};

class DeviceAllocator {
 public:
  // The allocator of GPU `device` (created on first use, never destroyed: Buffers may outlive
  // main's locals, and freeing at process exit gains nothing).
  static DeviceAllocator& of(int device);

  Buffer allocate(std::size_t bytes);
  std::size_t bytes_in_use() const;
  std::size_t bytes_cached() const;
  std::size_t peak_in_use() const;
  std::size_t device_mallocs() const;  // cudaMalloc calls so far (tests: none in steady state)
  // Returns the cached, unused blocks to the driver. It waits for the device first (a cached
  // block may still be read by queued work; cudaFree synchronises too), at most the timeout set
  // below, then Error: the wait and the frees run on a helper thread, which is left behind if the
  // device never gets there (the process is then on its way out).
  void release_cache();
  // The bound of release_cache's wait: --comm-timeout (0: none). Set by each CUDA backend.
  void set_wait_timeout(double seconds);

 private:
  explicit DeviceAllocator(int device) : device_(device) {}
  static void free_block(void* ptr, std::size_t bytes, Device dev);
  void give_back(void* ptr);
  static std::size_t round_up(std::size_t bytes);

  int device_;
  mutable std::mutex mu_;
  std::multimap<std::size_t, void*> free_;        // cached blocks by size
  std::unordered_map<void*, std::size_t> sizes_;  // every live or cached block
  std::size_t in_use_ = 0, cached_ = 0, peak_ = 0, mallocs_ = 0;
  double wait_timeout_s_ = 300;
};

// Page-locked host memory, for staging copies that run asynchronously.
Buffer allocate_pinned(std::size_t bytes);

}  // namespace distnet::cuda
