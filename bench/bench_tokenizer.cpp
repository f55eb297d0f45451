// Encode throughput of lethe's tokenizer (any layout from_dir reads), single thread: every row of the "text"
// column of each CSV, and every question and answer of each TOFU .json (JSON lines), on the command line is
// encoded with one encode() call. Each pass uses a freshly loaded tokenizer, so the word
// cache starts cold as in a real run; the fastest pass is reported. bench_tokenizer_peer.py measures HF
// tokenizers the same way and prints the same JSON.
//
// usage: bench_tokenizer [--tokenizer DIR] [--passes N] FILE.csv|FILE.json...
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/csv.h"
#include "text/tokenizer.h"

int main(int argc, char** argv) {
  using lethe::text::Tokenizer;
  std::string tokenizer_dir = "../shared/data/gpt2_tokenizer";
  int passes = 3;
  std::vector<std::string> texts;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--tokenizer" && i + 1 < argc) {
        tokenizer_dir = argv[++i];
      } else if (arg == "--passes" && i + 1 < argc) {
        passes = std::max(1, std::atoi(argv[++i]));
      } else if (arg.ends_with(".json")) {
        std::ifstream in(arg);
        for (std::string line; std::getline(in, line);) {
          if (line.empty()) continue;
          const auto row = nlohmann::json::parse(line);
          texts.push_back(row.at("question").get<std::string>());
          texts.push_back(row.at("answer").get<std::string>());
        }
      } else {
        for (auto& t : lethe::text::read_csv_column(arg, "text")) texts.push_back(std::move(t));
      }
    }
    if (texts.empty()) {
      std::cerr << "usage: bench_tokenizer [--tokenizer DIR] [--passes N] FILE.csv|FILE.json...\n";
      return lethe::kExitBadInput;
    }
    std::size_t bytes = 0, tokens = 0;
    for (const auto& t : texts) bytes += t.size();
    double best = 1e300;
    for (int p = 0; p < passes; ++p) {
      const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir);
      tokens = 0;
      const auto start = std::chrono::steady_clock::now();
      for (const auto& t : texts) tokens += tok.encode(t).size();
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count());
    }
    std::cout << fmt::format(
                     R"({{"bytes": {}, "seconds": {:.6f}, "mb_per_s": {:.3f}, "rows": {}, "tokens": {}}})",
                     bytes, best, static_cast<double>(bytes) / best / 1e6, texts.size(), tokens)
              << "\n";
  } catch (const lethe::InputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return lethe::kExitBadInput;
  }
  return lethe::kExitOk;
}
