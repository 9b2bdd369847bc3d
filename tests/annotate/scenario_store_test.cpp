#include "defuse/annotate/scenario_store.h"

#include <gtest/gtest.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "support/scenario_support.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

TEST(ScenarioStore, RoundTripsEveryFieldOfTheLatestDistillRun) {
  test::TempDir tmp;
  ScenarioSet written = test::make_scenario_workspace(tmp.path(), {3, 5, 2, 4});
  Workspace ws(tmp.path());
  ScenarioSet loaded = load_scenarios(ws);
  EXPECT_EQ(loaded.run_id, written.run_id);
  EXPECT_EQ(loaded.class_names, test::fashion_mnist_classes());
  ASSERT_EQ(loaded.scenarios.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const Scenario &a = written.scenarios[i], &b = loaded.scenarios[i];
    EXPECT_EQ(b.id, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(b.component, a.component);
    EXPECT_DOUBLE_EQ(b.weight, a.weight);
    EXPECT_DOUBLE_EQ(b.failure_rate, a.failure_rate);
    EXPECT_EQ(b.seed_label, a.seed_label);
    EXPECT_DOUBLE_EQ(b.seed_label_share, a.seed_label_share);
    EXPECT_EQ(b.predicted_label, a.predicted_label);
    EXPECT_DOUBLE_EQ(b.predicted_share, a.predicted_share);
    EXPECT_EQ(b.members, a.members);
    EXPECT_DOUBLE_EQ(b.neighbour_accuracy, a.neighbour_accuracy);
    EXPECT_DOUBLE_EQ(b.score, a.score);
    EXPECT_EQ(b.mean, a.mean);
    EXPECT_EQ(b.covariance, a.covariance);
    ASSERT_EQ(b.samples.size(), 5u);
    ASSERT_EQ(b.neighbours.size(), 2u);
    for (size_t k = 0; k < 5; ++k) {
      EXPECT_EQ(b.samples[k].path, a.samples[k].path);
      EXPECT_EQ(b.samples[k].predicted, a.samples[k].predicted);
      EXPECT_EQ(b.samples[k].label, -1);
      EXPECT_TRUE(std::filesystem::exists(ws.path(b.samples[k].path)));
    }
    EXPECT_EQ(b.neighbours[1].label, a.neighbours[1].label);
  }
  EXPECT_EQ(loaded.find(2)->id, 2);
  EXPECT_EQ(loaded.find(4), nullptr);
  EXPECT_EQ(loaded.find(0), nullptr);
}

TEST(ScenarioStore, RoundTripsValidityMemberThumbnailsAndJudgeReadings) {
  test::TempDir tmp;
  ScenarioSet set = test::make_scenario_workspace(tmp.path(), {2, 2, 1});
  Scenario& s = set.scenarios[0];
  s.validity.verdict = "genuine";
  s.validity.judges = 2;
  s.validity.genuine_share = 0.75;
  s.validity.label_change_share = 0.25;
  s.validity.ambiguous_share = 0;
  s.validity.judge_label = s.seed_label;
  s.validity.judge_agreement = 0.75;
  s.validity.knn_label = s.seed_label;
  s.validity.knn_seed_share = 0.6;
  s.validity.knn_predicted_share = 0.3;
  s.validity.realism = 0.4;
  s.validity.draw_genuine_rate = 0.5;
  s.samples[1].judge = 3;
  s.member_images.push_back({s.samples[0].path, s.predicted_label, s.seed_label, s.seed_label});
  Workspace ws(tmp.path());
  write_scenarios(ws.db(), set.run_id, set);
  ScenarioSet loaded = load_scenarios(ws.db(), set.run_id);
  const Scenario& b = loaded.scenarios[0];
  EXPECT_EQ(b.validity.verdict, "genuine");
  EXPECT_EQ(b.validity.judges, 2);
  EXPECT_DOUBLE_EQ(b.validity.genuine_share, 0.75);
  EXPECT_EQ(b.validity.judge_label, s.seed_label);
  EXPECT_DOUBLE_EQ(b.validity.knn_seed_share, 0.6);
  EXPECT_DOUBLE_EQ(b.validity.realism, 0.4);
  EXPECT_DOUBLE_EQ(b.validity.draw_genuine_rate, 0.5);
  EXPECT_TRUE(b.validity.genuine());
  EXPECT_EQ(b.samples[1].judge, 3);
  EXPECT_EQ(b.samples[0].judge, -1);
  ASSERT_EQ(b.member_images.size(), 1u);
  EXPECT_EQ(b.member_images[0].label, s.seed_label);
  EXPECT_FALSE(loaded.scenarios[1].validity.known()) << "a scenario without validity reads as not judged";
  // A verdict that is not one of the three is refused.
  set.scenarios[0].validity.verdict = "probably";
  EXPECT_THROW(write_scenarios(ws.db(), set.run_id, set), Error);
}

TEST(ScenarioStore, AnOlderImagesTableIsRebuiltWithItsRows) {
  test::TempDir tmp;
  ScenarioSet set = test::make_scenario_workspace(tmp.path(), {2, 3, 1});
  {
    // Put back the images table as catalogues before member thumbnails had it.
    Workspace ws(tmp.path());
    ws.db().exec(R"sql(
      CREATE TABLE old_images AS SELECT run_id, scenario_id, kind, idx, path, predicted, label FROM scenario_images;
      DROP TABLE scenario_images;
      CREATE TABLE scenario_images (
        run_id INTEGER NOT NULL, scenario_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('sample', 'neighbour')), idx INTEGER NOT NULL, path TEXT NOT NULL,
        predicted INTEGER NOT NULL, label INTEGER NOT NULL, PRIMARY KEY (run_id, scenario_id, kind, idx),
        FOREIGN KEY (run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE);
      INSERT INTO scenario_images SELECT * FROM old_images;
      DROP TABLE old_images;
    )sql");
  }
  Workspace ws(tmp.path());
  ScenarioSet loaded = load_scenarios(ws);
  ASSERT_EQ(loaded.scenarios.size(), 2u);
  EXPECT_EQ(loaded.scenarios[0].samples.size(), 3u);
  EXPECT_EQ(loaded.scenarios[0].neighbours.size(), 1u);
  EXPECT_EQ(loaded.scenarios[0].samples[0].judge, -1);
  // And the new kind can be written into it.
  set.scenarios[0].member_images.push_back(set.scenarios[0].samples[0]);
  set.scenarios[0].member_images[0].label = set.scenarios[0].seed_label;
  write_scenarios(ws.db(), set.run_id, set);
  EXPECT_EQ(load_scenarios(ws).scenarios[0].member_images.size(), 1u);
}

TEST(ScenarioStore, ReadsTheLatestRunAndReplacesARunsRows) {
  test::TempDir tmp;
  test::make_scenario_workspace(tmp.path(), {2});
  ScenarioSet second = test::make_scenario_workspace(tmp.path(), {4});
  Workspace ws(tmp.path());
  ScenarioSet loaded = load_scenarios(ws);
  EXPECT_EQ(loaded.run_id, second.run_id);
  EXPECT_EQ(loaded.scenarios.size(), 4u);
  // Writing a run again replaces its rows.
  second.scenarios.resize(1);
  write_scenarios(ws.db(), second.run_id, second);
  EXPECT_EQ(load_scenarios(ws.db(), second.run_id).scenarios.size(), 1u);
  EXPECT_EQ(load_scenarios(ws.db(), second.run_id - 1).scenarios.size(), 2u);
}

TEST(ScenarioStore, WithoutADistillStageItIsAStateError) {
  test::TempDir tmp;
  Workspace ws(tmp.path());
  std::string message = test::error_message<StateError>([&] { load_scenarios(ws); });
  EXPECT_TRUE(test::contains(message, "defuse distill")) << message;
  // A distill run that stored no scenarios.
  auto record = ws.run_stage("distill", json::object(), json::object(), [](int64_t) {
    return Workspace::StageOutput{json::object(), {}, nullptr};
  });
  message = test::error_message<StateError>([&] { load_scenarios(ws); });
  EXPECT_TRUE(test::contains(message, "stored no scenarios")) << message;
}

TEST(ScenarioStore, AChangedThumbnailMakesTheStageStale) {
  test::TempDir tmp;
  ScenarioSet set = test::make_scenario_workspace(tmp.path(), {2});
  Workspace ws(tmp.path());
  write_file_atomic(ws.path(set.scenarios[0].samples[0].path), "not the png it was");
  std::string message = test::error_message<StateError>([&] { load_scenarios(ws); });
  EXPECT_TRUE(test::contains(message, "changed or removed")) << message;
}

TEST(ScenarioStore, AFailedDistillLeavesNoScenarios) {
  test::TempDir tmp;
  Workspace ws(tmp.path());
  ScenarioSet set;
  set.class_names = {"a", "b"};
  Scenario s;
  s.id = 1;
  s.seed_label = 0;
  s.predicted_label = 1;
  set.scenarios.push_back(s);
  EXPECT_THROW(ws.run_stage("distill", json::object(), json::object(),
                            [&](int64_t run_id) {
                              Workspace::StageOutput out;
                              out.extra = [&, run_id](Database& db) {
                                write_scenarios(db, run_id, set);
                                throw IoError("distill: disk full");  // after the rows, inside the transaction
                              };
                              return out;
                            }),
               IoError);
  EXPECT_FALSE(ws.latest("distill").has_value());
  ensure_scenario_tables(ws.db());  // the rolled-back transaction had created them
  Statement count = ws.db().prepare("SELECT COUNT(*) FROM scenarios");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.column_int(0), 0);
}

