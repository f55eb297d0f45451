// Helpers shared by the C++ test suites: where the shared data and the Python-made fixtures are, and reading
// fixture tensors (written by tests/reference/*.py with the safetensors package) into torch tensors.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

#include "model/gpt_neo_config.h"
#include "model/model_config.h"

namespace lethe::test {

// $LETHE_SHARED_DATA, else <repo>/../shared/data; nullopt when absent (tests then GTEST_SKIP with a message).
std::optional<std::filesystem::path> shared_data_dir();
// $LETHE_FIXTURES, else the build tree's test-fixtures/ (where CTest's fixture steps write); nullopt if
// absent.
std::optional<std::filesystem::path> fixtures_dir();
// fixtures_dir()/sub when it holds `file` (what a fixture script writes last), else nullopt.
std::optional<std::filesystem::path> fixture_subdir(std::string_view sub, std::string_view file);
// $LETHE_PYTHON, else the venv interpreter CMake found: for tests that call a Python oracle.
std::optional<std::string> python();

// Every tensor of a .safetensors file, copied into owned CPU tensors.
std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& file);

// Runs f and expects a lethe::InputError whose message contains every one of `parts`.
void expect_input_error(const std::function<void()>& f, const std::vector<std::string>& parts);

// Field-by-field equality of two architectures, each mismatch reported by name.
void expect_same_architecture(const model::GptNeoConfig& a, const model::GptNeoConfig& b);
// Any family: equal config.json texts.
void expect_same_architecture(const model::ModelConfig& a, const model::ModelConfig& b);

// A small GPT-Neo for engine and checkpoint tests: 2 alternating layers, 2 heads, window 4.
model::GptNeoConfig small_gpt_neo(int64_t vocab, int64_t hidden, int64_t positions);

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace lethe::test
