// lethe status / lethe report on run folders written here with the same writers the training loops use
// (MetricsWriter, record_launch / record_stop, dump_config), and the mean ± std rule against hand values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "config/config.h"
#include "io/hdf5.h"
#include "io/metrics.h"
#include "io/run_log.h"
#include "report/aggregate.h"
#include "report/paper.h"
#include "report/status.h"
#include "report/svg.h"
#include "test_util.h"

namespace lethe {
namespace fs = std::filesystem;
namespace {

// An unlearn run folder: config, /train (4 steps per epoch, 0.5 s each), /epoch rows 0..epochs.
void make_run(const fs::path& dir, int epochs, double el0, bool finished) {
  fs::create_directories(dir);
  Config cfg;
  cfg.unlearn.max_epochs = 5;
  std::ofstream(dir / "config.resolved.yaml") << dump_config(cfg);
  const fs::path m = dir / "metrics.h5";
  io::record_launch(m, std::nullopt, 2);
  io::MetricsWriter train(m, "train", {"active_pairs", "step_seconds"}, std::nullopt, 0.0);
  io::MetricsWriter epoch(m, "epoch",
                          {"el", "ma", "bleu", "bert_f1", "entropy", "active", "seconds", "steps", "stop"},
                          std::nullopt, 0.0);
  for (int e = 0; e <= epochs; ++e) {
    if (e > 0)
      for (int s = 1; s <= 4; ++s) train.append((e - 1) * 4 + s, {4, 0.5});
    const bool last = finished && e == epochs;
    epoch.append(
        e, {el0 / (e + 1), 0.9 - 0.1 * e, 0.5, std::nan(""), 2.0, 8.0 - e, 2.0, 4.0 * e, last ? 1.0 : 0.0});
  }
  if (finished)
    std::ofstream(dir / "unlearn.json")
        << R"({"epochs": )" << epochs
        << R"(, "stop_reason": "thresholds", "utility": {"0": {"Cls Avg": 0.5}, ")" << epochs
        << R"(": {"Cls Avg": 0.4, "Wikitext": 30.0}}})";
}

TEST(Report, StatIsTheSampleMeanAndStdOfTheFiniteValues) {
  const report::Stat s = report::stat({1.0, 2.0, std::nan(""), 4.0});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(s.mean, 7.0 / 3);
  EXPECT_NEAR(s.std,
              std::sqrt(((1 - 7.0 / 3) * (1 - 7.0 / 3) + (2 - 7.0 / 3) * (2 - 7.0 / 3) +
                         (4 - 7.0 / 3) * (4 - 7.0 / 3)) /
                        2),
              1e-12);
  EXPECT_TRUE(std::isnan(report::stat({3.0}).std));
  EXPECT_EQ(report::stat({std::nan("")}).n, 0);
}

TEST(Report, LaunchesSurviveResumesAndAFreshStartEmptiesThem) {
  test::TempDir tmp;
  const fs::path m = tmp.path() / "metrics.h5";
  io::record_launch(m, std::nullopt, 2);
  io::record_stop(m, 7, 10);
  setenv("SLURM_JOB_ID", "42", 1);
  setenv("SLURM_RESTART_COUNT", "1", 1);
  io::record_launch(m, 7, 3);
  unsetenv("SLURM_JOB_ID");
  unsetenv("SLURM_RESTART_COUNT");
  {
    io::H5File f = io::H5File::open(m);
    EXPECT_EQ(f.read_series("launches/step"), (std::vector<double>{0, 1}));
    EXPECT_EQ(f.read_series("launches/resumed_from_step"), (std::vector<double>{-1, 7}));
    EXPECT_EQ(f.read_series("launches/world_size"), (std::vector<double>{2, 3}));
    EXPECT_EQ(f.read_series("launches/slurm_job_id"), (std::vector<double>{-1, 42}));
    EXPECT_EQ(f.read_series("launches/slurm_restart_count"), (std::vector<double>{-1, 1}));
    EXPECT_EQ(f.read_series("stops/step"), (std::vector<double>{7}));
    EXPECT_EQ(f.read_series("stops/signal"), (std::vector<double>{10}));
  }
  io::record_launch(m, std::nullopt, 1);
  io::H5File f = io::H5File::open(m);
  EXPECT_EQ(f.read_series("launches/step"), (std::vector<double>{0}));
  EXPECT_EQ(f.series_length("stops/step"), 0u);
}

