#include "distnet/h5.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace distnet::h5 {
namespace {

Id attr_for_write(hid_t obj, const std::string& name, hid_t type, hid_t space) {
  if (DISTNET_CHECK_HDF5(H5Aexists(obj, name.c_str())) > 0)
    DISTNET_CHECK_HDF5(H5Adelete(obj, name.c_str()));
  return Id(
      DISTNET_CHECK_HDF5(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT)),
      H5Aclose);
}

Id open_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) throw Error("attribute '" + name + "' is missing");
  return Id(DISTNET_CHECK_HDF5(H5Aopen(obj, name.c_str(), H5P_DEFAULT)), H5Aclose);
}

std::int64_t attr_elements(hid_t attr) {
  Id space(DISTNET_CHECK_HDF5(H5Aget_space(attr)), H5Sclose);
  return DISTNET_CHECK_HDF5(H5Sget_simple_extent_npoints(space.get()));
}

std::string dims_str(const std::vector<std::int64_t>& d) {
  std::string s;
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "scalar" : s;
}

}  // namespace

void Id::close_checked() {
  if (id_ < 0) return;
  const hid_t id = id_;
  id_ = H5I_INVALID_HID;
  DISTNET_CHECK_HDF5(close_(id));
}

// The library is built thread-safe: the error stack, and whether it is printed, belong to each
// thread, so every thread that calls HDF5 (main, the checkpoint writer, loader workers) is
// silenced on its first call.
void quiet() {
  thread_local bool done = false;
  if (done) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  done = true;
}

Id create_file(const std::string& path) {
  quiet();
  return Id(DISTNET_CHECK_HDF5(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)),
            H5Fclose);
}

Id open_file_readonly(const std::string& path) {
  quiet();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot read: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  if (::access(path.c_str(), R_OK) != 0)
    throw Error(path + ": cannot read: " + std::strerror(errno));
  if (H5Fis_hdf5(path.c_str()) <= 0)  // H5Fis_accessible from HDF5 1.12 on
    throw Error(path + ": not an HDF5 file (or truncated)");
  try {
    return Id(DISTNET_CHECK_HDF5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)), H5Fclose);
  } catch (const Error& e) {
    throw Error(path + ": cannot open the HDF5 file (damaged or truncated?): " + e.what());
  }
}

