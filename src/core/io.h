// Small file helpers shared by every reader and writer of user-facing files.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe {

// The whole file as bytes. InputError naming the file, the OS error and `expected` (what the file should be)
// when it cannot be read.
std::string read_text_file(const std::filesystem::path& path, std::string_view expected);

// A short description of a JSON value for error messages ("string \"gpt2\"", "array of 3 elements").
// Containers are never dumped: dump() recurses, and a hostile file can nest arrays deep enough to overflow
// the stack.
std::string describe_json(const nlohmann::json& v);

// "<what> '<path>': <strerror(errno)>", for std::runtime_error messages after a failed system call.
std::string os_error_message(std::string_view what, const std::filesystem::path& p);

// Writes `pieces` back to back into `<file>.tmp-<pid>` in the same folder, fsyncs it, renames it over `file`
// and fsyncs the folder, so readers see either the old or the complete new file, even after a crash.
// Throws std::runtime_error naming the file and the OS error; the temporary file is removed on failure.
void write_file_atomic(const std::filesystem::path& file,
                       const std::vector<std::span<const std::byte>>& pieces);

}  // namespace lethe