TEST(ScenarioStore, ValidatesWhatDistillationHandsIn) {
  ScenarioSet good;
  good.class_names = {"a", "b", "c"};
  Scenario s;
  s.id = 1;
  s.seed_label = 0;
  s.predicted_label = 2;
  s.mean = {0, 0};
  s.covariance = {1, 0, 0, 1};
  s.samples = {{"scenarios/run-1/s1-0.png", 2, -1}};
  s.neighbours = {{"scenarios/run-1/n1-0.png", 0, 0}};
  good.scenarios = {s};
  EXPECT_NO_THROW(validate_scenarios(good));

  auto broken = [&](auto change) {
    ScenarioSet set = good;
    change(set);
    return test::error_message<Error>([&] { validate_scenarios(set); });
  };
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.class_names.clear(); }), "no class names"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].id = 2; }), "ranks 1..n"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].seed_label = 3; }), "seed label is 3"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].predicted_label = -1; }), "predicted label"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].failure_rate = 1.5; }), "failure rate"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].covariance.pop_back(); }), "covariance"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].samples[0].label = 1; }), "no true label"));
  EXPECT_TRUE(test::contains(broken([](ScenarioSet& x) { x.scenarios[0].neighbours[0].label = -1; }), "label"));
  for (std::string path : {"../x.png", "/etc/x.png", "scenarios/../x.png", "scenarios//x.png", "other/x.png",
                           "scenarios/x.jpg", "scenarios\\x.png", "scenarios/./x.png"}) {
    EXPECT_TRUE(test::contains(broken([&](ScenarioSet& x) { x.scenarios[0].samples[0].path = path; }), "path")) << path;
  }
}

TEST(ScenarioStore, NormalisedRelativePaths) {
  EXPECT_TRUE(is_normalised_relative_path("a"));
  EXPECT_TRUE(is_normalised_relative_path("run-1/s1 sample.png"));
  EXPECT_TRUE(is_normalised_relative_path("a/..b/c..png"));
  for (const char* bad : {"", "/a", "a/", "a//b", "./a", "a/./b", "..", "../a", "a/..", "a\\b", "a\nb"})
    EXPECT_FALSE(is_normalised_relative_path(bad)) << bad;
  EXPECT_FALSE(is_normalised_relative_path(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace defuse
