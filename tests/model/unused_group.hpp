// A group communicator for building the hybrid grid's split layers in tests: construction
// keeps a pointer to it and calls none of it.
#pragma once

#include <gtest/gtest.h>

#include "distnet/comm.hpp"

namespace distnet::testkit {

class UnusedGroup final : public Communicator {
 public:
  UnusedGroup(int rank, int size) : rank_(rank), size_(size) {}
  std::string name() const override { return "unused"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float*, std::size_t) override { ADD_FAILURE() << "called"; }
  void allreduce_sum(double*, std::size_t) override { ADD_FAILURE() << "called"; }
  void broadcast(void*, std::size_t, int) override { ADD_FAILURE() << "called"; }
  void barrier() override { ADD_FAILURE() << "called"; }
  void allgather(const float*, float*, std::size_t) override { ADD_FAILURE() << "called"; }
  void reduce_scatter_sum(const float*, float*, std::size_t) override { ADD_FAILURE() << "called"; }

 private:
  int rank_, size_;
};

}  // namespace distnet::testkit
