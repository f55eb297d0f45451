// Unit tests of the utility suite's pieces: the string rules against the Python transcription of ICU/KU
// (fixtures from tests/reference/make_utility_fixtures.py), the task readers' ICU rules and errors, the suite
// parser, and the prefix-sharing scorer against one plain forward per request.
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "utility/loglik.h"
#include "utility/normalize.h"
#include "utility/readers.h"
#include "utility/suite.h"

namespace lethe::utility {
namespace {

namespace fs = std::filesystem;

nlohmann::json icu_fixture() {
  const auto dir = test::fixtures_dir();
  if (!dir || !fs::exists(*dir / "utility" / "icu.json")) return nullptr;
  std::ifstream in(*dir / "utility" / "icu.json");
  return nlohmann::json::parse(in);
}

TEST(UtilityNormalize, MatchesTheReferenceOnRealTurns) {
  const nlohmann::json f = icu_fixture();
  if (f.is_null()) GTEST_SKIP() << "no utility fixtures (needs ../shared/data and make_utility_fixtures.py)";
  int checked = 0;
  for (const auto& c : f["normalize"]) {
    const std::string text = c["text"];
    EXPECT_EQ(normalize_reply(text), c["reply"].get<std::string>()) << text;
    EXPECT_EQ(normalize_answer(text), c["answer"].get<std::string>()) << text;
    ++checked;
  }
  for (const auto& c : f["f1"]) {
    EXPECT_NEAR(squad_f1(c["a"].get<std::string>(), c["b"].get<std::string>()), c["f1"].get<double>(), 1e-12)
        << c["a"] << " | " << c["b"];
    ++checked;
  }
  EXPECT_GT(checked, 300);
}

TEST(UtilityNormalize, HandWrittenCases) {
  EXPECT_EQ(normalize_reply("what ? yes . ok !"), "What? Yes. Ok!");
  EXPECT_EQ(normalize_reply("i'm here"), "I'm here.");
  EXPECT_EQ(normalize_answer("The cat, an apple."), "cat apple");
  EXPECT_DOUBLE_EQ(squad_f1("the red cat", "a red dog"), 0.5);
  EXPECT_EQ(clean_up_tokenization("do n't , ok . it 's"), "don't, ok. it's");
  EXPECT_EQ(split_whitespace(" a\u00a0b\tc  ").size(), 3u);
  EXPECT_EQ(lambada_split("one two three"), std::make_pair(std::string("one two"), std::string(" three")));
  const auto [prompt, target] = dialogue_prompt({"hi there", "hello", "bye"});
  EXPECT_EQ(prompt, "User 1: Hi there.\nUser 2: Hello.\nUser 1:");
  EXPECT_EQ(target, "Bye.");
}

// Writes `text` to dir/name and returns a spec of `format` reading it.
TaskSpec spec_for(const test::TempDir& dir, const std::string& name, TaskFormat format,
                  const std::string& text, int64_t choices = 0) {
  std::ofstream(dir.path() / name) << text;
  TaskSpec s;
  s.name = "t";
  s.format = format;
  s.file = dir.path() / name;
  s.choices = choices;
  return s;
}

TEST(UtilityReaders, IcuRules) {
  test::TempDir dir;
  // MathQA: options parsed with ICU's regex, "a ) " dropped, trailing " ," stripped.
  auto m = read_task(spec_for(
      dir, "m.jsonl", TaskFormat::kMathqa,
      R"({"Problem": "p", "options": "a ) 24 , b ) 1 , 2 , c ) x , d ) 7 , e ) 1024", "correct": "e"})"
      "\n"));
  ASSERT_EQ(m.items.size(), 1u);
  EXPECT_EQ(m.items[0].options, (std::vector<std::string>{"24", "1", "x", "7", "1024"}));
  EXPECT_EQ(m.items[0].gold, 4);
  // ARC with 3 options gets the literal filler; with 5 and the answer last, the last 4 are kept.
  auto a = read_task(spec_for(dir, "a.jsonl", TaskFormat::kArcMosaic,
                              R"({"query": "Question: q", "choices": ["x", "y", "z"], "gold": 1})"
                              "\n"
                              R"({"query": "q2", "choices": ["a", "b", "c", "d", "e"], "gold": 4})"
                              "\n",
                              4));
  EXPECT_EQ(a.items[0].contexts[0], "q");
  EXPECT_EQ(a.items[0].options.back(), "just for work");
  EXPECT_EQ(a.items[0].literal, (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(a.items[1].options, (std::vector<std::string>{"b", "c", "d", "e"}));
  EXPECT_EQ(a.items[1].gold, 3);
  // COPA (MosaicML): premise and capitalised options restored.
  auto c = read_task(spec_for(
      dir, "c.jsonl", TaskFormat::kCopaMosaic,
      R"({"query": "The man turned on the faucet, therefore", "choices": ["the toilet filled.", "water flowed."], "gold": 1})"
      "\n"));
  EXPECT_EQ(c.items[0].contexts[0], "The man turned on the faucet.");
  EXPECT_EQ(c.items[0].options[0], "The toilet filled.");
  // WinoGrande: ICU split and lm-eval's partial form.
  const std::string wg =
      R"({"sentence": "Sarah beat Maria so _ got the prize.", "option1": "Sarah", "option2": "Maria", "answer": "1"})"
      "\n";
  auto w = read_task(spec_for(dir, "w.jsonl", TaskFormat::kWinogrande, wg));
  EXPECT_EQ(w.items[0].contexts[0], "Sarah beat Maria so");
  EXPECT_EQ(w.items[0].options[1], "Maria got the prize.");
  auto wp = read_task(spec_for(dir, "wp.jsonl", TaskFormat::kWinograndePartial, wg));
  EXPECT_EQ(wp.items[0].contexts,
            (std::vector<std::string>{"Sarah beat Maria so Sarah", "Sarah beat Maria so Maria"}));
  EXPECT_EQ(wp.items[0].options[0], "got the prize.");
}

TEST(UtilityReaders, RawUpstreamFormats) {
  test::TempDir dir;
  auto arc = read_task(spec_for(
      dir, "arc.jsonl", TaskFormat::kArc,
      R"({"question": "Which?", "choices": {"text": ["x", "y", "z", "w", "v"], "label": ["A", "B", "C", "D", "E"]}, "answerKey": "E"})"
      "\n",
      4));
  EXPECT_EQ(arc.items[0].contexts[0], "Which?");
  EXPECT_EQ(arc.items[0].options, (std::vector<std::string>{"y", "z", "w", "v"}));
  EXPECT_EQ(arc.items[0].gold, 3);
  auto copa = read_task(spec_for(
      dir, "copa.jsonl", TaskFormat::kCopa,
      R"({"premise": "It rained.", "choice1": "A", "choice2": "B", "question": "effect", "label": 1})"
      "\n"));
  EXPECT_EQ(copa.items[0].contexts[0], "It rained.");
  EXPECT_EQ(copa.items[0].gold, 1);
  auto hs = read_task(spec_for(dir, "hs.jsonl", TaskFormat::kHellaswag,
                               R"({"ctx": "A man", "endings": ["a", "b", "c", "d"], "label": "2"})"
                               "\n"));
  EXPECT_EQ(hs.items[0].options.size(), 4u);
  EXPECT_EQ(hs.items[0].gold, 2);
  auto pub = read_task(spec_for(dir, "p.csv", TaskFormat::kPubmedqa,
                                "question,abstract,final_decision\nQ?,Some text,maybe\n,skipped,yes\n"));
  ASSERT_EQ(pub.items.size(), 1u);  // the row with an empty field is dropped, as dropna()
  EXPECT_EQ(pub.items[0].contexts[0], "Context: Some text\nQuestion: Q?\nAnswer:");
  EXPECT_EQ(pub.items[0].gold, 1);
  auto lam = read_task(spec_for(dir, "l.csv", TaskFormat::kLambada, "id,text\n0,\"a b, c\"\n1,d e\n"));
  EXPECT_EQ(lam.texts, (std::vector<std::string>{"a b, c", "d e"}));
  EXPECT_EQ(lam.lines, (std::vector<int64_t>{1, 2}));
  TaskSpec lim = spec_for(dir, "l2.csv", TaskFormat::kText, "text\none\ntwo\nthree\n");
  lim.limit = 2;
  EXPECT_EQ(read_task(lim).texts.size(), 2u);
  test::expect_input_error(
      [&] {
        read_task(
            spec_for(dir, "arc2.jsonl", TaskFormat::kArc,
                     R"({"question": "q", "choices": {"text": ["x"], "label": ["A"]}, "answerKey": "B"})"
                     "\n"));
      },
      {"arc2.jsonl line 1", "answerKey 'B'"});
  test::expect_input_error(
      [&] {
        read_task(spec_for(dir, "p2.csv", TaskFormat::kPubmedqa,
                           "question,abstract,final_decision\nq,a,perhaps\n"));
      },
      {"p2.csv row 1", "final_decision 'perhaps'"});
}

TEST(UtilityReaders, ErrorsNameTaskFileAndLine) {
  test::TempDir dir;
  test::expect_input_error(
      [&] { read_task(spec_for(dir, "h.txt", TaskFormat::kHellaswagTxt, "ctx\n1\na\nb\nc\n")); },
      {"task 't'", "h.txt", "6 per example"});
  test::expect_input_error(
      [&] {
        read_task(spec_for(dir, "w.jsonl", TaskFormat::kWinogrande,
                           R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})"
                           "\n"));
      },
      {"w.jsonl line 1", "\" _\""});
  test::expect_input_error(
      [&] { read_task(spec_for(dir, "d.json", TaskFormat::kDialogue, R"({"text": {"0": ["only one"]}})")); },
      {"d.json row 0", "at least 2 turns"});
}

