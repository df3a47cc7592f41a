// The error layer: one exception type, and check macros that turn a failed library call into an
// exception carrying the expression, the file, the line and the library's own message.
// Library code throws; only main() turns an exception into a printed line and an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace distnet {

// Every failure distnet reports is a distnet::Error. The message is one line, meant for users.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad value from the user (option, file, shape). main() maps it to exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// A failure every rank learnt of at the same moment, in a collective they all took part in (the
// divergence check, a checkpoint write that failed on rank 0): each rank leaves with `code`, no
// rank is aborted, and only ranks whose message is not empty print it.
class AgreedError : public Error {
 public:
  AgreedError(int code, const std::string& message) : Error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

namespace detail {
// Builds "<lib> call `expr` failed: <msg> (file:line)" and throws distnet::Error.
[[noreturn]] void throw_library_error(const char* lib, const char* expr, const std::string& msg,
                                      const char* file, int line);
}  // namespace detail

}  // namespace distnet

// Internal invariant or input check with a readable message; `msg` is a std::string expression.
#define DISTNET_CHECK(cond, msg)              \
  do {                                        \
    if (!(cond)) throw ::distnet::Error(msg); \
  } while (0)

#define DISTNET_CHECK_USAGE(cond, msg)             \
  do {                                             \
    if (!(cond)) throw ::distnet::UsageError(msg); \
  } while (0)
