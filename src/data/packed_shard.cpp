// One packed shard file: writing it, reading its index, and checking that the index agrees with
// the data. Only this file and the manifest code call HDF5 for shards; records are read with
// pread (packed_dataset.cpp), never through HDF5, so loader threads need no HDF5 lock.
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "distnet/data/packed.hpp"
#include "distnet/error.hpp"
#include "distnet/h5.hpp"

namespace distnet::data {
namespace {

using h5::Id;

template <typename T>
hid_t mem_type();
template <>
hid_t mem_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t mem_type<std::int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t mem_type<std::uint32_t>() {
  return H5T_NATIVE_UINT32;
}

Id space_1d(std::size_t n) {
  const hsize_t d = n;
  return Id(DISTNET_CHECK_HDF5(H5Screate_simple(1, &d, nullptr)), H5Sclose);
}

void write_1d(hid_t file, const char* name, hid_t file_type, hid_t type, std::size_t n,
              const void* data) {
  Id space = space_1d(n);
  Id set(DISTNET_CHECK_HDF5(
             H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
         H5Dclose);
  if (n > 0) DISTNET_CHECK_HDF5(H5Dwrite(set.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

// Fixed-length, null-padded UTF-8 strings, each name escaped (escape_name): h5py reads them as
// bytes that always decode as UTF-8.
void write_strings(hid_t file, const char* name, const std::vector<std::string>& raw) {
  std::vector<std::string> v;
  for (const auto& s : raw) v.push_back(escape_name(s));
  std::size_t width = 1;
  for (const auto& s : v) width = std::max(width, s.size());
  std::string flat(width * v.size(), '\0');
  for (std::size_t i = 0; i < v.size(); ++i) flat.replace(i * width, v[i].size(), v[i]);
  Id type(DISTNET_CHECK_HDF5(H5Tcopy(H5T_C_S1)), H5Tclose);
  DISTNET_CHECK_HDF5(H5Tset_size(type.get(), width));
  DISTNET_CHECK_HDF5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  DISTNET_CHECK_HDF5(H5Tset_strpad(type.get(), H5T_STR_NULLPAD));
  write_1d(file, name, type.get(), type.get(), v.size(), flat.data());
}

Id open_set(hid_t file, const char* name, const std::string& path) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
    throw Error(path + ": dataset /" + name + " is missing (not a complete shard)");
  return Id(DISTNET_CHECK_HDF5(H5Dopen2(file, name, H5P_DEFAULT)), H5Dclose);
}

std::size_t length_1d(hid_t set, const char* name, const std::string& path) {
  Id space(DISTNET_CHECK_HDF5(H5Dget_space(set)), H5Sclose);
  if (DISTNET_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get())) != 1)
    throw Error(path + ": dataset /" + name + " is not one-dimensional");
  hsize_t n = 0;
  DISTNET_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), &n, nullptr));
  return std::size_t(n);
}

template <typename T>
std::vector<T> read_1d(hid_t file, const char* name, const std::string& path) {
  Id set = open_set(file, name, path);
  std::vector<T> v(length_1d(set.get(), name, path));
  if (!v.empty())
    DISTNET_CHECK_HDF5(H5Dread(set.get(), mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
  return v;
}

// The strings of /name; version-2 shards' are unescaped (unescape_name) to the original bytes.
std::vector<std::string> read_strings(hid_t file, const char* name, const std::string& path,
                                      bool escaped) {
  Id set = open_set(file, name, path);
  const std::size_t n = length_1d(set.get(), name, path);
  Id type(DISTNET_CHECK_HDF5(H5Dget_type(set.get())), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
    throw Error(path + ": dataset /" + name + " is not of fixed-length strings");
  const std::size_t width = H5Tget_size(type.get());
  std::string flat(width * n, '\0');
  if (n > 0)
    DISTNET_CHECK_HDF5(H5Dread(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, flat.data()));
  std::vector<std::string> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = flat.substr(i * width, width);
    v[i].resize(std::min(v[i].size(), v[i].find('\0')));
    if (escaped) v[i] = unescape_name(v[i], path + ": /" + name + "[" + std::to_string(i) + "]");
  }
  return v;
}

std::int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": missing shard file");
  return std::int64_t(st.st_size);
}

std::string hex32(std::uint32_t v) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(v));
  return text;
}

// The length of the valid UTF-8 sequence at s[i] (as Python's strict decoder accepts it: no
// overlong forms, surrogates or code points above U+10FFFF), or 0 when there is none.
std::size_t utf8_length(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else
    return 0;
  if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string escape_name(const std::string& raw) {
  static const char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size();) {
    const unsigned char c = static_cast<unsigned char>(raw[i]);
    const std::size_t n = utf8_length(raw, i);
    if (n == 0 || c == '%' || c < 0x20 || c == 0x7F) {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
      ++i;
    } else {
      out.append(raw, i, n);
      i += n;
    }
  }
  return out;
}

