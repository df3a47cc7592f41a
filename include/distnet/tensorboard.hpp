// TensorBoard event files (--tensorboard DIR; docs/tensorboard.md): TFRecord framing and the few
// fields of tensorflow.Event that scalars need, encoded by hand (no protobuf library).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace distnet {

namespace tfrecord {
// CRC-32C (Castagnoli), as TFRecord uses it; crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t size);
// TFRecord's masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t masked_crc32c(const void* data, std::size_t size);
// One record: the data's length (uint64, little-endian), the masked CRC-32C of those 8 bytes,
// the data, the masked CRC-32C of the data.
std::string frame(const std::string& data);
}  // namespace tfrecord

namespace tb_event {
using Scalars = std::vector<std::pair<std::string, double>>;
// tensorflow.Event with file_version "brain.Event:2": the first record of every event file.
std::string file_version(double wall_time);
// tensorflow.Event with session_log { status: START } at `step`.
std::string session_start(double wall_time, std::int64_t step);
// tensorflow.Event with summary { value { tag, simple_value } ... } (floats) at `step`.
std::string scalars(double wall_time, std::int64_t step, const Scalars& values);
}  // namespace tb_event

// Rank 0's event file of a run. A run writes one file per process (a new one after each resume),
// named events.out.tfevents.<start time>.<host>.<run id>, in DIR (created with its parents).
// Readers take a directory's files in name order, so the start time in the name is made later
// than that of every event file already in DIR. A resumed run's file starts with a SessionLog
// START at its first step: TensorBoard then drops whatever the earlier process logged beyond the
// checkpoint it resumed from (steps it is about to log again).
class TensorBoardWriter {
 public:
  // resumed_step: the checkpoint's step of a resumed run, or -1 for a new run. Throws Error (one
  // line naming DIR or the file) when DIR cannot be made or written.
  TensorBoardWriter(const std::string& dir, const std::string& host, const std::string& run_id,
                    std::int64_t resumed_step);
  ~TensorBoardWriter();
  // Makes DIR (with its parents) and checks that it can be written, before a run does any work;
  // throws Error with one line naming DIR.
  static void check_dir(const std::string& dir);
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event of scalars at `step`, flushed to the file at once. Throws Error on a failed write.
  void scalars(std::int64_t step, const tb_event::Scalars& values);
  const std::string& path() const { return path_; }
  // An event file of another run already in DIR (its name), or "": TensorBoard shows a
  // directory as one run, so their curves would mix.
  const std::string& other_run_file() const { return other_; }

 private:
  void write(const std::string& event);
  std::string path_, other_;
  std::FILE* file_ = nullptr;
};

}  // namespace distnet
