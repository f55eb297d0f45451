// Error types and the exit codes they map to (architecture.md §3): InputError = bad input or usage (exit 2),
// anything else = runtime failure (exit 1). Messages name the file / key and what was expected.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace lethe {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitStopped = 143;

// Bad user input: a file, a config key, a CLI value. Caught by main and turned into exit code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void throw_input(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

// Checks a condition on user input; the message is only formatted on failure.
#define LETHE_CHECK_INPUT(cond, ...)                \
  do {                                              \
    if (!(cond)) ::lethe::throw_input(__VA_ARGS__); \
  } while (0)

}  // namespace lethe
