// Field access for Hugging Face config.json files, internal to src/model: every failure names the file and
// the field and says what was expected (InputError, exit 2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/gpt_neo_config.h"
#include "model/llama_config.h"

namespace lethe::model {

class Reader {
 public:
  // `prefix` names the object inside the file ("rope_scaling.") for fields of a nested object.
  Reader(std::string file, const nlohmann::json& root, std::string prefix = "")
      : file_(std::move(file)), prefix_(std::move(prefix)), root_(root) {}

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const;

  // The value of the first of `keys` present (aliases), or nullptr.
  const nlohmann::json* find(std::initializer_list<std::string_view> keys) const;
  // find() treating JSON null as absent (HF writes None as null).
  const nlohmann::json* find_set(std::initializer_list<std::string_view> keys) const;

  // Integer field in [min, max]; required fields have no fallback.
  int64_t integer(std::initializer_list<std::string_view> keys, std::optional<int64_t> fallback, int64_t min,
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  // A finite number; the caller checks the range. Required when there is no fallback.
  double number(std::string_view key, std::optional<double> fallback) const;
  std::string string(std::string_view key, std::optional<std::string> fallback) const;
  bool boolean(std::string_view key, bool fallback) const;

  const std::string& file() const { return file_; }

 private:
  std::string file_, prefix_;
  const nlohmann::json& root_;
};

// The families' halves of model/hf_config.h: fields read through `r` (model_type already checked), and the
// config.json object transformers would write, with "dtype" / "torch_dtype" set to `dtype`.
GptNeoConfig read_gpt_neo_config(const Reader& r);
LlamaConfig read_llama_config(const Reader& r);
nlohmann::json gpt_neo_json(const GptNeoConfig& c, std::string_view dtype);
nlohmann::json llama_json(const LlamaConfig& c, std::string_view dtype);

}  // namespace lethe::model
