// Running the text stages of a TokenizerSpec (internal to the tokenizer): normalizer, pre-tokenizer and
// decoder. The BPE model and the added-token split live in tokenizer.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/tokenizer_spec.h"

struct pcre2_real_match_data_8;

namespace lethe::text {

// Pieces of text back to back in one buffer, so that splitting allocates nothing per piece.
struct Pieces {
  std::string buf;
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // [begin, end) into buf, in text order
  std::string_view operator[](std::size_t i) const {
    return std::string_view(buf).substr(spans[i].first, spans[i].second - spans[i].first);
  }
  std::size_t size() const { return spans.size(); }
  void clear() { buf.clear(), spans.clear(); }
};

// The normalizer steps applied to one stretch of text (HF applies them between added tokens).
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text);

class PreTokenizer {
 public:
  // Compiles the regexes of Split and ByteLevel steps; InputError naming `where` if one does not compile.
  PreTokenizer(const std::vector<PreTokenizerStep>& steps, const std::string& where);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Per-call scratch: PCRE2 match data must not be shared between threads.
  struct Span {
    uint32_t begin, end;
    bool match;
  };
  class Scratch {
   public:
    Scratch() = default;
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    std::vector<pcre2_real_match_data_8*> md;  // one per step, null where the step has no regex
    std::vector<Span> spans;
    Pieces tmp;
  };
  std::unique_ptr<Scratch> scratch() const;

  // Splits text (valid UTF-8) into out; at_origin: text begins at offset 0 of the input, which Metaspace's
  // "first" prepend scheme asks. With a trailing ByteLevel step, pieces stay raw bytes: the BPE model reads
  // each byte as its alphabet symbol.
  void split(std::string_view text, bool at_origin, Scratch& scratch, Pieces& out) const;

 private:
  struct Step;
  std::vector<Step> steps_;
};

// Token strings -> text through the decoder steps; without a decoder HF joins tokens with spaces.
std::string decode_tokens(const std::optional<std::vector<DecoderStep>>& steps,
                          std::vector<std::string> tokens);

}  // namespace lethe::text
