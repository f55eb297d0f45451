// `lethe tokenize --tokenizer DIR (--text S | --file F | --decode IDS | --question Q --answer A) [--json]`
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/common.h"
#include "core/error.h"
#include "data/qa_format.h"
#include "text/tokenizer.h"

namespace lethe::cli {

int run_tokenize(int argc, char** argv) {
  std::string dir, text, file, decode, question, answer, format = "question-answer";
  data::QaFormatOptions qa;
  bool json = false, no_special = false, add_specials = false;
  po::options_description desc;
  desc.add_options()(
      "tokenizer,t", po::value(&dir)->required(),
      "folder with tokenizer.json (GPT-2, Llama-2 or Llama-3 layout), vocab.json + merges.txt, or "
      "encoder.json + vocab.bpe")("text", po::value(&text), "text to encode")(
      "file", po::value(&file), "encode the whole content of this file")(
      "decode", po::value(&decode), "decode comma-separated ids instead")(
      "no-special", po::bool_switch(&no_special),
      "treat special tokens such as <|endoftext|> in the text as plain text")(
      "add-special-tokens", po::bool_switch(&add_specials),
      "add the tokenizer.json post-processor's tokens (Llama's <s> or <|begin_of_text|>), as HF's "
      "add_special_tokens=True")("json", po::bool_switch(&json), "machine-readable output")(
      "question", po::value(&question),
      "format one question-answer row instead (with --answer): ids and labels")("answer", po::value(&answer),
                                                                                "the row's answer")(
      "format", po::value(&format)->default_value(format),
      "llama3-chat, inst ([INST] q [/INST]) or question-answer")(
      "system-prompt", po::value(&qa.system_prompt)->default_value(qa.system_prompt),
      "llama3-chat system prompt")("date-string", po::value(&qa.date_string)->default_value(qa.date_string),
                                   "llama3-chat \"Today Date\"")(
      "pad-is-eos-quirk", po::bool_switch(&qa.pad_is_eos_quirk),
      "attention mask 0 at every EOS id, as open-unlearning's collator when pad = eos");
  const char* usage =
      "lethe tokenize --tokenizer DIR (--text S | --file F | --decode IDS | --question Q --answer A) "
      "[--json]";
  if (!parse(argc, argv, desc, usage,
             "BPE tokenizers as HF tokenizers runs them: text → ids, or ids → text with --decode."))
    return 0;
  const int given = !text.empty() + !file.empty() + !decode.empty() + !question.empty();
  LETHE_CHECK_INPUT(given == 1, "give exactly one of --text, --file, --decode, --question\nusage: {}", usage);

  text::Tokenizer tok = text::Tokenizer::from_dir(dir);
  if (!question.empty()) {
    qa.format = data::parse_prompt_format(format, "--format");
    const data::QaExample ex = data::format_qa(tok, question, answer, qa);
    if (json) {
      print_json({{"ids", ex.ids},
                  {"labels", ex.labels},
                  {"attention_mask", ex.attention_mask},
                  {"prompt_ids", ex.prompt_ids},
                  {"text", data::render_full(question, answer, qa)}});
    } else {
      std::cout << fmt::format("text:   {:?}\nids:    {}\nlabels: {}\n",
                               data::render_full(question, answer, qa), fmt::join(ex.ids, " "),
                               fmt::join(ex.labels, " "));
    }
    return 0;
  }
  if (!decode.empty()) {
    std::vector<int32_t> ids;
    for (int64_t id : parse_ids(decode, "--decode")) {
      LETHE_CHECK_INPUT(id < tok.vocab_size(),
                        "--decode: token id {} is out of range; the vocabulary has {} ids", id,
                        tok.vocab_size());
      ids.push_back(static_cast<int32_t>(id));
    }
    const std::string out = tok.decode(ids);
    if (json)
      print_json({{"ids", ids}, {"text", out}});
    else
      std::cout << out << "\n";
    return 0;
  }
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    LETHE_CHECK_INPUT(in.good(), "--file {}: cannot open it", file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  LETHE_CHECK_INPUT(!(add_specials && no_special),
                    "give at most one of --add-special-tokens and --no-special");
  const std::vector<int32_t> ids =
      add_specials ? tok.encode_with_specials(text) : tok.encode(text, !no_special);
  if (json)
    print_json({{"ids", ids}, {"count", ids.size()}});
  else
    std::cout << fmt::format("{}\n", fmt::join(ids, " "));
  return 0;
}

}  // namespace lethe::cli
