// HDF5 checkpoints: exact round trip, every bad input with its message and an untouched model,
// and the guarantees of the atomic write (kill -9 mid-write, a full disk).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "data/data_files.hpp"
#include "distnet/checkpoint.hpp"
#include "distnet/h5.hpp"
#include "distnet/run_dir.hpp"

using namespace distnet;
using distnet::testkit::TempDir;

namespace {

ModelConfig cfg(const std::string& name, Shape in) {
  ModelConfig c;
  c.name = name, c.input = std::move(in);
  return c;
}

CheckpointMeta meta_for(const Model& m, std::int64_t step) {
  CheckpointMeta meta;
  meta.distnet_version = "test";
  meta.model = m.config().name;
  meta.input = m.config().input;
  meta.classes = m.config().classes;
  meta.world_size = 3;
  meta.global_batch = 128;
  meta.train_samples = 60000;
  meta.config = "lr = 0.1\n";
  meta.state.step = step;
  meta.state.epoch = step / 469;
  meta.state.batch_in_epoch = step % 469;
  meta.state.seed = 42;
  meta.state.learning_rate = 0.05;
  meta.state.epoch_sums = {12.5, 100, 256};
  return meta;
}

// Parameters, momentum and running statistics all different from their initial values.
void scramble(Model& m, float salt) {
  for (std::int64_t i = 0; i < m.flat_size(); ++i) {
    m.param_data()[i] = std::sin(float(i) * 0.37f + salt);
    m.momentum_data()[i] = std::cos(float(i) * 0.11f + salt);
  }
  for (std::int64_t i = 0; i < m.state_size(); ++i) m.state_data()[i] = 1.0f + float(i % 7) + salt;
}

// The tensors' values in buffer order (the alignment padding between them is not model state).
std::vector<float> gather(const std::vector<ParamEntry>& entries, const float* base) {
  std::vector<float> v;
  for (const ParamEntry& e : entries)
    v.insert(v.end(), base + e.offset, base + e.offset + e.spec.shape.numel());
  return v;
}
std::vector<float> params_of(const Model& m) {
  return gather(m.params(), m.param_data());
}
std::vector<float> momentum_of(const Model& m) {
  return gather(m.params(), m.momentum_data());
}
std::vector<float> state_of(const Model& m) {
  return gather(m.state(), m.state_data());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Checkpoint, RoundTripIsBitExact) {
  auto be = make_cpu_backend();
  Model a(cfg("alexnet-bn", Shape{1, 67, 67}), *be, 1),
      b(cfg("alexnet-bn", Shape{1, 67, 67}), *be, 1);
  scramble(a, 0.5f);
  b.initialize({});
  TempDir d;
  const std::string path = d.path() + "/" + checkpoint_file_name(2, 1000);
  write_checkpoint(take_snapshot(a, meta_for(a, 1000)), path);
  const CheckpointMeta m = load_checkpoint(path, b, false);
  EXPECT_EQ(params_of(a), params_of(b));
  EXPECT_EQ(momentum_of(a), momentum_of(b));
  EXPECT_EQ(state_of(a), state_of(b));
  EXPECT_FALSE(state_of(a).empty());
  EXPECT_EQ(m.state.step, 1000);
  EXPECT_EQ(m.state.batch_in_epoch, 1000 % 469);
  EXPECT_EQ(m.state.seed, 42u);
  EXPECT_EQ(m.state.epoch_sums, (std::vector<double>{12.5, 100, 256}));
  EXPECT_EQ(m.world_size, 3);
  EXPECT_EQ(m.global_batch, 128);
  EXPECT_EQ(m.config, "lr = 0.1\n");
  EXPECT_EQ(m.input, (Shape{1, 67, 67}));
  // weights only: momentum starts at zero
  scramble(b, 2.0f);
  load_checkpoint(path, b, true);
  EXPECT_EQ(params_of(a), params_of(b));
  for (std::int64_t i = 0; i < b.flat_size(); ++i) ASSERT_EQ(b.momentum_data()[i], 0.0f);
}

// Format 2: AdamW's two state slots round-trip bit for bit; the file is refused by a model of
// another optimizer (and by SGD's), read as weights only by any; SGD still writes format 1.
TEST(Checkpoint, OptimizerStateSlotsRoundTripAndAreTiedToTheOptimizer) {
  auto be = make_cpu_backend();
  const ModelConfig mc = cfg("lenet", Shape{1, 28, 28});
  Model a(mc, *be, 1), b(mc, *be, 1), lars(mc, *be, 1), sgd(mc, *be, 1);
  a.set_optimizer("adamw");
  b.set_optimizer("adamw");
  lars.set_optimizer("lars");
  ASSERT_EQ(a.slot_names(), (std::vector<std::string>{"exp_avg", "exp_avg_sq"}));
  EXPECT_EQ(sgd.slot_names(), (std::vector<std::string>{"momentum"}));
  scramble(a, 0.25f);
  for (std::int64_t i = 0; i < a.flat_size(); ++i) a.slot_data(1)[i] = float(i % 13) * 0.01f;
  TempDir d;
  const std::string path = d.path() + "/" + checkpoint_file_name(1, 100);
  CheckpointMeta meta = meta_for(a, 100);
  meta.state.skipped_steps = 2;
  write_checkpoint(take_snapshot(a, meta), path);
  const CheckpointMeta m = load_checkpoint(path, b, false);
  EXPECT_EQ(m.format_version, 2);
  EXPECT_EQ(m.optimizer, "adamw");
  EXPECT_EQ(params_of(a), params_of(b));
  for (std::size_t k = 0; k < 2; ++k)
    EXPECT_EQ(gather(a.params(), a.slot_data(k)), gather(b.params(), b.slot_data(k))) << k;
  EXPECT_EQ(error_of([&] { load_checkpoint(path, lars, false); }),
            path +
                ": written by --optimizer adamw, this run has --optimizer lars (a resumed run "
                "keeps the optimizer; to start anew from these weights, use --init-from)");
  EXPECT_NE(
      error_of([&] { load_checkpoint(path, sgd, false); }).find("this run has --optimizer sgd"),
      std::string::npos);
  load_checkpoint(path, sgd, true);  // weights only: any optimizer, fresh state
  EXPECT_EQ(params_of(a), params_of(sgd));
  // SGD's files stay format 1, and an AdamW model does not resume from one.
  const std::string v1 = d.path() + "/" + checkpoint_file_name(1, 101);
  write_checkpoint(take_snapshot(sgd, meta_for(sgd, 101)), v1);
  EXPECT_EQ(read_checkpoint_meta(v1).format_version, 1);
  EXPECT_EQ(read_checkpoint_meta(v1).optimizer, "sgd");
  EXPECT_NE(error_of([&] { load_checkpoint(v1, b, false); }).find("written by --optimizer sgd"),
            std::string::npos);
}

TEST(Checkpoint, DirectoryListingAndPruning) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  TempDir d;
  // Run "mine" wrote steps 10..40; another run wrote 50 and 60 in the same directory, and one
  // file predates run ids.
  for (std::int64_t step : {10, 30, 20, 40, 50, 60, 70}) {
    CheckpointMeta meta = meta_for(m, step);
    meta.run_id = step >= 70 ? "" : step >= 50 ? "theirs" : "mine";
    write_checkpoint(take_snapshot(m, meta), d.path() + "/" + checkpoint_file_name(0, step));
  }
  d.write(".ckpt-epoch0000-step00000080.h5.tmp-1", {1, 2, 3});  // an unfinished write
  d.write("ckpt-epoch0000-step00000090.h5", {1, 2, 3});         // damaged: whose is unknown
  d.write("notes.txt", {1});
  auto all = list_checkpoints(d.path());
  ASSERT_EQ(all.size(), 8u);
  EXPECT_NE(all[0].find("step00000090"), std::string::npos);
  EXPECT_NE(all[7].find("step00000010"), std::string::npos);
  EXPECT_EQ(checkpoint_run_id(all[1]), "");
  EXPECT_EQ(checkpoint_run_id(all[2]), "theirs");
  prune_checkpoints(d.path(), 2, "mine");
  all = list_checkpoints(d.path());
  ASSERT_EQ(all.size(), 6u);  // mine: 40 and 30 kept, 20 and 10 deleted; nothing else touched
  EXPECT_NE(all[4].find("step00000040"), std::string::npos);
  EXPECT_NE(all[5].find("step00000030"), std::string::npos);
}

