#include "data/qa_format.h"

#include <algorithm>
#include <array>

#include "core/error.h"

namespace lethe::data {
namespace {

// Python's str.strip() (Jinja's trim): the code points str.isspace() accepts, as UTF-8.
bool space_at(std::string_view s, std::size_t i, std::size_t& len) {
  static constexpr std::array<std::string_view, 19> kWide = {
      "\xC2\x85",     "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x81",
      "\xE2\x80\x82", "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86",
      "\xE2\x80\x87", "\xE2\x80\x88", "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\xA8",
      "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80"};
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return len = 1, true;
  for (const std::string_view w : kWide)
    if (s.substr(i, w.size()) == w) return len = w.size(), true;
  return false;
}

std::string_view trim(std::string_view s) {
  std::size_t len = 0;
  while (!s.empty() && space_at(s, 0, len)) s.remove_prefix(len);
  // From the right: find the last position that starts a non-space character.
  for (bool changed = true; changed && !s.empty();) {
    changed = false;
    for (std::size_t back = 1; back <= std::min<std::size_t>(3, s.size()); ++back)
      if (space_at(s, s.size() - back, len) && len == back) {
        s.remove_suffix(back);
        changed = true;
        break;
      }
  }
  return s;
}

constexpr std::string_view kHeaderEnd = "<|end_header_id|>\n\n";

std::string llama3_system(const QaFormatOptions& o) {
  return "<|begin_of_text|><|start_header_id|>system" + std::string(kHeaderEnd) +
         "Cutting Knowledge Date: December 2023\nToday Date: " + o.date_string + "\n\n" +
         std::string(trim(o.system_prompt)) + "<|eot_id|>";
}

std::string turn(std::string_view role, std::string_view content) {
  return "<|start_header_id|>" + std::string(role) + std::string(kHeaderEnd) + std::string(trim(content)) +
         "<|eot_id|>";
}

}  // namespace

PromptFormat parse_prompt_format(std::string_view name, std::string_view field) {
  if (name == "llama3-chat") return PromptFormat::kLlama3Chat;
  if (name == "inst") return PromptFormat::kInst;
  if (name == "question-answer") return PromptFormat::kQuestionAnswer;
  throw_input("{} is {:?}, expected llama3-chat, inst or question-answer", field, name);
}

std::string_view prompt_format_name(PromptFormat f) {
  switch (f) {
    case PromptFormat::kLlama3Chat:
      return "llama3-chat";
    case PromptFormat::kInst:
      return "inst";
    case PromptFormat::kQuestionAnswer:
      return "question-answer";
  }
  return "?";
}

std::string render_prompt(std::string_view question, const QaFormatOptions& o) {
  switch (o.format) {
    case PromptFormat::kLlama3Chat:
      return llama3_system(o) + turn("user", question) + "<|start_header_id|>assistant" +
             std::string(kHeaderEnd);
    case PromptFormat::kInst:
      return "[INST] " + std::string(question) + " [/INST]";
    case PromptFormat::kQuestionAnswer:
      return "Question: " + std::string(question) + "\nAnswer: ";
  }
  return {};
}

std::string render_full(std::string_view question, std::string_view answer, const QaFormatOptions& o) {
  if (o.format == PromptFormat::kLlama3Chat)
    return llama3_system(o) + turn("user", question) + turn("assistant", answer);
  return render_prompt(question, o) + std::string(answer);
}

QaExample format_qa(const text::Tokenizer& tok, std::string_view question, std::string_view answer,
                    const QaFormatOptions& o) {
  if (o.max_length < 0) throw_input("max_length is {}, expected >= 0 (0 = no limit)", o.max_length);
  QaExample ex;
  const std::string prompt = render_prompt(question, o), full = render_full(question, answer, o);
  if (o.format == PromptFormat::kLlama3Chat) {
    // apply_chat_template tokenizes the rendered text as is: its special tokens are in the text.
    ex.ids = tok.encode(full);
    ex.prompt_ids = tok.encode(prompt);
  } else {
    ex.ids = tok.encode_with_specials(full, o.max_length);
    ex.prompt_ids = tok.encode_with_specials(prompt, o.max_length);
  }
  if (ex.ids.empty() || ex.ids.back() != tok.eos_id()) ex.ids.push_back(tok.eos_id());
  ex.labels = ex.ids;
  std::fill_n(ex.labels.begin(), std::min(ex.prompt_ids.size(), ex.labels.size()), kIgnoreLabel);
  ex.attention_mask.assign(ex.ids.size(), 1);
  if (o.pad_is_eos_quirk)
    for (std::size_t i = 0; i < ex.ids.size(); ++i) ex.attention_mask[i] = ex.ids[i] != tok.eos_id();
  return ex;
}

}  // namespace lethe::data
