#include "distnet/data/loader.hpp"

#include <algorithm>
#include <chrono>

#include "distnet/error.hpp"

namespace distnet::data {

int LoaderOptions::default_workers() {
  const unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(cores / 2, 1u, 4u));
}

Loader::Loader(const Dataset& ds, const Sampler& sampler, const ImageTransform* transform,
               const LoaderOptions& opts, std::int64_t first_epoch, std::int64_t first_batch)
    : ds_(ds),
      sampler_(sampler),
      transform_(transform),
      opts_(opts),
      per_epoch_(sampler.batches_per_epoch()) {
  DISTNET_CHECK_USAGE(opts.workers >= 0,
                      "--workers must be >= 0, got " + std::to_string(opts.workers));
  DISTNET_CHECK(opts.prefetch >= 1, "loader prefetch must be >= 1");
  DISTNET_CHECK(opts.micros >= 1, "micro-batches per batch must be >= 1");
  DISTNET_CHECK(per_epoch_ >= 1, "the sampler yields no batch");
  DISTNET_CHECK(!transform || transform->input_shape() == ds.image_shape(),
                "transform expects " + transform->input_shape().str() + " images, dataset has " +
                    ds.image_shape().str());
  // Positions count micro-batches: position p is micro-batch p % micros of global batch
  // p / micros (counted over epochs).
  next_claim_ = next_take_ = (first_epoch * per_epoch_ + first_batch) * opts.micros;
  for (int i = 0; i < opts.workers; ++i) threads_.emplace_back([this] { worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

std::shared_ptr<const std::vector<std::uint32_t>> Loader::order_for(std::int64_t epoch) {
  // Called with mu_ held. Orders are small (4 bytes per sample) and computed once per epoch.
  auto it = orders_.find(epoch);
  if (it == orders_.end()) {
    it = orders_
             .emplace(epoch,
                      std::make_shared<const std::vector<std::uint32_t>>(sampler_.order(epoch)))
             .first;
    while (orders_.size() > 2) orders_.erase(orders_.begin());
  }
  return it->second;
}

std::size_t Loader::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_.size();
}

Batch Loader::produce(std::int64_t position) {
  const std::int64_t global = position / opts_.micros;
  Timeline::Scope span(opts_.timeline, Timeline::Track::loader, "load batch ", global % per_epoch_,
                       "loader");
  Batch b;
  b.epoch = global / per_epoch_;
  b.index = global % per_epoch_;
  b.micros = opts_.micros;
  b.micro = static_cast<int>(position % opts_.micros);
  std::shared_ptr<const std::vector<std::uint32_t>> order;
  {
    std::lock_guard<std::mutex> lock(mu_);
    order = order_for(b.epoch);
  }
  b.global_size = sampler_.batch_size(b.index);
  const Slice micro = split_slice(b.global_size, b.micros, b.micro);
  const Slice mine = split_slice(micro.size(), opts_.world, opts_.rank);
  b.micro_size = micro.size();
  b.slice = {micro.begin + mine.begin, micro.begin + mine.end};
  b.sample_ids = sampler_.indices(*order, b.index, b.slice);
  const std::int64_t raw_per = ds_.image_shape().numel();
  const auto n = static_cast<std::size_t>(b.slice.size());
  b.labels.resize(n);
  if (transform_) {
    const std::int64_t out_per = transform_->output_shape().numel();
    b.images.resize(n * static_cast<std::size_t>(out_per));
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(raw_per));
    for (std::size_t i = 0; i < n; ++i) {
      b.labels[i] = ds_.read_epoch(b.sample_ids[i], b.epoch, pixels.data());
      transform_->apply(pixels.data(), b.images.data() + i * static_cast<std::size_t>(out_per));
    }
  } else {
    b.raw.resize(n * static_cast<std::size_t>(raw_per));
    for (std::size_t i = 0; i < n; ++i)
      b.labels[i] = ds_.read_epoch(b.sample_ids[i], b.epoch,
                                   b.raw.data() + i * static_cast<std::size_t>(raw_per));
  }
  return b;
}

void Loader::worker() {
  for (;;) {
    std::int64_t pos;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || next_claim_ < next_take_ + opts_.prefetch; });
      if (stop_) return;
      pos = next_claim_++;
    }
    Batch b;
    std::exception_ptr err;
    try {
      b = produce(pos);
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (err) {
        failed_[pos] = err;
      } else {
        ready_.emplace(pos, std::move(b));
      }
    }
    cv_.notify_all();
  }
}

Batch Loader::next() {
  if (threads_.empty()) {  // workers == 0: load here; the step waits for all of it
    const auto t0 = std::chrono::steady_clock::now();
    Batch b = produce(next_take_++);
    wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return b;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  const std::int64_t pos = next_take_;
  cv_.wait(lock, [&] { return ready_.count(pos) || failed_.count(pos); });
  wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (auto f = failed_.find(pos); f != failed_.end()) {
    const std::exception_ptr err = f->second;
    failed_.erase(f);
    ++next_take_;
    lock.unlock();
    cv_.notify_all();
    std::rethrow_exception(err);
  }
  Batch b = std::move(ready_.at(pos));
  ready_.erase(pos);
  ++next_take_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace distnet::data