TEST(Checkpoint, RunIdAndSkippedStepsRoundTrip) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  TempDir d;
  CheckpointMeta meta = meta_for(m, 7);
  meta.run_id = "0123456789abcdef";
  meta.state.skipped_steps = 3;
  const std::string path = d.path() + "/" + checkpoint_file_name(0, 7);
  write_checkpoint(take_snapshot(m, meta), path);
  const CheckpointMeta back = read_checkpoint_meta(path);
  EXPECT_EQ(back.run_id, "0123456789abcdef");
  EXPECT_EQ(back.state.skipped_steps, 3);
}

// --keep-best: best.h5 is a complete checkpoint with its mark, written before the regular file of
// the same snapshot, outside the names rotation and --resume auto take; a new run's start-over
// rules treat it as the old run's, and a killed write's temporary file is cleaned up.
TEST(Checkpoint, BestFileIsOutsideRotationAndKeepsItsMark) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 1), back(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  TempDir d;
  d.write(".best.h5.tmp-4242", {1, 2, 3});  // a best write cut short
  {
    CheckpointWriter writer(d.path(), 1, "mine");
    EXPECT_FALSE(std::filesystem::exists(d.path() + "/.best.h5.tmp-4242"));
    for (std::int64_t step : {10, 20, 30}) {
      scramble(m, float(step));
      CheckpointMeta meta = meta_for(m, step);
      meta.run_id = "mine";
      const std::optional<BestMark> best =
          step == 20 ? std::optional<BestMark>(BestMark{"test_acc", 0.75, 2}) : std::nullopt;
      writer.submit(take_snapshot(m, meta), checkpoint_file_name(step / 10, step), best);
      writer.wait();
    }
    // A best without a checkpoint at its step: best.h5 alone.
    scramble(m, 40.0f);
    CheckpointMeta meta = meta_for(m, 40);
    meta.run_id = "mine";
    writer.submit(take_snapshot(m, meta), "", BestMark{"test_acc", 0.8, 4});
    writer.wait();
  }
  const std::vector<std::string> all = list_checkpoints(d.path());
  ASSERT_EQ(all.size(), 1u);  // rotation kept one; best.h5 is neither listed nor pruned
  EXPECT_NE(all[0].find("step00000030"), std::string::npos);
  const std::string best = d.path() + "/" + kBestCheckpointName;
  const CheckpointMeta mark = load_checkpoint(best, back, false);
  ASSERT_TRUE(mark.best.has_value());
  EXPECT_EQ(mark.best->metric, "test_acc");
  EXPECT_EQ(mark.best->value, 0.8);
  EXPECT_EQ(mark.best->epoch, 4);
  EXPECT_EQ(mark.state.step, 40);
  EXPECT_EQ(params_of(back), params_of(m));
  EXPECT_FALSE(read_checkpoint_meta(all[0]).best.has_value());  // only best.h5 has the mark
  EXPECT_TRUE(best_metric_higher_is_better("test_acc"));
  EXPECT_TRUE(best_metric_higher_is_better("test_top5"));
  EXPECT_FALSE(best_metric_higher_is_better("test_loss"));
  EXPECT_FALSE(best_metric_higher_is_better("train_loss"));
  // A new run over it: refused, then set aside with the run's checkpoints.
  std::filesystem::remove(all[0]);
  const std::string refused = error_of([&] { prepare_new_run(d.path(), ""); });
  EXPECT_NE(refused.find("holds 1 checkpoint of run mine (newest best.h5)"), std::string::npos)
      << refused;
  prepare_new_run(d.path(), "aside");
  EXPECT_FALSE(std::filesystem::exists(best));
  EXPECT_TRUE(std::filesystem::exists(d.path() + "/previous-mine/best.h5"));
}

