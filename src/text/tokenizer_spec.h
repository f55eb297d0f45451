// The tokenizer pipeline as typed values (internal to the tokenizer; see tokenizer.h for the public API).
//
// HF tokenizers runs every text through the same stages, and a tokenizer.json names one component per stage:
//
//   text ─► added tokens split out ─► normalizer ─► pre-tokenizer ─► BPE model ─► post-processor ─► ids
//   ids ─► tokens ─► decoder ─► text
//
// Each stage here is a list of steps from a closed set: the components Llama-2 (SentencePiece-style BPE with
// byte fallback), Llama-3 (Split regex + byte-level BPE) and GPT-2 files use. A file naming anything else is
// refused when it is read (tokenizer_json.cpp), so every id lethe produces is one HF would produce.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "text/bpe_vocab.h"

namespace lethe::text {

// ---- normalizer: text -> text, applied to each stretch between added tokens
// --------------------------------
struct PrependStep {  // prefix added to a non-empty stretch
  std::string prefix;
};
struct ReplaceStep {  // every occurrence of a literal string
  std::string pattern, content;
};
using NormalizerStep = std::variant<PrependStep, ReplaceStep>;

// ---- pre-tokenizer: text -> pieces, each of which BPE sees on its own
// ----------------------------------------- What happens to a match of the split pattern (HF
// SplitDelimiterBehavior; Contiguous is not implemented).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };
struct SplitStep {
  std::string pattern;  // a PCRE2 regex, or a literal when !is_regex
  bool is_regex = true;
  SplitBehavior behavior = SplitBehavior::kIsolated;
};
// GPT-2's byte-level stage: optional leading space, the GPT-2 regex, then each byte stands for one symbol.
// It must be the last step, since what follows it would see the byte alphabet rather than text.
struct ByteLevelStep {
  bool add_prefix_space = false;
  bool use_regex = true;
};
enum class PrependScheme { kAlways, kFirst, kNever };  // kFirst: only a piece at the very start of the input
struct MetaspaceStep {  // spaces become `replacement` (U+2581 "▁"), which may also be prepended and split on
  std::string replacement;
  PrependScheme prepend = PrependScheme::kAlways;
  bool split = true;
};
using PreTokenizerStep = std::variant<SplitStep, ByteLevelStep, MetaspaceStep>;

// ---- decoder: tokens -> text, each step maps the list of token strings to a new list
// --------------------------
struct ByteLevelDecode {};  // byte alphabet back to bytes, all tokens joined, lossy UTF-8
struct ReplaceDecode {      // literal replacement within each token
  std::string pattern, content;
};
struct ByteFallbackDecode {};  // runs of <0xAB> tokens become their UTF-8 text (or U+FFFD each)
struct FuseDecode {};          // all tokens joined into one
struct StripDecode {           // up to `start` leading and `stop` trailing `content` chars
  std::string content;
  std::size_t start = 0, stop = 0;
};
struct MetaspaceDecode {  // replacement -> ' ', dropped at the start of the first token
  std::string replacement;
  PrependScheme prepend = PrependScheme::kAlways;
};
using DecoderStep = std::variant<ByteLevelDecode, ReplaceDecode, ByteFallbackDecode, FuseDecode, StripDecode,
                                 MetaspaceDecode>;

// ---- model
// ---------------------------------------------------------------------------------------------------
struct BpeModelOptions {
  bool byte_fallback = false;     // a character outside the vocabulary becomes its bytes' <0xAB> tokens
  bool fuse_unk = false;          // consecutive unknown characters become one unk token
  bool ignore_merges = false;     // a piece that is itself a token is emitted whole (Llama-3)
  std::optional<int32_t> unk_id;  // unknown characters without byte fallback: unk, or dropped when absent
};

struct TokenizerSpec {
  BpeVocab vocab;  // tokens, merges and added tokens; byte_ids only when the pre-tokenizer is byte-level
  BpeModelOptions bpe;
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::optional<std::vector<DecoderStep>> decoder;  // none: tokens joined with spaces, as HF does
  std::vector<int32_t> prefix, suffix;  // TemplateProcessing around one sequence (add_special_tokens)
  bool byte_level() const {
    return !pre_tokenizer.empty() && std::holds_alternative<ByteLevelStep>(pre_tokenizer.back());
  }
};

// HF tokenizers serialisation (tokenizer.json). Throws InputError naming the file, the JSON path of the field
// and what was expected, for malformed files and for components outside the set above.
TokenizerSpec load_tokenizer_spec(const std::filesystem::path& path);
// GPT-2's vocab.json + merges.txt (or encoder.json + vocab.bpe) as the same pipeline.
TokenizerSpec gpt2_spec(BpeVocab vocab);

}  // namespace lethe::text
