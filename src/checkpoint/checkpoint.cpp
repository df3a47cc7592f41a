#include "distnet/checkpoint.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <regex>
#include <tuple>
#include <utility>

#include "distnet/h5.hpp"

namespace distnet {
namespace {

// "conv1.weight" -> "conv1/weight": one HDF5 group per layer; a layer inside a block of a
// definition file nests ("stage.1.conv1.weight" -> "stage/1/conv1/weight").
std::string h5_name(const std::string& param_name) {
  std::string s = param_name;
  std::replace(s.begin(), s.end(), '.', '/');
  return s;
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed: " + std::strerror(err));
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

struct Tensors {
  const std::vector<ParamEntry>* entries;
  const float* values;
};

// One group per layer under `root` (nested for a block's layers), one dataset per tensor.
void write_group(hid_t file, const std::string& root, std::initializer_list<Tensors> parts) {
  h5::Id g = h5::create_group(file, root);
  std::vector<std::string> made;
  for (const Tensors& part : parts) {
    for (const ParamEntry& e : *part.entries) {
      const std::string path = h5_name(e.spec.name);
      for (auto slash = path.find('/'); slash != std::string::npos;
           slash = path.find('/', slash + 1)) {
        const std::string group = path.substr(0, slash);
        if (std::find(made.begin(), made.end(), group) == made.end()) {
          h5::create_group(g.get(), group);
          made.push_back(group);
        }
      }
      h5::write_floats(g.get(), path, e.spec.shape.dims(), part.values + e.offset);
    }
  }
}

std::int64_t step_from_name(const std::string& name) {
  static const std::regex re(R"(^ckpt-epoch(\d+)-step(\d+)\.h5$)");
  std::smatch m;
  return std::regex_match(name, m, re) ? std::stoll(m[2]) : -1;
}

}  // namespace

Snapshot take_snapshot(const Model& model, const CheckpointMeta& meta, bool borrow) {
  Snapshot s;
  s.meta = meta;
  s.meta.optimizer = model.optimizer();
  s.meta.format_version =
      model.optimizer() == "sgd" ? kCheckpointFormatVersion : kCheckpointFormatVersionOptimizer;
  s.params = model.params();
  s.state = model.state();
  s.slot_names = model.slot_names();
  Backend& be = model.backend();
  if (borrow && be.device().is_cpu()) {
    s.borrowed_params = model.param_data();
    for (std::size_t k = 0; k < s.slot_names.size(); ++k)
      s.borrowed_slots.push_back(model.slot_data(k));
    s.borrowed_state = model.state_data();
    return s;
  }
  const auto n = static_cast<std::size_t>(model.flat_size());
  s.param_values.resize(n);
  s.state_values.resize(static_cast<std::size_t>(model.state_size()));
  be.download(s.param_values.data(), model.param_data(), n * sizeof(float));
  for (std::size_t k = 0; k < s.slot_names.size(); ++k) {
    s.slot_values.emplace_back(n);
    be.download(s.slot_values.back().data(), model.slot_data(k), n * sizeof(float));
  }
  be.download(s.state_values.data(), model.state_data(), s.state_values.size() * sizeof(float));
  return s;
}

// The first tensor with a NaN or infinite value, or "".
static std::string first_nonfinite(const std::vector<ParamEntry>& entries, const float* values) {
  for (const ParamEntry& e : entries) {
    const float* v = values + e.offset;
    const std::int64_t n = e.spec.shape.numel();
    for (std::int64_t i = 0; i < n; ++i)
      if (!std::isfinite(v[i])) return e.spec.name;
  }
  return "";
}

void write_checkpoint(const Snapshot& snap, const std::string& path) {
  const std::string dir = dir_of(path);
  // The trainer never saves a diverged model; this is the last line of defence, so that rotation
  // can never replace a good checkpoint by a useless one.
  std::vector<std::tuple<const std::vector<ParamEntry>*, const float*, std::string>> parts = {
      {&snap.params, snap.param_data(), "parameter"},
      {&snap.state, snap.state_data(), "running statistic"}};
  for (std::size_t k = 0; k < snap.slot_names.size(); ++k)
    parts.emplace_back(&snap.params, snap.slot_data(k), "optimizer state " + snap.slot_names[k]);
  for (const auto& [entries, values, what] : parts) {
    const std::string bad = first_nonfinite(*entries, values);
    if (!bad.empty())
      throw Error(path + ": checkpoint not written: " + what + " " + bad +
                  " holds a non-finite value");
  }
  const bool v1 = snap.meta.format_version == kCheckpointFormatVersion;
  DISTNET_CHECK(v1 == (snap.meta.optimizer == "sgd"), "format version 1 is SGD's alone");
  const std::string tmp =
      dir + "/." + path.substr(path.rfind('/') + 1) + ".tmp-" + std::to_string(::getpid());
  try {
    h5::Id file = h5::create_file(tmp);
    const hid_t f = file.get();
    const CheckpointMeta& m = snap.meta;
    h5::set_attr(f, "format_version", m.format_version);
    h5::set_attr(f, "distnet_version", m.distnet_version);
    h5::set_attr(f, "model", m.model);
    h5::set_attr(f, "input_shape", m.input.dims());
    h5::set_attr(f, "classes", m.classes);
    h5::set_attr(f, "world_size", m.world_size);
    h5::set_attr(f, "global_batch", m.global_batch);
    h5::set_attr(f, "train_samples", m.train_samples);
    h5::set_attr(f, "config", m.config);
    h5::set_attr(f, "run_id", m.run_id);
    h5::set_attr(f, "skipped_steps", m.state.skipped_steps);
    h5::set_attr(f, "step", m.state.step);
    h5::set_attr(f, "epoch", m.state.epoch);
    h5::set_attr(f, "batch_in_epoch", m.state.batch_in_epoch);
    h5::set_attr(f, "seed", static_cast<std::int64_t>(m.state.seed));
    h5::set_attr(f, "rng", std::string("philox4x32-10, counter-based: the state is (seed, step)"));
    h5::set_attr(f, "learning_rate", m.state.learning_rate);
    h5::set_attr(f, "epoch_sums", m.state.epoch_sums);
    if (m.best) {
      h5::set_attr(f, "best_metric", m.best->metric);
      h5::set_attr(f, "best_value", m.best->value);
      h5::set_attr(f, "best_epoch", m.best->epoch);
    }
    // Batch-norm statistics sit beside their layer's parameters under /params.
    write_group(f, "params", {{&snap.params, snap.param_data()}, {&snap.state, snap.state_data()}});
    if (v1) {
      write_group(f, "momentum", {{&snap.params, snap.momentum_data()}});
    } else {  // version 2: the optimizer's named state
      h5::set_attr(f, "optimizer", m.optimizer);
      h5::set_attr(f, "optimizer_steps", m.state.step - m.state.skipped_steps);
      h5::create_group(f, "optimizer");
      for (std::size_t k = 0; k < snap.slot_names.size(); ++k)
        write_group(f, "optimizer/" + snap.slot_names[k], {{&snap.params, snap.slot_data(k)}});
    }
    DISTNET_CHECK_HDF5(H5Fflush(f, H5F_SCOPE_GLOBAL));
    file.close_checked();
    fsync_path(tmp, false);
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(path +
                  ": cannot rename the finished checkpoint into place: " + std::strerror(errno));
    fsync_path(dir, true);
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    throw Error(path + ": checkpoint not written: " + e.what());
  }
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::Id file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  CheckpointMeta m;
  try {
    m.format_version = h5::get_int(f, "format_version");
    if (m.format_version != kCheckpointFormatVersion &&
        m.format_version != kCheckpointFormatVersionOptimizer) {
      throw Error("format version " + std::to_string(m.format_version) + ", expected " +
                  std::to_string(kCheckpointFormatVersion) + " or " +
                  std::to_string(kCheckpointFormatVersionOptimizer));
    }
    m.distnet_version = h5::get_string(f, "distnet_version");
    m.model = h5::get_string(f, "model");
    m.input = Shape(h5::get_ints(f, "input_shape"));
    m.classes = h5::get_int(f, "classes");
    m.world_size = h5::get_int(f, "world_size");
    m.global_batch = h5::get_int(f, "global_batch");
    m.train_samples = h5::get_int(f, "train_samples");
    m.config = h5::get_string(f, "config");
    m.state.step = h5::get_int(f, "step");
    m.state.epoch = h5::get_int(f, "epoch");
    m.state.batch_in_epoch = h5::get_int(f, "batch_in_epoch");
    m.state.seed = static_cast<std::uint64_t>(h5::get_int(f, "seed"));
    m.state.learning_rate = h5::get_double(f, "learning_rate");
    m.state.epoch_sums = h5::get_doubles(f, "epoch_sums");
    if (m.state.epoch_sums.size() != 3) throw Error("attribute 'epoch_sums' must hold 3 values");
    // Written since run ids exist; older checkpoints have neither.
    if (H5Aexists(f, "run_id") > 0) m.run_id = h5::get_string(f, "run_id");
    if (H5Aexists(f, "skipped_steps") > 0) m.state.skipped_steps = h5::get_int(f, "skipped_steps");
    if (m.format_version == kCheckpointFormatVersionOptimizer) {
      m.optimizer = h5::get_string(f, "optimizer");
      optimizer_slot_names(m.optimizer);  // a known name (throws otherwise)
      const std::int64_t updates = h5::get_int(f, "optimizer_steps");
      if (updates != m.state.step - m.state.skipped_steps)
        throw Error("attribute 'optimizer_steps' is " + std::to_string(updates) + ", expected " +
                    std::to_string(m.state.step - m.state.skipped_steps) +
                    " (step - skipped_steps)");
    }
    if (H5Aexists(f, "best_metric") > 0) {  // best.h5 (--keep-best)
      m.best = BestMark{h5::get_string(f, "best_metric"), h5::get_double(f, "best_value"),
                        h5::get_int(f, "best_epoch")};
      if (m.best->epoch < 1)
        throw Error("attribute 'best_epoch' is " + std::to_string(m.best->epoch) +
                    ", expected at least 1");
    }
    // Every number is checked before anything uses it (a hand-edited or damaged attribute).
    auto at_least = [](const char* name, std::int64_t v, std::int64_t lo) {
      if (v < lo)
        throw Error("attribute '" + std::string(name) + "' is " + std::to_string(v) +
                    ", expected at least " + std::to_string(lo));
    };
    at_least("classes", m.classes, 1);
    at_least("world_size", m.world_size, 1);
    at_least("global_batch", m.global_batch, 1);
    at_least("train_samples", m.train_samples, 1);
    at_least("step", m.state.step, 0);
    at_least("epoch", m.state.epoch, 0);
    at_least("batch_in_epoch", m.state.batch_in_epoch, 0);
    at_least("skipped_steps", m.state.skipped_steps, 0);
    for (std::int64_t d : m.input.dims()) at_least("input_shape", d, 1);
    if (m.input.rank() != 3) throw Error("attribute 'input_shape' must hold 3 values (CxHxW)");
    for (double v : m.state.epoch_sums)
      if (!std::isfinite(v) || v < 0)
        throw Error("attribute 'epoch_sums' holds " + std::to_string(v) +
                    ", expected finite sums >= 0");
    if (!std::isfinite(m.state.learning_rate) || m.state.learning_rate < 0)
      throw Error("attribute 'learning_rate' is not a finite value >= 0");
  } catch (const Error& e) {
    throw Error(path + ": not a distnet checkpoint: " + e.what());
  }
  return m;
}

namespace {

// The last layer with trainable tensors: the one whose output is the logits, whose shapes
// depend on the class count. -1 for a model without parameters.
int classifier_layer(const Model& model) {
  int last = -1;
  for (const ParamEntry& e : model.params()) last = std::max(last, e.layer);
  return last;
}

// Reads everything into host buffers first; the model changes only if all of it is valid.
// `keep_layer` >= 0: that layer's tensors are not read; they keep the model's current values.
void load_tensors(const std::string& path, const CheckpointMeta& meta, Model& model,
                  bool weights_only, int keep_layer) {
  if (!weights_only && meta.optimizer != model.optimizer())
    throw Error(path + ": written by --optimizer " + meta.optimizer +
                ", this run has --optimizer " + model.optimizer() +
                " (a resumed run keeps the optimizer; to start anew from " +
                "these weights, use --init-from)");
  h5::Id file = h5::open_file_readonly(path);
  Backend& be = model.backend();
  std::vector<float> params(static_cast<std::size_t>(model.flat_size()), 0.0f);
  const std::size_t slots = model.slot_names().size();
  std::vector<std::vector<float>> slot(weights_only ? 0 : slots,
                                       std::vector<float>(params.size(), 0.0f));
  // Version 1 holds SGD's momentum as /momentum; version 2 every slot as /optimizer/<slot>.
  std::vector<std::string> slot_group;
  for (const std::string& name : model.slot_names())
    slot_group.push_back(meta.format_version == kCheckpointFormatVersion ? "momentum"
                                                                         : "optimizer/" + name);
  std::vector<float> state(static_cast<std::size_t>(model.state_size()), 0.0f);
  if (keep_layer >= 0) {
    be.download(params.data(), model.param_data(), params.size() * sizeof(float));
    be.download(state.data(), model.state_data(), state.size() * sizeof(float));
  }
  // A piece of a split layer (the hybrid grid): the whole tensor is read and its piece kept, so
  // any split loads what any other split (or none) wrote.
  auto read = [&](const std::string& group, const ParamSpec& spec, float* dst) {
    const std::string name = group + "/" + h5_name(spec.name);
    if (!spec.is_piece()) return h5::read_floats(file.get(), name, spec.shape.dims(), dst, path);
    std::vector<float> whole(static_cast<std::size_t>(spec.full.numel()));
    h5::read_floats(file.get(), name, spec.full.dims(), whole.data(), path);
    extract_piece(spec.full, spec.axis, spec.begin, spec.shape[spec.axis], whole.data(), dst);
  };
  for (const ParamEntry& e : model.params()) {
    if (e.layer == keep_layer) continue;
    read("params", e.spec, params.data() + e.offset);
    for (std::size_t k = 0; k < slot.size(); ++k)
      read(slot_group[k], e.spec, slot[k].data() + e.offset);
  }
  for (const ParamEntry& e : model.state()) {
    if (e.layer == keep_layer) continue;
    h5::read_floats(file.get(), "params/" + h5_name(e.spec.name), e.spec.shape.dims(),
                    state.data() + e.offset, path);
  }
  // A checkpoint with a non-finite value is refused like a damaged one (distnet never writes one).
  std::vector<std::tuple<const std::vector<ParamEntry>*, const float*, std::string>> parts = {
      {&model.params(), params.data(), "parameter"},
      {&model.state(), state.data(), "running statistic"}};
  for (std::size_t k = 0; k < slot.size(); ++k)
    parts.emplace_back(&model.params(), slot[k].data(),
                       meta.format_version == kCheckpointFormatVersion
                           ? std::string("momentum")
                           : "optimizer state " + model.slot_names()[k]);
  for (const auto& [entries, values, what] : parts) {
    const std::string bad = first_nonfinite(*entries, values);
    if (!bad.empty()) throw Error(path + ": " + what + " " + bad + " holds a non-finite value");
  }
  be.upload(model.param_data(), params.data(), params.size() * sizeof(float));
  be.upload(model.state_data(), state.data(), state.size() * sizeof(float));
  for (std::size_t k = 0; k < slots; ++k) {
    if (weights_only)
      be.fill_zero(model.slot_data(k), params.size() * sizeof(float));
    else
      be.upload(model.slot_data(k), slot[k].data(), params.size() * sizeof(float));
  }
}

}  // namespace

CheckpointMeta load_checkpoint(const std::string& path, Model& model, bool weights_only) {
  const CheckpointMeta m = read_checkpoint_meta(path);
  const ModelConfig& mc = model.config();
  if (m.model != mc.name)
    throw Error(path + ": checkpoint of model '" + m.model + "', this run trains '" + mc.name +
                "'");
  if (m.input != mc.input)
    throw Error(path + ": checkpoint for input " + m.input.str() + ", this run has " +
                mc.input.str());
  if (m.classes != mc.classes)
    throw Error(path + ": checkpoint for " + std::to_string(m.classes) + " classes, this run has " +
                std::to_string(mc.classes));
  load_tensors(path, m, model, weights_only, -1);
  return m;
}

InitFrom load_initial_weights(const std::string& path, Model& model) {
  InitFrom r;
  r.meta = read_checkpoint_meta(path);
  const CheckpointMeta& m = r.meta;
  const ModelConfig& mc = model.config();
  if (m.model != mc.name)
    throw UsageError(path + ": checkpoint of model '" + m.model + "', this run trains '" + mc.name +
                     "' (--init-from needs the same model; the class count may differ)");
  const int keep = m.classes != mc.classes ? classifier_layer(model) : -1;
  try {
    load_tensors(path, r.meta, model, /*weights_only=*/true, keep);
  } catch (const Error& e) {
    // A shape that differs because the input does (a dense layer after the convolutions).
    if (m.input == mc.input) throw;
    throw Error(std::string(e.what()) + " (the checkpoint was trained on input " + m.input.str() +
                ", this run has " + mc.input.str() + ")");
  }
  if (keep >= 0) {
    const Layer& l = *model.layers()[std::size_t(keep)];
    r.reinitialised = l.name();
    std::string shapes;
    for (const ParamSpec& p : l.param_specs())
      if (p.trainable())
        shapes += (shapes.empty() ? "" : ", ") + p.name.substr(p.name.rfind('.') + 1) + " " +
                  (p.is_piece() ? p.full : p.shape).str();
    r.reinitialised_detail = l.name() + " (" + shapes + ")";
  }
  return r;
}

bool best_metric_higher_is_better(const std::string& metric) {
  return metric.size() >= 4 && metric.compare(metric.size() - 4, 4, "loss") != 0;
}

std::string checkpoint_file_name(std::int64_t epoch, std::int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-epoch%04lld-step%08lld.h5", static_cast<long long>(epoch),
                static_cast<long long>(step));
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<std::int64_t, std::string>> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* ent = ::readdir(d)) {
      const std::int64_t step = step_from_name(ent->d_name);
      if (step >= 0) found.emplace_back(step, dir + "/" + ent->d_name);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

std::string checkpoint_run_id(const std::string& path) {
  h5::Id file = h5::open_file_readonly(path);
  return H5Aexists(file.get(), "run_id") > 0 ? h5::get_string(file.get(), "run_id") : "";
}

void prune_checkpoints(const std::string& dir, int keep, const std::string& run_id) {
  std::size_t kept = 0;
  for (const std::string& path : list_checkpoints(dir)) {  // newest first
    std::string owner;
    try {
      owner = checkpoint_run_id(path);
    } catch (const Error&) {
      continue;  // unreadable: not provably this run's, so not this run's to delete
    }
    if (owner != run_id) continue;
    if (++kept > static_cast<std::size_t>(std::max(keep, 1))) ::unlink(path.c_str());
  }
}

void ensure_writable_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (::mkdir(dir.c_str(), 0755) != 0)
      throw Error(dir + ": cannot create the checkpoint directory: " + std::strerror(errno));
  } else if (!S_ISDIR(st.st_mode)) {
    throw Error(dir + ": the checkpoint directory is not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(dir + ": the checkpoint directory is not writable: " + std::strerror(errno));
}

CheckpointWriter::CheckpointWriter(std::string dir, int keep, std::string run_id)
    : dir_(std::move(dir)), keep_(keep), run_id_(std::move(run_id)), thread_([this] { run(); }) {
  // A write cut short by SIGKILL (a launcher's grace period, a second Ctrl-C) leaves its
  // temporary file; it was never a checkpoint, and this run owns the directory now.
  if (DIR* d = ::opendir(dir_.c_str())) {
    std::vector<std::string> stale;
    while (const dirent* ent = ::readdir(d)) {
      const std::string name = ent->d_name;
      if ((name.rfind(".ckpt-", 0) == 0 ||
           name.rfind(std::string(".") + kBestCheckpointName, 0) == 0) &&
          name.find(".h5.tmp-") != std::string::npos)
        stale.push_back(name);
    }
    ::closedir(d);
    for (const std::string& name : stale) {
      if (::unlink((dir_ + "/" + name).c_str()) == 0)
        std::fprintf(stderr, "alexnet: removed %s/%s, an unfinished checkpoint of an earlier run\n",
                     dir_.c_str(), name.c_str());
    }
  }
}

CheckpointWriter::~CheckpointWriter() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !busy_ && !pending_; });  // a started write is finished, not cut
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CheckpointWriter::submit(Snapshot snap, const std::string& file_name,
                              const std::optional<BestMark>& best) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_ && !pending_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  pending_ = std::move(snap);
  pending_name_ = file_name;
  pending_best_ = best;
  cv_.notify_all();
}

