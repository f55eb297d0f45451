// Loading and validation of byte-level BPE files (internal to the tokenizer; see bpe.h for the public API).
// Every format is reduced to the same tables so the encoder never has to care where they came from.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lethe::text {

struct MergeRule {
  int32_t left = 0, right = 0, merged = 0;  // token ids; the rule's rank is its index in BpeVocab::merges
};

// A token matched verbatim in the text before pre-tokenisation (HF "added tokens"), like <|endoftext|>.
struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = true;
  bool normalized = false;  // matched in the normalized text rather than the input (HF's "normalized")
};

struct BpeVocab {
  std::vector<std::string>
      tokens;              // id -> token: model.vocab's (dense ids 0..V-1), then added tokens outside it
  int64_t model_size = 0;  // V: the tokens the BPE model itself knows
  std::vector<MergeRule> merges;  // in rank order: lower index merges first
  std::vector<AddedToken> added;
  std::array<int32_t, 256> byte_ids{};  // raw byte -> id of its single-byte token (byte-level BPE only)
  int32_t eos_id = -1;                  // GPT-2's <|endoftext|>; -1 until the tokenizer's config names one
};

inline constexpr std::string_view kEndOfText = "<|endoftext|>";

// HF / OpenAI pair: vocab.json (or encoder.json) + merges.txt (or vocab.bpe).
BpeVocab load_vocab_and_merges(const std::filesystem::path& vocab_json,
                               const std::filesystem::path& merges_txt);
// model.vocab, model.merges and added_tokens of a parsed tokenizer.json; `where` is its path for messages.
// byte_level: the 256 byte tokens of GPT-2's alphabet must be there (their ids fill byte_ids).
BpeVocab read_bpe_tables(const nlohmann::json& root, const std::string& where, bool byte_level);
// A JSON file, or InputError naming it and saying it should be `expected`.
nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view expected);

// GPT-2's reversible byte <-> printable code point map (bytes_to_unicode in OpenAI's encoder.py), as UTF-8.
const std::array<std::string, 256>& byte_level_alphabet();
// Raw bytes a token stands for. Like HF's ByteLevel decoder, a token with a character outside the byte-level
// alphabet (an added token, say) stands for its own UTF-8 text.
std::string token_to_bytes(std::string_view token);

}  // namespace lethe::text