std::string unescape_name(const std::string& escaped, const std::string& what) {
  std::string out;
  out.reserve(escaped.size());
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '%') {
      out += escaped[i];
      continue;
    }
    const int a = i + 1 < escaped.size() ? hex_digit(escaped[i + 1]) : -1;
    const int b = i + 2 < escaped.size() ? hex_digit(escaped[i + 2]) : -1;
    if (a < 0 || b < 0)
      throw Error(what + ": '" + escaped + "' has a '%' at " + std::to_string(i) +
                  " without two hex digits, expected %XX (a percent-escaped name)");
    out += static_cast<char>(a * 16 + b);
    i += 2;
  }
  return out;
}

std::uint32_t record_crc32(const std::uint8_t* data, std::size_t size, std::int32_t label) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (std::size_t done = 0; done < size;) {  // zlib takes 32-bit lengths
    const std::size_t n = std::min<std::size_t>(size - done, std::size_t(1) << 30);
    crc = ::crc32(crc, data + done, uInt(n));
    done += n;
  }
  const std::uint32_t u = static_cast<std::uint32_t>(label);
  const unsigned char le[4] = {static_cast<unsigned char>(u), static_cast<unsigned char>(u >> 8),
                               static_cast<unsigned char>(u >> 16),
                               static_cast<unsigned char>(u >> 24)};
  crc = ::crc32(crc, le, 4);
  return static_cast<std::uint32_t>(crc);
}

std::string record_problem(const ShardIndex& x, std::size_t i, const std::uint8_t* data) {
  if (x.crc32.empty()) return "";
  const std::uint32_t got = record_crc32(data, std::size_t(x.lengths[i]), x.labels[i]);
  if (got == x.crc32[i]) return "";
  return "bytes or label changed since packing: CRC-32 " + hex32(got) + ", expected " +
         hex32(x.crc32[i]) + " (/crc32)";
}

std::string fnv1a64_hex(const std::uint8_t* data, std::size_t size) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

void validate_shard_index(const ShardIndex& x, const std::string& file) {
  const std::size_t n = x.offsets.size();
  auto same = [&](std::size_t m, const char* name) {
    if (m != n)
      throw Error(file + ": /" + name + " has " + std::to_string(m) + " entries, /offsets " +
                  std::to_string(n) + "; the index disagrees with itself");
  };
  same(x.lengths.size(), "lengths");
  same(x.labels.size(), "labels");
  same(x.widths.size(), "widths");
  same(x.heights.size(), "heights");
  same(x.paths.size(), "paths");
  if (!x.crc32.empty()) same(x.crc32.size(), "crc32");
  if (x.classes.empty()) throw Error(file + ": /classes is empty");
  if (x.bytes < 0) throw Error(file + ": /bytes has a negative length");
  std::int64_t end = 0;  // where the previous record ended
  for (std::size_t i = 0; i < n; ++i) {
    const std::string rec = "record " + std::to_string(i) + " (" + x.paths[i] + ")";
    if (x.offsets[i] < end)
      throw Error(file + ": " + rec + " starts at offset " + std::to_string(x.offsets[i]) +
                  ", before the previous record ends (" + std::to_string(end) +
                  "): offsets must increase; the index disagrees with the data");
    if (x.lengths[i] < 0 || x.lengths[i] > x.bytes - x.offsets[i])
      throw Error(file + ": " + rec + " has offset " + std::to_string(x.offsets[i]) +
                  " and length " + std::to_string(x.lengths[i]) + ", beyond the " +
                  std::to_string(x.bytes) + " bytes of /bytes; the index disagrees with the data");
    if (x.labels[i] < 0 || std::size_t(x.labels[i]) >= x.classes.size())
      throw Error(file + ": " + rec + " has label " + std::to_string(x.labels[i]) +
                  ", but /classes has " + std::to_string(x.classes.size()) + " classes");
    end = x.offsets[i] + x.lengths[i];
  }
}

void write_shard(const std::string& path, const ShardIndex& x,
                 const std::vector<std::uint8_t>& data, const std::string& split,
                 const std::string& source) {
  Id file = h5::create_file(path);
  const hid_t f = file.get();
  h5::set_attr(f, "format", std::string(kShardFormat));
  h5::set_attr(f, "version", kShardVersion);
  h5::set_attr(f, "split", split);
  h5::set_attr(f, "source", escape_name(source));
  h5::set_attr(f, "records", std::int64_t(x.offsets.size()));
  h5::set_attr(f, "first_file", x.first_file);
  h5::set_attr(f, "files", x.files);
  h5::set_attr(f, "checksum_fnv1a64", fnv1a64_hex(data.data(), data.size()));
  write_1d(f, "bytes", H5T_STD_U8LE, H5T_NATIVE_UINT8, data.size(), data.data());
  const std::size_t n = x.offsets.size();
  write_1d(f, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, n, x.offsets.data());
  write_1d(f, "lengths", H5T_STD_I64LE, H5T_NATIVE_INT64, n, x.lengths.data());
  write_1d(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, n, x.labels.data());
  write_1d(f, "widths", H5T_STD_I32LE, H5T_NATIVE_INT32, n, x.widths.data());
  write_1d(f, "heights", H5T_STD_I32LE, H5T_NATIVE_INT32, n, x.heights.data());
  std::vector<std::uint32_t> crc(n);
  for (std::size_t i = 0; i < n; ++i)
    crc[i] = record_crc32(data.data() + x.offsets[i], std::size_t(x.lengths[i]), x.labels[i]);
  write_1d(f, "crc32", H5T_STD_U32LE, H5T_NATIVE_UINT32, n, crc.data());
  write_strings(f, "paths", x.paths);
  write_strings(f, "classes", x.classes);
  write_strings(f, "skipped", x.skipped);
  DISTNET_CHECK_HDF5(H5Fflush(f, H5F_SCOPE_GLOBAL));
  file.close_checked();
}

