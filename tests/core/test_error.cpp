#include <gtest/gtest.h>

#include <string>

#include "distnet/hdf5_check.hpp"
#include "distnet/mpi_check.hpp"

using namespace distnet;

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

// MPI (a singleton without mpiexec) for the tests that need MPI's own error text.
class MpiEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { MPI_Init(nullptr, nullptr); }
  void TearDown() override { MPI_Finalize(); }
};
[[maybe_unused]] auto* const mpi_env = ::testing::AddGlobalTestEnvironment(new MpiEnvironment);
}  // namespace

TEST(ErrorLayer, MpiCheckCarriesExpressionFileLineAndMpiText) {
  const std::string m = message_of([] { DISTNET_CHECK_MPI(MPI_ERR_COMM); });
  EXPECT_NE(m.find("MPI call `MPI_ERR_COMM` failed"), std::string::npos) << m;
  EXPECT_NE(m.find("communicator"), std::string::npos) << m;  // MPI_Error_string's text
  EXPECT_NE(m.find("test_error.cpp:"), std::string::npos) << m;
}

TEST(ErrorLayer, Hdf5CheckCarriesTheLibraryMessage) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // keep HDF5 from printing its own stack
  const std::string m = message_of(
      [] { DISTNET_CHECK_HDF5(H5Fopen("/nonexistent/dir/x.h5", H5F_ACC_RDONLY, H5P_DEFAULT)); });
  EXPECT_NE(m.find("HDF5 call `H5Fopen("), std::string::npos) << m;
  EXPECT_NE(m.find("test_error.cpp:"), std::string::npos) << m;
  EXPECT_EQ(m.find("negative return value"), std::string::npos) << "no HDF5 text in: " << m;
}

TEST(ErrorLayer, Hdf5CheckPassesValuesThrough) {
  const hid_t space = DISTNET_CHECK_HDF5(H5Screate(H5S_SCALAR));
  EXPECT_GE(space, 0);
  DISTNET_CHECK_HDF5(H5Sclose(space));
}

TEST(ErrorLayer, UsageErrorIsAnError) {
  EXPECT_THROW(DISTNET_CHECK_USAGE(false, "bad --lr"), UsageError);
  EXPECT_THROW(DISTNET_CHECK_USAGE(false, "bad --lr"), Error);
  EXPECT_NO_THROW(DISTNET_CHECK(true, "never"));
}
