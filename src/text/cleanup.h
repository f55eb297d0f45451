// What transformers 4.x's GPT-2 `decode` did after joining the tokens: `clean_up_tokenization`, on by default
// (clean_up_tokenization_spaces=True), so every text ICU compared or embedded went through it. transformers 5
// no longer applies it for BPE tokenizers, hence this transcription (tokenization_utils_base.py, 4.37):
//   " ." → "."  " ?" → "?"  " !" → "!"  " ," → ","  " ' " → "'"
//   " n't" → "n't"  " 'm" → "'m"  " 's" → "'s"  " 've" → "'ve"  " 're" → "'re"
// each a Python str.replace over the whole text, in that order.
#pragma once

#include <string>
#include <string_view>

namespace lethe::text {

std::string clean_up_tokenization(std::string_view text);

}  // namespace lethe::text
