// Word tokens for BLEU, as ICU gets them: nltk's NLTKWordTokenizer (the improved Treebank tokenizer that
// nltk.word_tokenize runs on each sentence), ported rule for rule from nltk 3.10 onto PCRE2 (Unicode \w \s
// \d \b, as Python's regex module). Known deviation: nltk.word_tokenize first splits sentences with the
// Punkt model (downloaded data); lethe tokenizes the whole text at once, which differs only in how a period
// that ends an inner sentence is split off (nltk: "end." → "end" "."; here, inside a text, "end." stays
// one token unless it is the text's final period).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

std::vector<std::string> word_tokenize(std::string_view text);

// Lower-cases ASCII letters and the common Latin-1 / Latin Extended-A / Greek / Cyrillic capitals of UTF-8
// text (what Python's str.lower() changes in practice for these corpora); other characters are kept as they
// are.
std::string lower(std::string_view text);

}  // namespace lethe::text
