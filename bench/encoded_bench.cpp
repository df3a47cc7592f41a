#include "encoded_bench.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include <sys/resource.h>

#include "distnet/data/stage_times.hpp"
#include "distnet/data/transform.hpp"
#include "distnet/error.hpp"

namespace distnet::bench {
namespace {

using Clock = std::chrono::steady_clock;

// User + system CPU seconds of the whole process (all threads) so far.
double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct RunResult {
  double wall_s = 0, cpu_s = 0;
  double read_s = 0, decode_s = 0, augment_s = 0, copy_s = 0;  // summed over threads
  std::int64_t images = 0;
};

// `images` samples (index i -> i mod size) of `epoch`, shared by `threads` threads.
RunResult timed_run(const data::Dataset& ds, const data::ImageTransform& copy, int threads,
                    std::int64_t images, std::int64_t epoch, int batch) {
  RunResult total;
  std::atomic<std::int64_t> next{0};
  std::mutex mu;
  std::exception_ptr err;
  const auto work = [&] {
    const auto raw_per = std::size_t(ds.image_shape().numel());
    const auto out_per = std::size_t(copy.output_shape().numel());
    std::vector<std::uint8_t> pixels(raw_per);
    std::vector<float> slots(out_per * std::size_t(batch));
    data::StageTimes st;
    data::set_thread_stage_times(&st);
    RunResult mine;
    try {
      for (std::int64_t i; (i = next++) < images;) {
        const auto t0 = Clock::now();
        ds.read_epoch(i % ds.size(), epoch, pixels.data());
        const auto t1 = Clock::now();
        copy.apply(pixels.data(), slots.data() + std::size_t(i % batch) * out_per);
        const auto t2 = Clock::now();
        mine.read_s += seconds(t0, t1);
        mine.copy_s += seconds(t1, t2);
        ++mine.images;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      err = std::current_exception();
    }
    data::set_thread_stage_times(nullptr);
    std::lock_guard<std::mutex> lock(mu);
    total.read_s += mine.read_s - st.decode_s - st.augment_s;
    total.decode_s += st.decode_s;
    total.augment_s += st.augment_s;
    total.copy_s += mine.copy_s;
    total.images += mine.images;
  };
  const double c0 = process_cpu_s();
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  total.wall_s = seconds(t0, Clock::now());
  total.cpu_s = process_cpu_s() - c0;
  if (err) std::rethrow_exception(err);
  return total;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

void run_encoded_bench(data::DatasetOptions d, const EncodedBenchOptions& o) {
  DISTNET_CHECK_USAGE(o.images >= 1, "--images must be >= 1");
  DISTNET_CHECK_USAGE(o.repeats >= 1, "--repeats must be >= 1");
  DISTNET_CHECK_USAGE(o.batch >= 1, "--batch must be >= 1");
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  std::printf("machine: %u hardware threads; one thread per core; %lld images per run, %d runs\n",
              hw, static_cast<long long>(o.images), o.repeats);
  for (const std::string& name : o.transforms) {
    const bool train = name == "train";
    d.augment = train;  // eval: the training files with the evaluation resize + centre crop
    const auto ds = data::open_dataset(d, data::Split::train);
    const data::ImageTransform copy(ds->image_shape(),
                                    {0, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}});
    const int s = d.image_size;
    std::printf("transform %s: %s; dataset %s\n", name.c_str(),
                train ? ("RandomResizedCrop(" + std::to_string(s) + ") + flip").c_str()
                      : ("Resize(" + std::to_string(s * 256 / 224) + ") + CenterCrop(" +
                         std::to_string(s) + ")")
                            .c_str(),
                ds->description().c_str());
    for (const int cores : o.cores) {
      timed_run(*ds, copy, cores, std::min<std::int64_t>(o.images, ds->size()), 0, o.batch);
      std::vector<double> rates, cpu_rates;
      RunResult sum;
      for (int r = 0; r < o.repeats; ++r) {
        const RunResult one = timed_run(*ds, copy, cores, o.images, r + 1, o.batch);
        rates.push_back(double(one.images) / one.wall_s);
        cpu_rates.push_back(double(one.images) / one.cpu_s);
        sum.read_s += one.read_s, sum.decode_s += one.decode_s;
        sum.augment_s += one.augment_s, sum.copy_s += one.copy_s;
        sum.images += one.images;
      }
      const double rate = median(rates), cpu_rate = median(cpu_rates);
      const auto ms = [&](double s_total) { return 1000.0 * s_total / double(sum.images); };
      std::printf(
          "distnet %s cores %d: %.1f images/s (runs %.1f-%.1f), %.1f per core; ms per image: "
          "read %.3f, decode %.3f, augment %.3f, copy %.3f; %.1f images per CPU-second\n",
          name.c_str(), cores, rate, *std::min_element(rates.begin(), rates.end()),
          *std::max_element(rates.begin(), rates.end()), rate / cores, ms(sum.read_s),
          ms(sum.decode_s), ms(sum.augment_s), ms(sum.copy_s), cpu_rate);
      std::string runs;
      for (const double x : rates) runs += (runs.empty() ? "" : ",") + std::to_string(x);
      std::printf(
          "{\"impl\":\"distnet\",\"dataset\":\"%s\",\"transform\":\"%s\",\"cores\":%d,"
          "\"size\":%d,\"images\":%lld,\"images_per_s\":%.2f,\"images_per_s_runs\":[%s],"
          "\"per_core\":%.2f,\"read_ms\":%.4f,\"decode_ms\":%.4f,\"augment_ms\":%.4f,"
          "\"copy_ms\":%.4f,\"images_per_cpu_s\":%.2f}\n",
          d.name.c_str(), name.c_str(), cores, s, static_cast<long long>(o.images), rate,
          runs.c_str(), rate / cores, ms(sum.read_s), ms(sum.decode_s), ms(sum.augment_s),
          ms(sum.copy_s), cpu_rate);
      std::fflush(stdout);
    }
  }
}

}  // namespace distnet::bench
