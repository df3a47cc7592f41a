// The bytes of a data file: memory-mapped when the file is raw (pages are read on demand, so a
// rank touches only the samples it decodes), decompressed into memory when it ends in ".gz".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace distnet::data {

class FileBytes {
 public:
  // Throws distnet::Error naming the file: missing, unreadable, or a corrupt gzip stream.
  static FileBytes open(const std::string& path);
  // Bytes already in memory (tests, fuzzing); `path` only names them in messages.
  static FileBytes from_memory(std::vector<std::uint8_t> bytes, std::string path);

  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  FileBytes(FileBytes&& o) noexcept;
  FileBytes& operator=(FileBytes&& o) noexcept;
  ~FileBytes();

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  FileBytes() = default;
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  void* map_ = nullptr;  // munmap'ed in the destructor
  std::size_t map_size_ = 0;
  std::vector<std::uint8_t> owned_;
};

}  // namespace distnet::data
