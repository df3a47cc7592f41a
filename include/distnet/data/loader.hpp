// The loader: background threads prepare this rank's slice of upcoming global batches (or of
// their micro-batches, --accumulate) into a bounded queue. Batches come out in order and each is a
// pure function of (epoch, batch index), so the output is identical for any number of workers.
// Destroying the loader stops and joins its threads, also in the middle of an epoch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "distnet/data/dataset.hpp"
#include "distnet/data/sampler.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/timeline.hpp"

namespace distnet::data {

// This rank's part of one micro-batch of a global batch (with --accumulate 1, the default, the
// micro-batch is the whole global batch). Micro-batch k of K of a global batch of G samples holds
// positions split_slice(G, K, k) (consecutive, sizes differing by at most one, the larger first),
// and each micro-batch is split over the ranks as a global batch is without accumulation.
struct Batch {
  std::int64_t epoch = 0, index = 0;      // which global batch (optimizer step in the epoch)
  std::int64_t global_size = 0;           // samples in the whole global batch
  int micro = 0, micros = 1;              // which micro-batch of how many (--accumulate)
  std::int64_t micro_size = 0;            // samples in this micro-batch, over all ranks
  Slice slice;                            // this rank's positions within the global batch
  std::vector<std::uint32_t> sample_ids;  // global dataset indices, one per local sample
  std::vector<std::int32_t> labels;
  std::vector<float> images;      // slice.size() x C x S x S, when the loader transforms
  std::vector<std::uint8_t> raw;  // slice.size() x C x H x W raw pixels, when it does not
  int size() const { return static_cast<int>(slice.size()); }
};

struct LoaderOptions {
  int rank = 0, world = 1;       // split every batch over this many ranks; eval shards use 0, 1
  int workers = 1;               // background threads; 0 loads in the calling thread
  int prefetch = 4;              // batches prepared ahead of the consumer
  Timeline* timeline = nullptr;  // records each batch's preparation on the loader track
  int micros = 1;  // micro-batches per global batch (--accumulate); next() yields each
  static int default_workers();  // from the core count
};

class Loader {
 public:
  // `transform` null: batches carry raw uint8 pixels (for GPU-side resizing).
  // Starts at batch `first_batch` of `first_epoch` (counted in global batches, micro-batch 0) and
  // continues across epochs.
  Loader(const Dataset& ds, const Sampler& sampler, const ImageTransform* transform,
         const LoaderOptions& opts, std::int64_t first_epoch = 0, std::int64_t first_batch = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next (micro-)batch in order; blocks until it is ready; rethrows a worker's exception.
  Batch next();
  // Total time next() spent blocked (with 0 workers: loading the batch itself).
  double wait_seconds() const { return wait_s_; }
  std::size_t queued();  // batches prepared and not yet taken

 private:
  Batch produce(std::int64_t position);
  std::shared_ptr<const std::vector<std::uint32_t>> order_for(std::int64_t epoch);
  void worker();

  const Dataset& ds_;
  const Sampler& sampler_;
  const ImageTransform* transform_;
  LoaderOptions opts_;
  std::int64_t per_epoch_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::int64_t next_claim_, next_take_;
  std::map<std::int64_t, Batch> ready_;
  std::map<std::int64_t, std::exception_ptr> failed_;
  std::map<std::int64_t, std::shared_ptr<const std::vector<std::uint32_t>>> orders_;
  std::vector<std::thread> threads_;
  double wait_s_ = 0;
};

}  // namespace distnet::data
