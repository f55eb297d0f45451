#include "test_util.h"

#include "model/hf_config.h"

#include <cstring>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

#include "core/error.h"
#include "model/safetensors.h"

#ifndef LETHE_SOURCE_DIR
#define LETHE_SOURCE_DIR "."
#endif
#ifndef LETHE_DEFAULT_FIXTURES
#define LETHE_DEFAULT_FIXTURES ""
#endif
#ifndef LETHE_DEFAULT_PYTHON
#define LETHE_DEFAULT_PYTHON ""
#endif

namespace lethe::test {
namespace fs = std::filesystem;

std::optional<fs::path> shared_data_dir() {
  const char* env = std::getenv("LETHE_SHARED_DATA");
  fs::path dir = env ? fs::path(env) : fs::path(LETHE_SOURCE_DIR) / ".." / "shared" / "data";
  if (!fs::is_directory(dir)) return std::nullopt;
  return fs::canonical(dir);
}

std::optional<fs::path> fixtures_dir() {
  const char* env = std::getenv("LETHE_FIXTURES");
  const fs::path dir = env ? env : LETHE_DEFAULT_FIXTURES;
  if (dir.empty() || !fs::is_directory(dir)) return std::nullopt;
  return dir;
}

std::optional<fs::path> fixture_subdir(std::string_view sub, std::string_view file) {
  const auto root = fixtures_dir();
  if (!root || !fs::exists(*root / sub / file)) return std::nullopt;
  return *root / sub;
}

std::optional<std::string> python() {
  const char* env = std::getenv("LETHE_PYTHON");
  const std::string py = env ? env : LETHE_DEFAULT_PYTHON;
  if (py.empty()) return std::nullopt;
  return py;
}

std::map<std::string, torch::Tensor> load_tensors(const fs::path& file) {
  using model::DType;
  auto st = model::SafetensorsFile::open(file);
  std::map<std::string, torch::Tensor> out;
  for (const auto& v : st.tensors()) {
    torch::ScalarType t;
    switch (v.dtype) {
      case DType::kF32:
        t = torch::kFloat;
        break;
      case DType::kF64:
        t = torch::kDouble;
        break;
      case DType::kBF16:
        t = torch::kBFloat16;
        break;
      case DType::kF16:
        t = torch::kHalf;
        break;
      case DType::kI64:
        t = torch::kLong;
        break;
      case DType::kI32:
        t = torch::kInt;
        break;
      case DType::kBool:
        t = torch::kBool;
        break;
      default:
        throw std::runtime_error("unsupported fixture dtype for " + v.name);
    }
    torch::Tensor x = torch::empty(v.shape, torch::TensorOptions().dtype(t));
    std::memcpy(x.data_ptr(), v.data, v.nbytes);
    out.emplace(v.name, x);
  }
  return out;
}

void expect_input_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return;
  }
  ADD_FAILURE() << "expected lethe::InputError mentioning " << (parts.empty() ? "" : parts.front());
}

void expect_same_architecture(const model::GptNeoConfig& a, const model::GptNeoConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.window_size, b.window_size);
  EXPECT_EQ(a.layer_norm_epsilon, b.layer_norm_epsilon);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
  EXPECT_EQ(a.activation_function, b.activation_function);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.attention_layers, b.attention_layers);
}

void expect_same_architecture(const model::ModelConfig& a, const model::ModelConfig& b) {
  EXPECT_EQ(model::hf_config_text(a), model::hf_config_text(b));
}

model::GptNeoConfig small_gpt_neo(int64_t vocab, int64_t hidden, int64_t positions) {
  model::GptNeoConfig c;
  c.vocab_size = vocab;
  c.max_position_embeddings = positions;
  c.hidden_size = hidden;
  c.num_layers = 2;
  c.num_heads = 2;
  c.window_size = 4;
  c.attention_layers = model::alternating_attention(2);
  c.bos_token_id = c.eos_token_id = vocab - 1;  // inside the vocabulary, as config.json requires
  return c;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("lethe-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace lethe::test