// Every tensor carries HDF5's Fletcher32 checksum: one flipped bit in a parameter's bytes fails
// the load with one line naming the dataset, and the model is untouched.
TEST(Checkpoint, FlippedBitFailsTheChecksum) {
  auto be = make_cpu_backend();
  Model a(cfg("lenet", Shape{1, 28, 28}), *be, 1), b(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  scramble(a, 0.25f);
  scramble(b, 4.0f);
  const std::vector<float> before = params_of(b);
  TempDir d;
  const std::string path = d.path() + "/" + checkpoint_file_name(0, 1);
  write_checkpoint(take_snapshot(a, meta_for(a, 1)), path);
  // Find the bytes of dense2.weight's first value in the file and flip one bit of it.
  std::vector<char> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const ParamEntry* target = nullptr;
  for (const ParamEntry& e : a.params())
    if (e.spec.name == "dense2.weight") target = &e;
  ASSERT_NE(target, nullptr);
  const char* want = reinterpret_cast<const char*>(a.param_data() + target->offset);
  const std::string needle(want, 64);
  const auto at = std::string(bytes.begin(), bytes.end()).find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x10;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  const std::string e = error_of([&] { load_checkpoint(path, b, false); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("/params/dense2/weight fails its checksum"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_EQ(params_of(b), before);
}

TEST(Checkpoint, NonFiniteValuesAreNeitherWrittenNorLoaded) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  scramble(m, 1.0f);
  TempDir d;
  const std::string good = d.path() + "/" + checkpoint_file_name(0, 1);
  write_checkpoint(take_snapshot(m, meta_for(m, 1)), good);
  const ParamEntry& conv1 = m.params().back();  // buffer order is backward order
  m.param_data()[conv1.offset + 5] = std::nanf("");
  const std::string bad = d.path() + "/" + checkpoint_file_name(0, 2);
  std::string e = error_of([&] { write_checkpoint(take_snapshot(m, meta_for(m, 2)), bad); });
  EXPECT_NE(e.find("parameter " + conv1.spec.name + " holds a non-finite value"), std::string::npos)
      << e;
  EXPECT_FALSE(std::filesystem::exists(bad));
  EXPECT_EQ(list_checkpoints(d.path()).size(), 1u);
}

TEST(Checkpoint, AttributesAreRangeChecked) {
  auto be = make_cpu_backend();
  Model m(cfg("lenet", Shape{1, 28, 28}), *be, 1);
  TempDir d;
  const std::string path = d.path() + "/" + checkpoint_file_name(0, 1);
  write_checkpoint(take_snapshot(m, meta_for(m, 1)), path);
  {
    h5::Id f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    h5::set_attr(f.get(), "step", std::int64_t{-5});
  }
  const std::string e = error_of([&] { read_checkpoint_meta(path); });
  EXPECT_NE(e.find("attribute 'step' is -5, expected at least 0"), std::string::npos) << e;
}

class CheckpointBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = dir_.path() + "/good.h5";
    write_checkpoint(take_snapshot(source_, meta_for(source_, 5)), good_);
    scramble(target_, 3.0f);
    before_ = params_of(target_);
  }
  // The load fails with a message containing every part, and the model is untouched.
  void expect_refused(const std::string& path, std::initializer_list<const char*> parts) {
    const std::string msg = error_of([&] { load_checkpoint(path, target_, false); });
    for (const char* p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(params_of(target_), before_) << "partial load into the model";
  }
  std::unique_ptr<Backend> be_ = make_cpu_backend();
  Model source_{cfg("lenet", Shape{1, 28, 28}), *be_, 1};
  Model target_{cfg("lenet", Shape{1, 28, 28}), *be_, 1};
  TempDir dir_;
  std::string good_;
  std::vector<float> before_;
};

TEST_F(CheckpointBadInput, TruncatedFile) {
  const std::string p = dir_.path() + "/cut.h5";
  std::filesystem::copy_file(good_, p);
  std::filesystem::resize_file(p, std::filesystem::file_size(p) / 2);
  expect_refused(p, {"cut.h5"});
}

TEST_F(CheckpointBadInput, NotHdf5) {
  const std::string p = dir_.write("junk.h5", std::vector<std::uint8_t>(4096, 'x'));
  expect_refused(p, {"junk.h5: not an HDF5 file"});
}

TEST_F(CheckpointBadInput, AnotherModel) {
  Model alex(cfg("alexnet", Shape{1, 67, 67}), *be_, 1);
  const std::string p = dir_.path() + "/alex.h5";
  write_checkpoint(take_snapshot(alex, meta_for(alex, 1)), p);
  expect_refused(p, {"alex.h5: checkpoint of model 'alexnet', this run trains 'lenet'"});
}

TEST_F(CheckpointBadInput, TensorShapeDiffers) {
  Model other(cfg("lenet", Shape{1, 32, 32}), *be_, 1);  // dense1 has 1250 inputs instead of 800
  CheckpointMeta meta = meta_for(other, 1);
  meta.input = Shape{1, 28, 28};  // claims the right input, but the tensors disagree
  const std::string p = dir_.path() + "/shape.h5";
  write_checkpoint(take_snapshot(other, meta), p);
  expect_refused(p,
                 {"shape.h5: dataset /params/dense1/weight has shape 500x1250, expected 500x800"});
}

TEST_F(CheckpointBadInput, MissingDataset) {
  const std::string p = dir_.path() + "/missing.h5";
  std::filesystem::copy_file(good_, p);
  {
    h5::quiet();
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Ldelete(f, "/momentum/conv2/weight", H5P_DEFAULT);
    H5Fclose(f);
  }
  expect_refused(p, {"missing.h5: dataset /momentum/conv2/weight is missing"});
}

TEST_F(CheckpointBadInput, MissingAttribute) {
  const std::string p = dir_.path() + "/attr.h5";
  std::filesystem::copy_file(good_, p);
  {
    const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "global_batch");
    H5Fclose(f);
  }
  expect_refused(p, {"attr.h5: not a distnet checkpoint: attribute 'global_batch' is missing"});
}

TEST(CheckpointDirectory, NotWritable) {
  EXPECT_NE(error_of([] {
              ensure_writable_dir("/proc/distnet-checkpoints");
            }).find("/proc/distnet-checkpoints: cannot create the checkpoint directory"),
            std::string::npos);
  TempDir d;
  const std::string file = d.write("plain", {1});
  EXPECT_NE(error_of([&] { ensure_writable_dir(file); }).find("is not a directory"),
            std::string::npos);
}

namespace {
// Runs `child` in a forked process and returns its wait status.
int in_child(const std::function<void()>& child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}
}  // namespace

// A full disk during a save (simulated with RLIMIT_FSIZE): the save fails with an error, the
// previous checkpoint under the same name is untouched, no temporary file is left.
TEST(CheckpointAtomicity, FullDiskLeavesThePreviousCheckpoint) {
  auto be = make_cpu_backend();
  Model m(cfg("alexnet", Shape{1, 67, 67}), *be, 1);  // ~100 MB per save
  scramble(m, 1.0f);
  TempDir d;
  const std::string path = d.path() + "/" + checkpoint_file_name(1, 100);
  write_checkpoint(take_snapshot(m, meta_for(m, 100)), path);
  const auto size_before = std::filesystem::file_size(path);
  const int status = in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);  // let write() fail with EFBIG instead of killing us
    rlimit lim{10 << 20, 10 << 20};
    setrlimit(RLIMIT_FSIZE, &lim);
    scramble(m, 9.0f);
    const std::string msg =
        error_of([&] { write_checkpoint(take_snapshot(m, meta_for(m, 100)), path); });
    _exit(msg.find("checkpoint not written") != std::string::npos ? 42 : 1);
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42) << "the failing save did not report an error";
  EXPECT_EQ(std::filesystem::file_size(path), size_before);
  Model back(cfg("alexnet", Shape{1, 67, 67}), *be, 1);
  load_checkpoint(path, back, false);
  EXPECT_EQ(params_of(back), params_of(m));  // the first save's values (scramble 1.0)
  for (const auto& e : std::filesystem::directory_iterator(d.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// kill -9 of the writer in the middle of a save: the newest complete checkpoint stays loadable
// and no partial file carries a checkpoint's name.
TEST(CheckpointAtomicity, KillDuringSaveLeavesTheNewestCompleteCheckpoint) {
  auto be = make_cpu_backend();
  Model m(cfg("alexnet", Shape{1, 67, 67}), *be, 1);
  scramble(m, 1.0f);
  TempDir d;
  const std::string first = d.path() + "/" + checkpoint_file_name(1, 100);
  write_checkpoint(take_snapshot(m, meta_for(m, 100)), first);
  const Snapshot next = take_snapshot(m, meta_for(m, 200));
  const pid_t pid = fork();
  if (pid == 0) {
    for (;;) write_checkpoint(next, d.path() + "/" + checkpoint_file_name(2, 200));
  }
  // Wait until a temporary file is being written, then kill.
  bool saw_tmp = false;
  for (int i = 0; i < 2000 && !saw_tmp; ++i) {
    for (const auto& e : std::filesystem::directory_iterator(d.path()))
      saw_tmp |= e.path().filename().string().find(".tmp-") != std::string::npos;
    if (!saw_tmp) usleep(1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(saw_tmp);
  const auto listed = list_checkpoints(d.path());
  ASSERT_FALSE(listed.empty());
  for (const auto& p : listed) {  // every file with a checkpoint's name is complete
    Model back(cfg("alexnet", Shape{1, 67, 67}), *be, 1);
    EXPECT_NO_THROW(load_checkpoint(p, back, false)) << p;
    EXPECT_EQ(params_of(back), params_of(m));
  }
}
