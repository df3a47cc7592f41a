// Tensors: a shape, an element type and a buffer on one device.
// Buffer owns memory and is move-only (a move leaves the source empty); TensorView never owns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "distnet/error.hpp"

namespace distnet {

enum class DType : std::uint8_t { f32, i32, i64, u8 };
std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

struct Device {
  enum class Kind : std::uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {Kind::cpu, 0}; }
  static Device cuda(int i) { return {Kind::cuda, i}; }
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;  // "cpu" or "cuda:N"
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// Dimensions, outermost first. For activations the layout is NCHW unless a descriptor says
// otherwise; a per-sample shape (CHW) has no batch dimension.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  std::int64_t operator[](int i) const { return dims_.at(static_cast<std::size_t>(i)); }
  std::int64_t numel() const;  // 1 for rank 0
  const std::vector<std::int64_t>& dims() const { return dims_; }
  Shape with_batch(std::int64_t n) const;  // prepends n
  std::string str() const;                 // "96x54x54"
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }

 private:
  std::vector<std::int64_t> dims_;
};

// Owns `bytes` bytes on one device. The deleter is supplied by whoever allocated the memory
// (host: aligned free; CUDA: the backend's allocator), so this header needs no CUDA.
class Buffer {
 public:
  using Deleter = void (*)(void* ptr, std::size_t bytes, Device dev);

  Buffer() = default;
  Buffer(void* ptr, std::size_t bytes, Device dev, Deleter deleter)
      : ptr_(ptr), bytes_(bytes), dev_(dev), deleter_(deleter) {}
  static Buffer host(std::size_t bytes);  // 64-byte aligned, contents undefined

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~Buffer() { reset(); }

  void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return dev_; }
  void reset() noexcept;

 private:
  void swap(Buffer& o) noexcept;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device dev_{};
  Deleter deleter_ = nullptr;
};

// A non-owning window onto typed memory.
class TensorView {
 public:
  TensorView() = default;
  TensorView(void* data, Shape shape, DType dtype, Device dev)
      : data_(data), shape_(std::move(shape)), dtype_(dtype), dev_(dev) {}

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return dev_; }
  std::int64_t numel() const { return shape_.numel(); }
  void* raw() const { return data_; }
  template <typename T>
  T* data() const;

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device dev_{};
};

// Owns its buffer; shape may be smaller than the buffer's capacity (a batch slice that is
// smaller than the largest one allocated for), never larger.
class Tensor {
 public:
  Tensor() = default;
  Tensor(Buffer buf, Shape shape, DType dtype);
  static Tensor host(Shape shape, DType dtype = DType::f32);  // zero-filled

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return buf_.device(); }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t capacity_bytes() const { return buf_.bytes(); }
  void reshape(Shape s);  // within capacity
  TensorView view() const { return {buf_.data(), shape_, dtype_, buf_.device()}; }
  template <typename T>
  T* data() const {
    return view().data<T>();
  }

 private:
  Buffer buf_;
  Shape shape_;
  DType dtype_ = DType::f32;
};

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::f32;
};
template <>
struct DTypeOf<std::int32_t> {
  static constexpr DType value = DType::i32;
};
template <>
struct DTypeOf<std::int64_t> {
  static constexpr DType value = DType::i64;
};
template <>
struct DTypeOf<std::uint8_t> {
  static constexpr DType value = DType::u8;
};

template <typename T>
T* TensorView::data() const {
  DISTNET_CHECK(DTypeOf<T>::value == dtype_, std::string("tensor holds ") + dtype_name(dtype_) +
                                                 ", accessed as " + dtype_name(DTypeOf<T>::value));
  return static_cast<T*>(data_);
}

}  // namespace distnet