ShardFile read_shard(const std::string& path) {
  const std::int64_t size_on_disk = file_size(path);
  Id file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  ShardFile s;
  ShardIndex& x = s.index;
  try {
    if (h5::get_string(f, "format") != kShardFormat) throw Error("its format is not a shard's");
    s.version = h5::get_int(f, "version");
    if (s.version < kShardOldestVersion || s.version > kShardVersion)
      throw Error("shard version " + std::to_string(s.version) + ", this build reads " +
                  std::to_string(kShardOldestVersion) + " to " + std::to_string(kShardVersion));
    x.first_file = h5::get_int(f, "first_file");
    x.files = h5::get_int(f, "files");
    s.checksum = h5::get_string(f, "checksum_fnv1a64");
  } catch (const Error& e) {
    throw Error(path + ": not a distnet packed shard (" + e.what() + ")");
  }
  x.offsets = read_1d<std::int64_t>(f, "offsets", path);
  x.lengths = read_1d<std::int64_t>(f, "lengths", path);
  x.labels = read_1d<std::int32_t>(f, "labels", path);
  x.widths = read_1d<std::int32_t>(f, "widths", path);
  x.heights = read_1d<std::int32_t>(f, "heights", path);
  const bool v2 = s.version >= 2;
  if (v2) {
    x.crc32 = read_1d<std::uint32_t>(f, "crc32", path);
    if (x.crc32.size() != x.offsets.size())
      throw Error(path + ": /crc32 has " + std::to_string(x.crc32.size()) + " entries, expected " +
                  std::to_string(x.offsets.size()) + " (one per record, as /offsets)");
  }
  x.paths = read_strings(f, "paths", path, v2);
  x.classes = read_strings(f, "classes", path, v2);
  x.skipped = read_strings(f, "skipped", path, v2);
  if (h5::get_int(f, "records") != std::int64_t(x.offsets.size()))
    throw Error(path + ": its records attribute says " + std::to_string(h5::get_int(f, "records")) +
                ", /offsets has " + std::to_string(x.offsets.size()));
  Id set = open_set(f, "bytes", path);
  x.bytes = std::int64_t(length_1d(set.get(), "bytes", path));
  Id plist(DISTNET_CHECK_HDF5(H5Dget_create_plist(set.get())), H5Pclose);
  if (H5Pget_layout(plist.get()) != H5D_CONTIGUOUS)
    throw Error(path + ": /bytes is chunked or compressed; shards keep it contiguous (repack it)");
  validate_shard_index(x, path);
  if (x.bytes > 0) {
    const haddr_t at = H5Dget_offset(set.get());
    if (at == HADDR_UNDEF) throw Error(path + ": /bytes has no storage (an unfinished shard?)");
    s.data_offset = std::int64_t(at);
    if (s.data_offset + x.bytes > size_on_disk)
      throw Error(path + ": truncated: /bytes ends at byte " +
                  std::to_string(s.data_offset + x.bytes) + ", the file has " +
                  std::to_string(size_on_disk));
  }
  return s;
}

std::string verify_shard_records(const std::string& path, const ShardFile& s) {
  const ShardIndex& x = s.index;
  if (s.version < 2)
    return path + ": a version-" + std::to_string(s.version) +
           " shard, without record checksums; expected version " + std::to_string(kShardVersion);
  std::ifstream in(path, std::ios::binary);
  if (!in) return path + ": cannot open: " + std::strerror(errno);
  std::vector<std::uint8_t> buf;
  for (std::size_t i = 0; i < x.offsets.size(); ++i) {
    buf.resize(std::size_t(x.lengths[i]));
    in.seekg(std::streamoff(s.data_offset + x.offsets[i]));
    if (!in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size())))
      return path + ": record " + std::to_string(i) + " (" + x.paths[i] +
             ") cannot be read: the file ends early, expected " + std::to_string(buf.size()) +
             " bytes";
    const std::string problem = record_problem(x, i, buf.data());
    if (!problem.empty())
      return path + ": record " + std::to_string(i) + " (" + x.paths[i] + "): " + problem;
  }
  return "";
}

}  // namespace distnet::data
