// The vocabulary config sections use to describe their fields: constraints, enum name tables, and the
// scalar text <-> value conversions shared by the YAML loader, the dumper and `--set`.
//
// A section lists each field once in `template <class V> void visit(V& v)`:
//   v("num_beams", num_beams, Range{1, 64}, "beams for beam search, 1 = greedy");
//   v("path", path, "HF folder; empty = none");            // no constraint
// The visitors in config.cpp turn that single list into loading, dumping, `--set` and key listing.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace lethe {

// ---- Enums --------------------------------------------------------------------------------------------
// Specialize with `static constexpr std::pair<E, std::string_view> values[] = {...};` to make E usable as a
// config field; the names are what YAML files and `--set` spell.
template <class E>
struct EnumNames;

template <class E>
concept NamedEnum = std::is_enum_v<E> && requires {
  std::size(EnumNames<E>::values);
};

template <NamedEnum E>
std::string_view enum_name(E e) {
  for (const auto& [value, name] : EnumNames<E>::values)
    if (value == e) return name;
  return "?";  // only reachable with a value cast from an out-of-range integer
}

template <NamedEnum E>
std::optional<E> enum_from_name(std::string_view name) {
  for (const auto& [value, n] : EnumNames<E>::values)
    if (n == name) return value;
  return std::nullopt;
}

template <NamedEnum E>
std::string enum_choices() {
  std::string out;
  for (const auto& [value, name] : EnumNames<E>::values)
    out += fmt::format("{}{}", out.empty() ? "" : " | ", name);
  return out;
}

// ---- Constraints --------------------------------------------------------------------------------------
struct NoCheck {};
template <class T>
struct Range {  // inclusive on both ends
  T lo;
  T hi;
};
template <class T>
struct AtLeast {  // inclusive, no upper bound
  T lo;
};
struct Positive {};  // > 0, for reals where an inclusive lower bound would admit 0
struct NonEmpty {};  // strings and lists
struct Choices {     // a string restricted to a set computed at run time (e.g. preset names)
  std::vector<std::string> allowed;
  bool allow_empty = false;
};

namespace detail {
template <class A, class B>
bool less(A a, B b) {
  if constexpr (std::is_integral_v<A> && std::is_integral_v<B>)
    return std::cmp_less(a, b);  // no sign-compare surprises between int ranges and uint64 fields
  else
    return a < b;
}
}  // namespace detail

// Each overload returns what the value violates ("must be in [1, 64]"), or nullopt when it is fine.
template <class T>
std::optional<std::string> violation(const T&, const NoCheck&) {
  return std::nullopt;
}
template <class T, class B>
std::optional<std::string> violation(const T& v, const Range<B>& r) {
  if (detail::less(v, r.lo) || detail::less(r.hi, v)) return fmt::format("must be in [{}, {}]", r.lo, r.hi);
  return std::nullopt;
}
template <class T, class B>
std::optional<std::string> violation(const T& v, const AtLeast<B>& r) {
  if (detail::less(v, r.lo)) return fmt::format("must be >= {}", r.lo);
  return std::nullopt;
}
template <class T>
std::optional<std::string> violation(const T& v, const Positive&) {
  if (!(v > T{0})) return std::string("must be > 0");
  return std::nullopt;
}
template <class T>
std::optional<std::string> violation(const T& v, const NonEmpty&) {
  if (v.empty()) return std::string("must not be empty");
  return std::nullopt;
}
inline std::optional<std::string> violation(const std::string& v, const Choices& c) {
  if (v.empty() && c.allow_empty) return std::nullopt;
  if (std::find(c.allowed.begin(), c.allowed.end(), v) != c.allowed.end()) return std::nullopt;
  return fmt::format("must be one of: {}{}", fmt::join(c.allowed, ", "), c.allow_empty ? " (or empty)" : "");
}

// ---- Scalar text <-> value ----------------------------------------------------------------------------
template <class T>
concept ConfigInteger = std::integral<T> && !std::same_as<T, bool>;

// What a value of T looks like, for "expected ..." messages.
template <class T>
std::string expected_type() {
  if constexpr (std::same_as<T, bool>)
    return "true or false";
  else if constexpr (ConfigInteger<T> && std::is_unsigned_v<T>)
    return "a non-negative integer";
  else if constexpr (ConfigInteger<T>)
    return "an integer";
  else if constexpr (std::floating_point<T>)
    return "a finite number";
  else if constexpr (std::same_as<T, std::string>)
    return "a string";
  else if constexpr (NamedEnum<T>)
    return "one of " + enum_choices<T>();
  else
    static_assert(sizeof(T) == 0, "unsupported config field type");
}

// Parses the full text of one YAML scalar. False when the text is not a T: trailing characters ("3.5" for an
// integer), overflow, a non-finite real, or a bool spelled other than true/false (YAML 1.1's yes/on/True
// are rejected so that a typo never silently means true).
template <class T>
bool parse_scalar(std::string_view text, T& out) {
  if constexpr (std::same_as<T, bool>) {
    if (text != "true" && text != "false") return false;
    out = text == "true";
    return true;
  } else if constexpr (ConfigInteger<T> || std::floating_point<T>) {
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);  // from_chars rejects an explicit '+'
    if (text.empty() || text.front() == '+') return false;
    T v{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return false;
    if constexpr (std::floating_point<T>)
      if (!std::isfinite(v)) return false;
    out = v;
    return true;
  } else if constexpr (std::same_as<T, std::string>) {
    out = std::string(text);
    return true;
  } else if constexpr (NamedEnum<T>) {
    auto v = enum_from_name<T>(text);
    if (!v) return false;
    out = *v;
    return true;
  } else {
    static_assert(sizeof(T) == 0, "unsupported config field type");
  }
}

// The text parse_scalar reads back to the same value. Reals use the shortest exact form and always show a
// '.', an exponent or both, so a dumped 1.0 still reads as a real to humans.
template <class T>
std::string format_scalar(const T& v) {
  if constexpr (std::same_as<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::floating_point<T>) {
    std::string s = fmt::format("{}", v);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  } else if constexpr (ConfigInteger<T>) {
    return fmt::format("{}", v);
  } else if constexpr (std::same_as<T, std::string>) {
    return v;
  } else if constexpr (NamedEnum<T>) {
    return std::string(enum_name(v));
  } else {
    static_assert(sizeof(T) == 0, "unsupported config field type");
  }
}

// ---- Key suggestions ----------------------------------------------------------------------------------
// Levenshtein distance (insert, delete, substitute all cost 1).
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace lethe
