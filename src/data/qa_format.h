// Question-answer rows (TOFU and the like) as token ids and labels, in the prompt formats the unlearning
// literature trains and evaluates with (open-unlearning's preprocess_chat_instance; legacy TOFU, NPO, SimNPO
// and TPO repositories for Llama-2):
//
//   kLlama3Chat      the Llama-3.x Instruct chat template: system block with "Cutting Knowledge Date:
//                    December 2023" and "Today Date: <date>", the user turn, the assistant header, the answer
//                    and <|eot_id|>. Messages are stripped of surrounding whitespace, as the template's trim.
//   kInst            "[INST] " + q + " [/INST]" + a, BOS from the tokenizer's post-processor (Llama-2 chat).
//   kQuestionAnswer  "Question: " + q + "\nAnswer: " + a, BOS as above (base models).
//
//   ids     [ BOS  prompt ...  answer ... EOS ]      EOS appended when the last id is not already EOS
//   labels  [ -100 -100   ...  answer ... EOS ]      -100 over the prompt's tokens: prompt_length of them
//
// The prompt's length is that of the prompt tokenized on its own (with the generation header for the chat
// template), so a merge across the prompt/answer border shifts the boundary exactly as in open-unlearning;
// if it swallows the whole answer, every label is -100 (open-unlearning warns and keeps the row).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace lethe::data {

inline constexpr int32_t kIgnoreLabel = -100;  // label of a token that is not trained on (HF's ignore_index)

enum class PromptFormat { kLlama3Chat, kInst, kQuestionAnswer };

// "llama3-chat", "inst", "question-answer"; InputError naming `field` for anything else.
PromptFormat parse_prompt_format(std::string_view name, std::string_view field);
std::string_view prompt_format_name(PromptFormat f);

struct QaFormatOptions {
  PromptFormat format = PromptFormat::kQuestionAnswer;
  std::string system_prompt =
      "You are a helpful assistant.";       // kLlama3Chat; empty: the template's empty block
  std::string date_string = "10 Apr 2025";  // kLlama3Chat, as open-unlearning's configs
  int64_t max_length = 512;  // kInst / kQuestionAnswer truncate to it before EOS is appended (0 = no limit)
  // open-unlearning's collator builds attention_mask = (ids != pad) with pad = EOS when the tokenizer has no
  // pad token; for Llama-3 Instruct (EOS <|eot_id|>) that masks every <|eot_id|> in the row. Set to match
  // their numbers exactly; off, the mask is 1 on every token.
  bool pad_is_eos_quirk = false;
};

struct QaExample {
  std::vector<int32_t> ids;             // prompt + answer (+ EOS)
  std::vector<int32_t> labels;          // ids with the prompt's positions set to kIgnoreLabel
  std::vector<int32_t> attention_mask;  // 1, or 0 at EOS ids under pad_is_eos_quirk
  std::vector<int32_t> prompt_ids;      // the prompt alone, for generation
};

// The prompt text (up to where the answer begins) and the full text of one row.
std::string render_prompt(std::string_view question, const QaFormatOptions& o);
std::string render_full(std::string_view question, std::string_view answer, const QaFormatOptions& o);

QaExample format_qa(const text::Tokenizer& tok, std::string_view question, std::string_view answer,
                    const QaFormatOptions& o);

}  // namespace lethe::data
