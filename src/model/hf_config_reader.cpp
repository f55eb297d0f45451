#include "model/hf_config_reader.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/io.h"

using nlohmann::json;

namespace lethe::model {

void Reader::fail(std::string_view key, std::string_view problem) const {
  throw_input("{}: {}{} {}", file_, prefix_, key, problem);
}

const json* Reader::find(std::initializer_list<std::string_view> keys) const {
  for (auto k : keys) {
    const auto it = root_.find(k);
    if (it != root_.end()) return &*it;
  }
  return nullptr;
}

const json* Reader::find_set(std::initializer_list<std::string_view> keys) const {
  const json* v = find(keys);
  return v == nullptr || v->is_null() ? nullptr : v;
}

int64_t Reader::integer(std::initializer_list<std::string_view> keys, std::optional<int64_t> fallback,
                        int64_t min, int64_t max) const {
  const std::string_view key = *keys.begin();
  const json* v = find(keys);
  if (v == nullptr) {
    if (!fallback) fail(key, "is missing; it is required to build the model");
    return *fallback;
  }
  if (!v->is_number_integer()) fail(key, fmt::format("must be an integer, found {}", describe_json(*v)));
  // Compared in the JSON's own signedness so values above INT64_MAX cannot wrap into range.
  const bool above =
      v->is_number_unsigned() ? v->get<uint64_t>() > static_cast<uint64_t>(max) : v->get<int64_t>() > max;
  if (above || v->get<int64_t>() < min)
    fail(key, fmt::format("is {}; expected an integer in [{}, {}]", v->dump(), min, max));
  return v->get<int64_t>();
}

double Reader::number(std::string_view key, std::optional<double> fallback) const {
  const json* v = find({key});
  if (v == nullptr) {
    if (!fallback) fail(key, "is missing; it is required to build the model");
    return *fallback;
  }
  if (!v->is_number()) fail(key, fmt::format("must be a number, found {}", describe_json(*v)));
  return v->get<double>();
}

std::string Reader::string(std::string_view key, std::optional<std::string> fallback) const {
  const json* v = find({key});
  if (v == nullptr) {
    if (!fallback) fail(key, "is missing");
    return *fallback;
  }
  if (!v->is_string()) fail(key, fmt::format("must be a string, found {}", describe_json(*v)));
  return v->get<std::string>();
}

bool Reader::boolean(std::string_view key, bool fallback) const {
  const json* v = find({key});
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(key, fmt::format("must be true or false, found {}", describe_json(*v)));
  return v->get<bool>();
}

}  // namespace lethe::model