TEST(Report, StatusOfARunStoppedBySignalWithItsEta) {
  test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  make_run(run, 1, 0.2, false);
  io::MetricsWriter(run / "metrics.h5", "train", {"active_pairs", "step_seconds"}, 4, 0.0)
      .append(5, {4, 0.5});
  io::MetricsWriter(run / "metrics.h5", "train", {"active_pairs", "step_seconds"}, 5, 0.0)
      .append(6, {4, 0.5});
  io::record_stop(run / "metrics.h5", 6, 15);
  const nlohmann::json s = report::run_status(report::load_run(run));
  EXPECT_EQ(s["kind"], "unlearn");
  EXPECT_EQ(s["state"], "stopped");
  EXPECT_NE(s["detail"].get<std::string>().find("signal 15 at step 6"), std::string::npos) << s;
  EXPECT_EQ(s["step"], 6);
  EXPECT_EQ(s["epoch"], 1);
  EXPECT_EQ(s["active_pairs"], 7);
  // An epoch = 4 steps x 0.5 s + 2 s of validation; 4 epochs left, 2 steps of the current one done.
  EXPECT_DOUBLE_EQ(s["eta_seconds"].get<double>(), 4 * 4.0 - 2 * 0.5);
  EXPECT_EQ(s["launches"], 1);
  EXPECT_EQ(s["requeues"], 0);
  EXPECT_TRUE(s["last_checkpoint"].is_null());
  EXPECT_NE(report::format_status(s).find("eta"), std::string::npos);
}

