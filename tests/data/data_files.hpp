// Helpers that write small IDX and CIFAR files (raw or gzipped) into a fresh temporary directory.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace distnet::testkit {

inline std::vector<std::uint8_t> idx_images(std::uint32_t n, std::uint32_t rows,
                                            std::uint32_t cols) {
  std::vector<std::uint8_t> b{0, 0, 8, 3};
  for (std::uint32_t d : {n, rows, cols})
    for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(d >> s));
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(std::uint8_t(i * 7 + i / 13));
  return b;
}

inline std::vector<std::uint8_t> idx_labels(std::uint32_t n, int classes = 10) {
  std::vector<std::uint8_t> b{0, 0, 8, 1};
  for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(n >> s));
  for (std::uint32_t i = 0; i < n; ++i) b.push_back(std::uint8_t(i % classes));
  return b;
}

inline std::vector<std::uint8_t> cifar_records(int n) {
  std::vector<std::uint8_t> b;
  for (int r = 0; r < n; ++r) {
    b.push_back(std::uint8_t(r % 10));
    for (int p = 0; p < 3072; ++p) b.push_back(std::uint8_t(r + p));
  }
  return b;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "distnet-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  std::string write_gz(const std::string& name, const std::vector<std::uint8_t>& bytes) const {
    const std::string p = path_ + "/" + name;
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace distnet::testkit
