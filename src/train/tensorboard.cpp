// TensorBoard event files: TFRecord framing (with Boost.CRC's CRC-32C) around tensorflow.Event
// messages encoded by hand. Only the fields distnet writes are encoded; the field numbers are
// those of tensorboard/compat/proto/event.proto and summary.proto.
#include "distnet/tensorboard.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "distnet/error.hpp"

namespace distnet {
namespace tfrecord {

std::uint32_t crc32c(const void* data, std::size_t size) {
  // CRC-32C: the Castagnoli polynomial, reflected in and out, initial and final XOR all ones.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

std::uint32_t masked_crc32c(const void* data, std::size_t size) {
  const std::uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

namespace {
void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
}  // namespace

std::string frame(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

}  // namespace tfrecord

namespace tb_event {
namespace {

// Protocol buffers' wire format: a key is (field number << 3) | wire type; 0 varint, 1 fixed64,
// 2 length-delimited, 5 fixed32; integers are little-endian.
enum Wire { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void key(std::string& out, int field, Wire wire) {
  varint(out, (static_cast<std::uint64_t>(field) << 3) | wire);
}

void fixed(std::string& out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

void bytes_field(std::string& out, int field, const std::string& bytes) {
  key(out, field, kBytes);
  varint(out, bytes.size());
  out += bytes;
}

// Event.wall_time = 1 (double), Event.step = 2 (int64): the head of every event.
std::string head(double wall_time, std::int64_t step) {
  std::string e;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &wall_time, sizeof bits);
  key(e, 1, kFixed64);
  fixed(e, bits, 8);
  if (step != 0) {  // proto3: a default value is not written
    key(e, 2, kVarint);
    varint(e, static_cast<std::uint64_t>(step));  // a negative int64 takes ten bytes, as proto's
  }
  return e;
}

}  // namespace

std::string file_version(double wall_time) {
  std::string e = head(wall_time, 0);
  bytes_field(e, 3, "brain.Event:2");  // Event.file_version = 3
  return e;
}

std::string session_start(double wall_time, std::int64_t step) {
  std::string log;
  key(log, 1, kVarint);  // SessionLog.status = 1, START = 1
  varint(log, 1);
  std::string e = head(wall_time, step);
  bytes_field(e, 7, log);  // Event.session_log = 7
  return e;
}

std::string scalars(double wall_time, std::int64_t step, const Scalars& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string v;
    bytes_field(v, 1, tag);  // Summary.Value.tag = 1
    const float f = static_cast<float>(value);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof bits);
    key(v, 2, kFixed32);  // Summary.Value.simple_value = 2
    fixed(v, bits, 4);
    bytes_field(summary, 1, v);  // Summary.value = 1 (repeated)
  }
  std::string e = head(wall_time, step);
  bytes_field(e, 5, summary);  // Event.summary = 5
  return e;
}

}  // namespace tb_event

namespace {

constexpr const char* kPrefix = "events.out.tfevents.";

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// mkdir -p.
void make_dirs(const std::string& dir) {
  for (std::size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string part = dir.substr(0, slash);
    struct stat st {};
    if (::stat(part.c_str(), &st) != 0 && ::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(dir + ": cannot create the TensorBoard directory: " + std::strerror(errno));
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(dir + ": the TensorBoard directory is not a directory");
}

}  // namespace

void TensorBoardWriter::check_dir(const std::string& dir) {
  make_dirs(dir);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(dir + ": cannot write TensorBoard event files there: " + std::strerror(errno));
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir, const std::string& host,
                                     const std::string& run_id, std::int64_t resumed_step) {
  make_dirs(dir);
  // The start time in the name, later than any event file's already here (a requeued run may
  // start within the same second, or on a host whose clock is behind).
  const double now = wall_seconds();
  long long stamp = static_cast<long long>(now);
  if (DIR* d = ::opendir(dir.c_str())) {
    const std::string mine = "." + run_id;
    while (const dirent* ent = ::readdir(d)) {
      const std::string name = ent->d_name;
      if (name.rfind(kPrefix, 0) != 0) continue;
      const long long t = std::atoll(name.c_str() + std::strlen(kPrefix));
      if (t >= stamp) stamp = t + 1;
      const bool ours = name.size() > mine.size() &&
                        name.compare(name.size() - mine.size(), mine.size(), mine) == 0;
      if (!ours && name > other_) other_ = name;
    }
    ::closedir(d);
  }
  path_ = dir + "/" + kPrefix + std::to_string(stamp) + "." + host + "." + run_id;
  file_ = std::fopen(path_.c_str(), "wbx");  // never another file's bytes
  if (!file_)
    throw Error(dir + ": cannot write TensorBoard event files there: " + std::strerror(errno));
  write(tb_event::file_version(now));
  // TensorBoard's own loader purges, at a START, every point at or after its step; the points at
  // the checkpoint's step stay, as this run does not log them again.
  if (resumed_step >= 0) write(tb_event::session_start(now, resumed_step + 1));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalars(std::int64_t step, const tb_event::Scalars& values) {
  write(tb_event::scalars(wall_seconds(), step, values));
}

void TensorBoardWriter::write(const std::string& event) {
  const std::string record = tfrecord::frame(event);
  // Flushed per event: a live TensorBoard sees it, and a killed run loses at most a torn record
  // at the end, which readers skip.
  errno = 0;
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0)
    throw Error(path_ +
                ": cannot write the TensorBoard event file: " + std::strerror(errno ? errno : EIO));
}

}  // namespace distnet