TEST(UtilitySuite, RejectsBadKeysAndUnknownTasks) {
  test::TempDir dir;
  std::ofstream(dir.path() / "s.yaml")
      << "window: 512\ntasks:\n  - {name: a, format: piqa, file: x, colour: red}\n";
  test::expect_input_error([&] { load_suite(dir.path() / "s.yaml"); },
                           {"s.yaml", "tasks[0]", "unknown key 'colour'"});
  std::ofstream(dir.path() / "t.yaml")
      << "tasks:\n  - {name: a, format: piqa, file: x}\n  - {name: b, format: text, file: y}\n";
  const Suite s = load_suite(dir.path() / "t.yaml");
  EXPECT_EQ(select_tasks(s, {"b"}, 3).at(0).limit, 3);
  test::expect_input_error([&] { select_tasks(s, {"c"}, 0); }, {"'c' is not in", "a, b"});
}

// The scorer's shared-prefix path equals one unpadded forward per request.
TEST(UtilityLoglik, PrefixSharingEqualsPlainForwards) {
  torch::manual_seed(3);
  model::CausalLm m = model::make_causal_lm(test::small_gpt_neo(40, 16, 64));
  m->reset_parameters(7);
  m->eval();
  const std::vector<std::vector<Request>> groups = {
      {make_request({1, 2, 3, 4}, {5, 6}, 64),
       make_request({1, 2, 3, 4}, {5, 7, 8}, 64)},                      // options share " 5"
      {make_request({9}, {10}, 64), make_request({11}, {12, 13}, 64)},  // nothing shared
      {make_request({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {20, 21}, 8)},     // left-truncated
      {make_request({30, 31, 32, 33, 34, 35}, {3}, 64), make_request({30, 31, 32, 33, 34, 35}, {4}, 64)},
  };
  const auto got = score(m, groups, 0);
  torch::NoGradGuard g;
  for (size_t i = 0; i < groups.size(); ++i)
    for (size_t j = 0; j < groups[i].size(); ++j) {
      const Request& r = groups[i][j];
      const torch::Tensor logits = m->forward(torch::tensor(r.input, torch::kLong).unsqueeze(0)).logits[0];
      const auto n = static_cast<int64_t>(r.target.size()), len = static_cast<int64_t>(r.input.size());
      const torch::Tensor lp = at::log_softmax(logits.narrow(0, len - n, n), -1);
      double want = 0;
      bool greedy = true;
      for (int64_t k = 0; k < n; ++k) {
        want += lp[k][r.target[k]].item<double>();
        greedy = greedy && lp[k].argmax().item<int64_t>() == r.target[k];
      }
      EXPECT_NEAR(got[i][j].logprob, want, 1e-5) << "group " << i << " request " << j;
      EXPECT_EQ(got[i][j].greedy, greedy);
    }
  EXPECT_EQ(groups[2][0].input.size(), 7u);  // window 8 keeps 8 tokens, the model reads 7
}

}  // namespace
}  // namespace lethe::utility
