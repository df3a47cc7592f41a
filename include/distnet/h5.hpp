// Small RAII wrappers over the HDF5 C API: each hid_t is owned by one move-only object and closed
// in its destructor; every call is checked (DISTNET_CHECK_HDF5).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "distnet/hdf5_check.hpp"

namespace distnet::h5 {

class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer close) : id_(id), close_(close) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_, close_ = o.close_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  ~Id() { reset(); }
  hid_t get() const { return id_; }
  void reset() noexcept {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  // Closes now and reports failure (a destructor cannot); for the file, where closing writes.
  void close_checked();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Turns off HDF5's own printing of error stacks; distnet reports errors itself.
void quiet();

Id create_file(const std::string& path);  // truncates
Id open_file_readonly(const std::string& path);
Id create_group(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& path);

void write_floats(hid_t parent, const std::string& name, const std::vector<std::int64_t>& dims,
                  const float* data);
// Reads a float dataset after checking that its shape is `dims`; throws naming the dataset and
// both shapes otherwise.
void read_floats(hid_t parent, const std::string& name, const std::vector<std::int64_t>& dims,
                 float* data, const std::string& file);
std::vector<std::int64_t> dataset_dims(hid_t parent, const std::string& name);

void set_attr(hid_t obj, const std::string& name, std::int64_t v);
void set_attr(hid_t obj, const std::string& name, double v);
void set_attr(hid_t obj, const std::string& name, const std::string& v);
void set_attr(hid_t obj, const std::string& name, const std::vector<std::int64_t>& v);
void set_attr(hid_t obj, const std::string& name, const std::vector<double>& v);
std::int64_t get_int(hid_t obj, const std::string& name);
double get_double(hid_t obj, const std::string& name);
std::string get_string(hid_t obj, const std::string& name);
std::vector<std::int64_t> get_ints(hid_t obj, const std::string& name);
std::vector<double> get_doubles(hid_t obj, const std::string& name);

}  // namespace distnet::h5