Id create_group(hid_t parent, const std::string& name) {
  return Id(
      DISTNET_CHECK_HDF5(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
      H5Gclose);
}

bool exists(hid_t parent, const std::string& path) {
  // H5Lexists checks one link at a time: walk the path so a missing group is not an error.
  std::string prefix;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    prefix = path.substr(0, slash == std::string::npos ? path.size() : slash);
    if (H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

void write_floats(hid_t parent, const std::string& name, const std::vector<std::int64_t>& dims,
                  const float* data) {
  quiet();
  std::vector<hsize_t> d(dims.begin(), dims.end());
  Id space(DISTNET_CHECK_HDF5(H5Screate_simple(int(d.size()), d.data(), nullptr)), H5Sclose);
  // Chunked, with HDF5's Fletcher32 checksum on every chunk: a damaged byte fails the read
  // (h5py and h5dump verify it too). Chunks span whole rows and hold at most 256 MiB (HDF5's
  // limit is 4 GiB), so a tensor is usually one chunk.
  Id create(DISTNET_CHECK_HDF5(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose);
  std::int64_t numel = 1;
  for (std::int64_t v : dims) numel *= v;
  if (!d.empty() && numel > 0) {
    std::vector<hsize_t> chunk = d;
    const hsize_t row_bytes = hsize_t(numel) / d[0] * sizeof(float);
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(d[0], (hsize_t(256) << 20) / row_bytes));
    DISTNET_CHECK_HDF5(H5Pset_chunk(create.get(), int(chunk.size()), chunk.data()));
    DISTNET_CHECK_HDF5(H5Pset_fletcher32(create.get()));
  }
  Id set(DISTNET_CHECK_HDF5(H5Dcreate2(parent, name.c_str(), H5T_IEEE_F32LE, space.get(),
                                       H5P_DEFAULT, create.get(), H5P_DEFAULT)),
         H5Dclose);
  DISTNET_CHECK_HDF5(H5Dwrite(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

std::vector<std::int64_t> dataset_dims(hid_t parent, const std::string& name) {
  Id set(DISTNET_CHECK_HDF5(H5Dopen2(parent, name.c_str(), H5P_DEFAULT)), H5Dclose);
  Id space(DISTNET_CHECK_HDF5(H5Dget_space(set.get())), H5Sclose);
  const int rank = DISTNET_CHECK_HDF5(H5Sget_simple_extent_ndims(space.get()));
  std::vector<hsize_t> d(static_cast<std::size_t>(rank));
  DISTNET_CHECK_HDF5(H5Sget_simple_extent_dims(space.get(), d.data(), nullptr));
  return {d.begin(), d.end()};
}

void read_floats(hid_t parent, const std::string& name, const std::vector<std::int64_t>& dims,
                 float* data, const std::string& file) {
  if (!exists(parent, name)) throw Error(file + ": dataset /" + name + " is missing");
  const auto found = dataset_dims(parent, name);
  if (found != dims) {
    throw Error(file + ": dataset /" + name + " has shape " + dims_str(found) + ", expected " +
                dims_str(dims));
  }
  Id set(DISTNET_CHECK_HDF5(H5Dopen2(parent, name.c_str(), H5P_DEFAULT)), H5Dclose);
  if (H5Dread(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    H5Eclear2(H5E_DEFAULT);
    // The usual cause is a chunk whose Fletcher32 checksum no longer matches its bytes.
    Id create(H5Dget_create_plist(set.get()), H5Pclose);
    const bool checksummed = create.get() >= 0 && H5Pget_nfilters(create.get()) > 0 &&
                             H5Pget_filter_by_id2(create.get(), H5Z_FILTER_FLETCHER32, nullptr,
                                                  nullptr, nullptr, 0, nullptr, nullptr) >= 0;
    H5Eclear2(H5E_DEFAULT);
    throw Error(file + ": dataset /" + name +
                (checksummed ? " fails its checksum: the file is damaged"
                             : " cannot be read: the file is damaged or truncated"));
  }
}

void set_attr(hid_t obj, const std::string& name, std::int64_t v) {
  Id space(DISTNET_CHECK_HDF5(H5Screate(H5S_SCALAR)), H5Sclose);
  Id a = attr_for_write(obj, name, H5T_STD_I64LE, space.get());
  DISTNET_CHECK_HDF5(H5Awrite(a.get(), H5T_NATIVE_INT64, &v));
}

void set_attr(hid_t obj, const std::string& name, double v) {
  Id space(DISTNET_CHECK_HDF5(H5Screate(H5S_SCALAR)), H5Sclose);
  Id a = attr_for_write(obj, name, H5T_IEEE_F64LE, space.get());
  DISTNET_CHECK_HDF5(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &v));
}

void set_attr(hid_t obj, const std::string& name, const std::string& v) {
  // A fixed-length UTF-8 string: read as a plain str by h5py and shown as text by h5dump.
  Id type(DISTNET_CHECK_HDF5(H5Tcopy(H5T_C_S1)), H5Tclose);
  DISTNET_CHECK_HDF5(H5Tset_size(type.get(), std::max<std::size_t>(1, v.size())));
  DISTNET_CHECK_HDF5(H5Tset_cset(type.get(), H5T_CSET_UTF8));
  DISTNET_CHECK_HDF5(H5Tset_strpad(type.get(), H5T_STR_NULLPAD));
  Id space(DISTNET_CHECK_HDF5(H5Screate(H5S_SCALAR)), H5Sclose);
  Id a = attr_for_write(obj, name, type.get(), space.get());
  const std::string padded = v.empty() ? std::string(1, '\0') : v;
  DISTNET_CHECK_HDF5(H5Awrite(a.get(), type.get(), padded.data()));
}

void set_attr(hid_t obj, const std::string& name, const std::vector<std::int64_t>& v) {
  const hsize_t n = v.size();
  Id space(DISTNET_CHECK_HDF5(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  Id a = attr_for_write(obj, name, H5T_STD_I64LE, space.get());
  DISTNET_CHECK_HDF5(H5Awrite(a.get(), H5T_NATIVE_INT64, v.data()));
}

void set_attr(hid_t obj, const std::string& name, const std::vector<double>& v) {
  const hsize_t n = v.size();
  Id space(DISTNET_CHECK_HDF5(H5Screate_simple(1, &n, nullptr)), H5Sclose);
  Id a = attr_for_write(obj, name, H5T_IEEE_F64LE, space.get());
  DISTNET_CHECK_HDF5(H5Awrite(a.get(), H5T_NATIVE_DOUBLE, v.data()));
}

std::int64_t get_int(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  if (attr_elements(a.get()) != 1) throw Error("attribute '" + name + "' is not a scalar");
  std::int64_t v = 0;
  DISTNET_CHECK_HDF5(H5Aread(a.get(), H5T_NATIVE_INT64, &v));
  return v;
}

double get_double(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  if (attr_elements(a.get()) != 1) throw Error("attribute '" + name + "' is not a scalar");
  double v = 0;
  DISTNET_CHECK_HDF5(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v));
  return v;
}

std::string get_string(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  Id type(DISTNET_CHECK_HDF5(H5Aget_type(a.get())), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw Error("attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0)
    throw Error("attribute '" + name + "' is a variable-length string");
  const std::size_t size = H5Tget_size(type.get());
  std::string v(size, '\0');
  DISTNET_CHECK_HDF5(H5Aread(a.get(), type.get(), v.data()));
  v.resize(std::min(v.size(), v.find('\0')));
  return v;
}

std::vector<std::int64_t> get_ints(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  std::vector<std::int64_t> v(static_cast<std::size_t>(attr_elements(a.get())));
  DISTNET_CHECK_HDF5(H5Aread(a.get(), H5T_NATIVE_INT64, v.data()));
  return v;
}

std::vector<double> get_doubles(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  std::vector<double> v(static_cast<std::size_t>(attr_elements(a.get())));
  DISTNET_CHECK_HDF5(H5Aread(a.get(), H5T_NATIVE_DOUBLE, v.data()));
  return v;
}

}  // namespace distnet::h5
