// The string rules of ICU's downstream validation (valid.py, KU utils.py), transcribed so that lethe's
// LAMBADA and dialogue numbers are the reference's: ParlAI's normalize_reply for dialogue turns, SQuAD's
// answer normalisation and unigram F1 (HF's clean_up_tokenization after decoding is text/cleanup.h).
//
// Case mapping covers ASCII and the Latin-1 / Latin Extended-A / Greek / Cyrillic letters (text::lower);
// Python's full Unicode tables map a few more scripts. Whitespace splitting knows ASCII and the Unicode space
// characters Python's str.split() splits on.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/cleanup.h"

namespace lethe::utility {

using text::clean_up_tokenization;

// ParlAI normalize_reply (version 2): lower-case, space out . , ? !, capitalise sentence starts and "i",
// re-attach punctuation, add a final period.
std::string normalize_reply(std::string_view text);

// SQuAD normalize_answer: lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse spaces.
std::string normalize_answer(std::string_view text);

// SQuAD unigram F1 of the normalised token bags (0 when nothing is shared).
double squad_f1(std::string_view prediction, std::string_view truth);

// Python's str.split() (any run of whitespace) and str.strip().
std::vector<std::string> split_whitespace(std::string_view text);
std::string strip_whitespace(std::string_view text);
std::string rstrip_whitespace(std::string_view text);

// ICU's dialogue prompt from all turns but the last: "User 1: t1\nUser 2: t2\n...User k:" (the next
// speaker's tag), each turn normalised; and the normalised last turn as the target.
std::pair<std::string, std::string> dialogue_prompt(const std::vector<std::string>& turns);

// LAMBADA: context = the text up to its last ' ', target = " " + the last word (text.split(" ")).
std::pair<std::string, std::string> lambada_split(std::string_view text);

}  // namespace lethe::utility