bool CheckpointWriter::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_ != nullptr;
}

void CheckpointWriter::idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_ && !pending_; });
}

void CheckpointWriter::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_ && !pending_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void CheckpointWriter::run() {
  for (;;) {
    Snapshot snap;
    std::string name;
    std::optional<BestMark> best;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || pending_; });
      if (!pending_) return;
      snap = std::move(*pending_);
      pending_.reset();
      name = pending_name_;
      best = std::exchange(pending_best_, std::nullopt);
      busy_ = true;
    }
    std::exception_ptr err;
    try {
      // The best file first: a run killed between the two writes resumes from an older
      // checkpoint and finds this epoch's best already recorded, so it cannot lose it.
      if (best) {
        Timeline::Scope span(timeline_, Timeline::Track::writer, "write ", kBestCheckpointName,
                             "checkpoint");
        snap.meta.best = best;
        write_checkpoint(snap, dir_ + "/" + kBestCheckpointName);
        snap.meta.best.reset();
      }
      if (!name.empty()) {
        Timeline::Scope span(timeline_, Timeline::Track::writer, "write ", name, "checkpoint");
        write_checkpoint(snap, dir_ + "/" + name);
        prune_checkpoints(dir_, keep_, run_id_);
      }
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = err;
      busy_ = false;
    }
    cv_.notify_all();
  }
}

}  // namespace distnet
