#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

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
  // A name of this process's own: two suites may run side by side.
  const std::string path =
      ::testing::TempDir() + "distnet_test_error." + std::to_string(::getpid()) + ".h5";
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const std::string m =
      message_of([&] { DISTNET_CHECK_HDF5(H5Gopen2(file, "no-such-group", H5P_DEFAULT)); });
  H5Fclose(file);
  std::remove(path.c_str());
  EXPECT_NE(m.find("HDF5 call `H5Gopen2("), std::string::npos) << m;
  EXPECT_NE(m.find("test_error.cpp:"), std::string::npos) << m;
  EXPECT_EQ(m.find("negative return value"), std::string::npos) << "no HDF5 text in: " << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

// A file driver's failure is the system's: its words, one line, without the driver's offsets.
TEST(ErrorLayer, Hdf5CheckGivesTheSystemsReasonForFileErrors) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::string m = message_of(
      [] { DISTNET_CHECK_HDF5(H5Fopen("/nonexistent/dir/x.h5", H5F_ACC_RDONLY, H5P_DEFAULT)); });
  EXPECT_EQ(m, "No such file or directory");
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