TEST(Report, AggregatesFinishedRunsAndRefusesUnfinishedOnes) {
  test::TempDir tmp;
  make_run(tmp.path() / "a", 2, 0.2, true);
  make_run(tmp.path() / "b", 3, 0.4, true);
  make_run(tmp.path() / "c", 1, 0.4, false);
  const report::Report r =
      report::aggregate({report::load_run(tmp.path() / "a"), report::load_run(tmp.path() / "b")});
  ASSERT_EQ(r.runs, (std::vector<std::string>{"a", "b"}));
  auto column = [&](const std::string& label) {
    for (const auto& c : r.columns)
      if (c.label == label) return c;
    ADD_FAILURE() << "no column " << label;
    return report::Column{};
  };
  EXPECT_EQ(column("EL10").before, (std::vector<double>{0.2, 0.4}));
  EXPECT_DOUBLE_EQ(column("EL10").after[0], 0.2 / 3);
  EXPECT_DOUBLE_EQ(column("EL10").after[1], 0.4 / 4);
  EXPECT_EQ(column("Cls Avg").before, (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(column("Wikitext").after, (std::vector<double>{30.0, 30.0}));
  EXPECT_TRUE(std::isnan(column("Wikitext").before[0]));
  EXPECT_EQ(column("Epochs").after, (std::vector<double>{2, 3}));
  EXPECT_EQ(report::stat(column("BERT F1").after).n, 0);
  const auto files = report::write_report(r, tmp.path() / "report", "t");
  EXPECT_TRUE(fs::exists(tmp.path() / "report/report.md"));
  EXPECT_TRUE(fs::exists(tmp.path() / "report/curves-el10.svg"));
  EXPECT_FALSE(fs::exists(tmp.path() / "report/curves-bert-f1.svg"));  // never measured: no plot
  const nlohmann::json j = report::report_json(r);
  EXPECT_DOUBLE_EQ(j["columns"]["Epochs"]["after"]["mean"].get<double>(), 2.5);
  test::expect_input_error([&] { report::aggregate({report::load_run(tmp.path() / "c")}); },
                           {"has not finished", "unlearn.json"});
  test::expect_input_error([&] { report::load_run(tmp.path() / "report"); }, {"not a lethe run folder"});
  // "results/run-a/" (a shell glob with a slash) names the folder run-a.
  EXPECT_EQ(report::aggregate({report::load_run(tmp.path().string() + "/a/")}).runs,
            (std::vector<std::string>{"a"}));
}

TEST(Report, NullUtilityValuesAreNotMeasuredAndBadSummariesAreInputErrors) {
  test::TempDir tmp;
  make_run(tmp.path() / "a", 1, 0.2, true);
  std::ofstream(tmp.path() / "a/unlearn.json")
      << R"({"epochs": 1, "stop_reason": "thresholds", "utility": {"0": {"Wikitext": null}, "1": {"Wikitext": 5}}})";
  const report::Report r = report::aggregate({report::load_run(tmp.path() / "a")});
  const auto& w = r.columns[r.columns.size() - 2];
  ASSERT_EQ(w.label, "Wikitext");
  EXPECT_TRUE(std::isnan(w.before[0]));
  EXPECT_EQ(w.after[0], 5.0);
  std::ofstream(tmp.path() / "a/unlearn.json")
      << R"({"epochs": 1, "stop_reason": "x", "utility": {"one": {}}})";
  test::expect_input_error([&] { report::aggregate({report::load_run(tmp.path() / "a")}); },
                           {"utility entry 'one'"});
  std::ofstream(tmp.path() / "a/unlearn.json") << R"({"epochs": "1", "stop_reason": "x"})";
  test::expect_input_error([&] { report::load_run(tmp.path() / "a"); },
                           {"not a lethe unlearn.json", "epochs"});
}

TEST(Report, PaperRowsStandBesideTheMeasuredOnesInThePapersUnits) {
  const fs::path file = fs::path(LETHE_SOURCE_DIR) / "configs" / "paper" / "icu.json";
  const report::PaperTable p = report::read_paper_table(file, "icu-125m");
  EXPECT_EQ(p.title, "GPT-Neo 125M");
  ASSERT_GE(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[1].method, "ICU");
  EXPECT_DOUBLE_EQ(p.rows[1].values.at("EL10"), 4.4);
  for (const char* key : {"icu-1.3b", "icu-2.7b"}) EXPECT_NO_THROW(report::read_paper_table(file, key));
  test::expect_input_error([&] { report::read_paper_table(file, "icu-6b"); },
                           {"icu-6b", "icu.json", "icu-1.3b, icu-125m, icu-2.7b"});

  report::Report r;
  r.runs = {"exp0", "exp1"};
  r.columns.push_back({"EL10", {0.50, 0.54}, {0.04, 0.05}});  // fractions, as lethe measures them
  r.columns.push_back({"Pile", {20.0, 22.0}, {21.0, 23.0}});
  const std::string md = report::paper_markdown(p, r);
  EXPECT_NE(md.find("| paper: ICU | 4.4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| this report, after (2 run(s)) | 4.5 ± 0.71 | — | — | — | 22 ± 1.4 | — |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| this report, before (2 run(s)) | 52 ± 2.8 |"), std::string::npos) << md;
  EXPECT_NE(md.find("openreview.net"), std::string::npos) << md;  // the source is printed with the numbers
}

TEST(Report, SvgChartHasBandLineAndEscapedText) {
  const std::string svg = report::render_svg({"EL <10>",
                                              "epoch",
                                              "EL",
                                              {{"runs",
                                                {0, 1, 2, 3},
                                                {0.3, 0.2, 0.1, std::nan("")},
                                                {0.2, 0.1, 0.05, 0.0},
                                                {0.4, 0.3, 0.15, 0.0}}}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("<polygon"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("EL &lt;10&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

}  // namespace
}  // namespace lethe
