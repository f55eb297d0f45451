// Question-answer formatting against open-unlearning's preprocess_chat_instance run through `transformers`
// (tests/reference/make_tokenizer_json_fixtures.py, chat.json): ids, labels, the prompt and the pad = eos
// attention quirk, for the Llama-3.x chat template, "[INST] q [/INST]" and "Question: q\nAnswer: ".
#include "data/qa_format.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace lethe::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

std::optional<fs::path> fixture_dir() {
  return test::fixture_subdir("tokenizer_json", "chat.json");
}

#define REQUIRE_FIXTURE()                                                 \
  if (!fixture_dir())                                                     \
  GTEST_SKIP() << "tokenizer_json/chat.json not in $LETHE_FIXTURES; run " \
                  "tests/reference/make_tokenizer_json_fixtures.py"

void expect_rows_match(const json& rows, const text::Tokenizer& tok, QaFormatOptions o) {
  ASSERT_FALSE(rows.empty());
  for (size_t i = 0; i < rows.size(); ++i) {
    const json& r = rows[i];
    SCOPED_TRACE(testing::Message() << prompt_format_name(o.format) << " row " << i << ": " << r["question"]);
    o.pad_is_eos_quirk = false;
    const QaExample ex = format_qa(tok, r["question"].get<std::string>(), r["answer"].get<std::string>(), o);
    EXPECT_EQ(ex.ids, r["ids"].get<Ids>());
    EXPECT_EQ(ex.labels, r["labels"].get<Ids>());
    EXPECT_EQ(ex.prompt_ids, r["prompt_ids"].get<Ids>());
    EXPECT_EQ(ex.attention_mask, Ids(ex.ids.size(), 1));
    o.pad_is_eos_quirk = true;
    EXPECT_EQ(
        format_qa(tok, r["question"].get<std::string>(), r["answer"].get<std::string>(), o).attention_mask,
        r["quirk_mask"].get<Ids>());
  }
}

TEST(QaFormat, MatchesOpenUnlearningThroughTransformers) {
  REQUIRE_FIXTURE();
  std::ifstream in(*fixture_dir() / "chat.json");
  const json cases = json::parse(in);
  const auto llama3 = text::Tokenizer::from_dir(*fixture_dir() / "llama3");
  const auto llama2 = text::Tokenizer::from_dir(*fixture_dir() / "llama2_legacy");
  QaFormatOptions o;
  o.system_prompt = cases["system_prompt"];
  o.date_string = cases["date_string"];
  o.format = PromptFormat::kLlama3Chat;
  expect_rows_match(cases["llama3-chat"], llama3, o);
  o.format = PromptFormat::kInst;
  expect_rows_match(cases["inst"], llama2, o);
  o.format = PromptFormat::kQuestionAnswer;
  expect_rows_match(cases["question-answer"], llama2, o);
  o.format = PromptFormat::kInst;
  o.max_length = 24;
  expect_rows_match(cases["inst-truncated"], llama2, o);
}

TEST(QaFormat, RendersTheTemplates) {
  QaFormatOptions o;
  o.format = PromptFormat::kLlama3Chat;
  o.date_string = "1 Jan 2026";
  EXPECT_EQ(
      render_full(" q ", "a\n", o),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December "
      "2023\nToday Date: 1 Jan 2026\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_"
      "header_id|>\n\nq<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\na<|eot_id|>");
  o.format = PromptFormat::kInst;
  EXPECT_EQ(render_full("q", "a", o), "[INST] q [/INST]a");
  o.format = PromptFormat::kQuestionAnswer;
  EXPECT_EQ(render_prompt("q", o), "Question: q\nAnswer: ");
  EXPECT_EQ(parse_prompt_format("inst", "x"), PromptFormat::kInst);
  test::expect_input_error([] { parse_prompt_format("chatml", "tofu.format"); },
                           {"tofu.format", "chatml", "llama3-chat"});
}

}  // namespace
}  // namespace lethe::data
