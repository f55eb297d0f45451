// Loading and validation of byte-level BPE files (internal to the tokenizer; see bpe.h for the public API).
// Every format is reduced to the same tables so the encoder never has to care where they came from.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

struct MergeRule {
  int32_t left = 0, right = 0, merged = 0;  // token ids; the rule's rank is its index in BpeVocab::merges
};

// A token matched verbatim in the text before pre-tokenisation (HF "added tokens"), like <|endoftext|>.
struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = true;
};

struct BpeVocab {
  std::vector<std::string> tokens;  // id -> token in the byte-level alphabet (dense ids 0..V-1)
  std::vector<MergeRule> merges;    // in rank order: lower index merges first
  std::vector<AddedToken> added;
  std::array<int32_t, 256> byte_ids{};  // raw byte -> id of its single-byte token
  int32_t eos_id = 0;
};

inline constexpr std::string_view kEndOfText = "<|endoftext|>";

// HF / OpenAI pair: vocab.json (or encoder.json) + merges.txt (or vocab.bpe).
BpeVocab load_vocab_and_merges(const std::filesystem::path& vocab_json,
                               const std::filesystem::path& merges_txt);
// HF tokenizers serialisation (tokenizer.json) with a byte-level BPE model.
BpeVocab load_tokenizer_json(const std::filesystem::path& path);

// GPT-2's reversible byte <-> printable code point map (bytes_to_unicode in OpenAI's encoder.py), as UTF-8.
const std::array<std::string, 256>& byte_level_alphabet();
// Raw bytes a token stands for. Like HF's ByteLevel decoder, a token with a character outside the byte-level
// alphabet (an added token, say) stands for its own UTF-8 text.
std::string token_to_bytes(std::string_view token);

}  // namespace lethe::text
