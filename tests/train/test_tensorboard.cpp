// TensorBoard event files: CRC-32C and TFRecord framing against known values, the hand-encoded
// Events byte for byte against protobuf's own encoding (the expected bytes were produced with
// TensorBoard's event_pb2 and its RecordWriter), and the files a run and its resumed process
// write. tests/cli/test_tensorboard.sh reads whole runs with TensorBoard's own loader.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/data_files.hpp"
#include "distnet/backend.hpp"
#include "distnet/error.hpp"
#include "distnet/tensorboard.hpp"

using namespace distnet;
using distnet::testkit::TempDir;

namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::uint64_t le(const std::string& b, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

// The records of a file, each checked against both of its checksums.
std::vector<std::string> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  for (std::size_t at = 0; at < bytes.size();) {
    EXPECT_LE(at + 12, bytes.size()) << path;
    const std::uint64_t n = le(bytes, at, 8);
    EXPECT_EQ(le(bytes, at + 8, 4), tfrecord::masked_crc32c(bytes.data() + at, 8)) << path;
    EXPECT_LE(at + 16 + n, bytes.size()) << path;
    const std::string data = bytes.substr(at + 12, n);
    EXPECT_EQ(le(bytes, at + 12 + n, 4), tfrecord::masked_crc32c(data.data(), data.size())) << path;
    out.push_back(data);
    at += 16 + n;
  }
  return out;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// An Event's wall_time field is 9 bytes (key and double) at its start; the rest must match.
std::string without_wall_time(const std::string& event) {
  EXPECT_EQ(event[0], '\x09');
  return event.substr(9);
}

}  // namespace

TEST(TensorBoard, Crc32cOfTheCheckStringAndItsMask) {
  const char* check = "123456789";
  EXPECT_EQ(tfrecord::crc32c(check, 9), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(tfrecord::masked_crc32c(check, 9), 0xC78AB0E5u);
  EXPECT_EQ(tfrecord::crc32c("", 0), 0u);
}

TEST(TensorBoard, RecordFramingIsTensorFlows) {
  EXPECT_EQ(tfrecord::frame("hello"), from_hex("0500000000000000eab2043e68656c6c6fbb1f1c19"));
  EXPECT_EQ(tfrecord::frame(""), from_hex("000000000000000029039807d8ea82a2"));
}

TEST(TensorBoard, EventsAreProtobufsEncoding) {
  const std::string scalars = tb_event::scalars(1.5, 7, {{"train/loss", 0.25}, {"a", -3.0}});
  EXPECT_EQ(scalars, from_hex("09000000000000f83f10072a1d0a110a0a747261696e2f6c6f7373150000803e0a0"
                              "80a016115000040c0"));
  EXPECT_EQ(tb_event::session_start(2.0, 300), from_hex("09000000000000004010ac023a020801"));
  EXPECT_EQ(tb_event::file_version(1700000000.25),
            from_hex("0900001040fc54d9411a0d627261696e2e4576656e743a32"));
  // The whole record, as TensorBoard's RecordWriter frames the same event.
  EXPECT_EQ(tfrecord::frame(scalars),
            from_hex("2a00000000000000ae8d91f509000000000000f83f10072a1d0a110a0a747261696e2f6c6f7"
                     "373150000803e0a080a016115000040c0c940f952"));
}

// A run's first process, then a resumed one (from step 3): two files in name order, the second
// starting with a SessionLog START at step 4; a third run's file is named as another run's.
TEST(TensorBoard, ResumedProcessWritesANewFileThatSortsAfterAndStartsASession) {
  TempDir d;
  const std::string dir = d.path() + "/runs/tb";  // parents are made too
  {
    TensorBoardWriter first(dir, "node1", "0123456789abcdef", -1);
    EXPECT_EQ(first.other_run_file(), "");
    first.scalars(2, {{"train/loss", 1.0}});
    first.scalars(4, {{"train/loss", 0.5}});  // beyond the checkpoint (step 3): an orphan
  }
  {
    TensorBoardWriter second(dir, "node2", "0123456789abcdef", 3);
    EXPECT_EQ(second.other_run_file(), "");
    second.scalars(4, {{"train/loss", 0.75}});
  }
  const std::vector<std::string> names = event_files(dir);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].rfind("events.out.tfevents.", 0), 0u);
  EXPECT_NE(names[0].find(".node1.0123456789abcdef"), std::string::npos) << names[0];
  EXPECT_NE(names[1].find(".node2.0123456789abcdef"), std::string::npos)
      << "the resumed process's file must sort last: " << names[0] << ", " << names[1];
  const auto a = read_records(dir + "/" + names[0]);
  const auto b = read_records(dir + "/" + names[1]);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(without_wall_time(a[0]), without_wall_time(tb_event::file_version(0)));
  EXPECT_EQ(without_wall_time(a[1]),
            without_wall_time(tb_event::scalars(0, 2, {{"train/loss", 1.0}})));
  EXPECT_EQ(without_wall_time(b[0]), without_wall_time(tb_event::file_version(0)));
  EXPECT_EQ(without_wall_time(b[1]), without_wall_time(tb_event::session_start(0, 4)));
  EXPECT_EQ(without_wall_time(b[2]),
            without_wall_time(tb_event::scalars(0, 4, {{"train/loss", 0.75}})));
  TensorBoardWriter other(dir, "node1", "fedcba9876543210", -1);
  EXPECT_EQ(other.other_run_file(), names[1]);
}

TEST(TensorBoard, AnUnwritableDirectoryIsOneLineNamingIt) {
  try {
    TensorBoardWriter::check_dir("/dev/null/tb");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "/dev/null/tb: cannot create the TensorBoard directory: Not a directory");
  }
  TempDir d;
  std::ofstream(d.path() + "/file") << "x";
  EXPECT_THROW(TensorBoardWriter(d.path() + "/file", "h", "r", -1), Error);
}

// The gradient norm's op on the CPU: the sum of squares in double, added to what is there.
TEST(TensorBoard, SumSquaresAddsInDouble) {
  auto be = make_cpu_backend();
  std::vector<float> x(100003);
  double expect = 0.5;
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = float(i % 17) * 0.25f - 2.0f;
    expect += double(x[i]) * double(x[i]);
  }
  double acc = 0.5;
  be->sum_squares(std::int64_t(x.size()), x.data(), &acc);
  EXPECT_NEAR(acc, expect, 1e-12 * expect);
  be->sum_squares(0, x.data(), &acc);
  EXPECT_NEAR(acc, expect, 1e-12 * expect);
}
