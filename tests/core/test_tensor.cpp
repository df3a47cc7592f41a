#include <gtest/gtest.h>

#include "distnet/tensor.hpp"

using namespace distnet;

TEST(Shape, NumelStrAndBatch) {
  const Shape s{96, 54, 54};
  EXPECT_EQ(s.numel(), 96 * 54 * 54);
  EXPECT_EQ(s.str(), "96x54x54");
  EXPECT_EQ(s.with_batch(8), (Shape{8, 96, 54, 54}));
  EXPECT_EQ(Shape{}.numel(), 1);
}

TEST(Buffer, MoveLeavesSourceEmpty) {
  Buffer a = Buffer::host(1000);
  void* p = a.data();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  Buffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.bytes(), 1000u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.bytes(), 0u);
  Buffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(b.data(), nullptr);
}

TEST(Buffer, CustomDeleterRunsOnceOnDestruction) {
  static int calls = 0;
  calls = 0;
  {
    Buffer owned(new float[4], 16, Device::cpu(), [](void* p, std::size_t, Device) {
      delete[] static_cast<float*>(p);
      ++calls;
    });
    Buffer moved(std::move(owned));
  }
  EXPECT_EQ(calls, 1);
}

TEST(Tensor, HostIsZeroedAndViewsDoNotOwn) {
  Tensor t = Tensor::host(Shape{3, 4});
  for (int i = 0; i < 12; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  TensorView v = t.view();
  EXPECT_EQ(v.data<float>(), t.data<float>());
  EXPECT_EQ(v.shape(), (Shape{3, 4}));
  EXPECT_THROW(v.data<std::int32_t>(), Error);  // wrong element type
}

TEST(Tensor, ReshapeStaysWithinCapacity) {
  Tensor t = Tensor::host(Shape{8, 10});
  t.reshape(Shape{5, 10});  // a smaller batch slice in the same buffer
  EXPECT_EQ(t.numel(), 50);
  EXPECT_THROW(t.reshape(Shape{9, 10}), Error);
}

TEST(Device, Names) {
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_EQ(Device::cuda(3).str(), "cuda:3");
  EXPECT_NE(Device::cpu(), Device::cuda(0));
}
