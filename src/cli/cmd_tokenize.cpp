// `lethe tokenize --tokenizer DIR (--text S | --file F | --decode IDS) [--add-special-tokens] [--json]`
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/common.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace lethe::cli {

int run_tokenize(int argc, char** argv) {
  std::string dir, text, file, decode;
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
      "add_special_tokens=True")("json", po::bool_switch(&json), "machine-readable output");
  const char* usage = "lethe tokenize --tokenizer DIR (--text S | --file F | --decode IDS) [--json]";
  if (!parse(argc, argv, desc, usage,
             "BPE tokenizers as HF tokenizers runs them: text → ids, or ids → text with --decode."))
    return 0;
  const int given = !text.empty() + !file.empty() + !decode.empty();
  LETHE_CHECK_INPUT(given == 1, "give exactly one of --text, --file, --decode\nusage: {}", usage);

  text::Tokenizer tok = text::Tokenizer::from_dir(dir);
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
