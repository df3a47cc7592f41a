#include "distnet/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace distnet {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::u8:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "float32";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::u8:
      return "uint8";
  }
  return "?";
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (auto d : dims_) n *= d;
  return n;
}

Shape Shape::with_batch(std::int64_t n) const {
  std::vector<std::int64_t> d;
  d.reserve(dims_.size() + 1);
  d.push_back(n);
  d.insert(d.end(), dims_.begin(), dims_.end());
  return Shape(std::move(d));
}

std::string Shape::str() const {
  std::string s;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += "x";
    s += std::to_string(dims_[i]);
  }
  return s.empty() ? "scalar" : s;
}

namespace {
void free_host(void* p, std::size_t, Device) {
  std::free(p);
}
}  // namespace

Buffer Buffer::host(std::size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; 64 bytes suits AVX-512 loads.
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  if (rounded && !p)
    throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return Buffer(p, bytes, Device::cpu(), free_host);
}

void Buffer::reset() noexcept {
  if (ptr_ && deleter_) deleter_(ptr_, bytes_, dev_);
  ptr_ = nullptr;
  bytes_ = 0;
  deleter_ = nullptr;
}

void Buffer::swap(Buffer& o) noexcept {
  std::swap(ptr_, o.ptr_);
  std::swap(bytes_, o.bytes_);
  std::swap(dev_, o.dev_);
  std::swap(deleter_, o.deleter_);
}

Tensor::Tensor(Buffer buf, Shape shape, DType dtype)
    : buf_(std::move(buf)), shape_(std::move(shape)), dtype_(dtype) {
  DISTNET_CHECK(static_cast<std::size_t>(shape_.numel()) * dtype_size(dtype_) <= buf_.bytes(),
                "tensor shape " + shape_.str() + " exceeds its buffer");
}

Tensor Tensor::host(Shape shape, DType dtype) {
  const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  Buffer b = Buffer::host(bytes);
  if (bytes) std::memset(b.data(), 0, bytes);
  return Tensor(std::move(b), std::move(shape), dtype);
}

void Tensor::reshape(Shape s) {
  DISTNET_CHECK(static_cast<std::size_t>(s.numel()) * dtype_size(dtype_) <= buf_.bytes(),
                "reshape to " + s.str() + " exceeds the tensor's capacity");
  shape_ = std::move(s);
}

}  // namespace distnet
