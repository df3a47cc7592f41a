#include "distnet/data/bytes.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "distnet/error.hpp"

namespace distnet::data {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::uint8_t> gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::vector<std::uint8_t> out;
  std::size_t used = 0;
  out.resize(1 << 20);
  for (;;) {
    if (out.size() - used < (1 << 19)) out.resize(out.size() * 2);
    const int n = gzread(f, out.data() + used, static_cast<unsigned>(out.size() - used));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw Error(path + ": corrupt gzip stream: " + msg);
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  // gzread returns 0 both at a clean end and when the input stops mid-stream; only gzclose
  // (or gzerror) tells them apart.
  int code = 0;
  const std::string msg = gzerror(f, &code);
  const int rc = gzclose(f);
  if (code != Z_OK || rc != Z_OK) {
    throw Error(path + ": corrupt gzip stream: " +
                (code != Z_OK        ? msg
                 : rc == Z_BUF_ERROR ? "unexpected end of file"
                                     : "read error"));
  }
  out.resize(used);
  return out;
}

}  // namespace

FileBytes FileBytes::open(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  FileBytes b;
  b.path_ = path;
  if (ends_with(path, ".gz")) {
    b.owned_ = gunzip(path);
    b.data_ = b.owned_.data();
    b.size_ = b.owned_.size();
    return b;
  }
  b.size_ = static_cast<std::size_t>(st.st_size);
  if (b.size_ == 0) return b;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  void* m = ::mmap(nullptr, b.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (m == MAP_FAILED) throw Error(path + ": cannot map: " + std::strerror(err));
  b.map_ = m;
  b.map_size_ = b.size_;
  b.data_ = static_cast<const std::uint8_t*>(m);
  return b;
}

FileBytes FileBytes::from_memory(std::vector<std::uint8_t> bytes, std::string path) {
  FileBytes b;
  b.path_ = std::move(path);
  b.owned_ = std::move(bytes);
  b.data_ = b.owned_.data();
  b.size_ = b.owned_.size();
  return b;
}

FileBytes::FileBytes(FileBytes&& o) noexcept {
  *this = std::move(o);
}

FileBytes& FileBytes::operator=(FileBytes&& o) noexcept {
  if (this == &o) return *this;
  if (map_) ::munmap(map_, map_size_);
  path_ = std::move(o.path_);
  owned_ = std::move(o.owned_);
  map_ = std::exchange(o.map_, nullptr);
  map_size_ = std::exchange(o.map_size_, 0);
  size_ = std::exchange(o.size_, 0);
  // A moved vector keeps its heap buffer, so data_ stays valid for owned bytes as well.
  data_ = std::exchange(o.data_, nullptr);
  return *this;
}

FileBytes::~FileBytes() {
  if (map_) ::munmap(map_, map_size_);
}

}  // namespace distnet::data
