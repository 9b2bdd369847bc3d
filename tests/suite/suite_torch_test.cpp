// Scenario suites with their images: building from scenario Gaussians, the directory round
// trip, what a damaged suite gives, and scoring a model whose answers the test knows.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/correct/correct.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/vae.h"
#include "defuse/suite/suite.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;

// A classifier of 3 classes that reads bright images (mean > 0.5) as `bright`, others as `dark`.
void write_brightness_model(const fs::path& path, int64_t dark, int64_t bright) {
  torch::jit::Module module("Brightness");
  auto dark_row = torch::zeros({1, 3});
  dark_row[0][dark] = 1;
  auto bright_row = torch::zeros({1, 3});
  bright_row[0][bright] = 1;
  module.register_buffer("dark", dark_row);
  module.register_buffer("bright", bright_row);
  module.define(R"(
    def forward(self, x):
        b = (x.mean(dim=[1, 2, 3]) > 0.5).float().view(-1, 1)
        return b * self.bright + (1.0 - b) * self.dark
  )");
  module.save(path.string());
}

// A two-scenario suite of 1x4x4 images: scenario 1 (label 1) of 10 images, 7 bright and 3 dark;
// scenario 2 (label 2) of 4 dark images.
Suite known_suite() {
  Suite s;
  s.info.defuse_version = "test";
  s.info.channels = 1;
  s.info.height = 4;
  s.info.width = 4;
  s.info.class_names = {"a", "b", "c"};
  auto add = [&](int64_t id, int64_t label, int64_t bright, int64_t dark) {
    SuiteScenarioInfo sc;
    sc.id = id;
    sc.label = label;
    sc.min_accuracy = 0.6;
    auto images = torch::cat(
        {torch::full({bright, 1, 4, 4}, 230, torch::kUInt8), torch::full({dark, 1, 4, 4}, 20, torch::kUInt8)});
    images[0][0][0][0] = 7;  // not every image the same bytes
    for (int64_t i = 0; i < bright + dark; ++i)
      sc.images.push_back({fmt::format("images/s{:02d}/{:04d}.png", id, i), "", 0, 0.9});
    s.info.scenario_list.push_back(sc);
    s.images.push_back(images);
  };
  add(1, 1, 7, 3);
  add(2, 2, 0, 4);
  return s;
}

TEST(Suite, SavedSuiteLoadsBackAndScoresAsKnown) {
  test::TempDir tmp;
  Suite suite = known_suite();
  save_suite(suite, tmp.path() / "suite");
  ASSERT_TRUE(fs::exists(tmp.path() / "suite" / "suite.json"));
  ASSERT_TRUE(fs::exists(tmp.path() / "suite" / "images" / "s01" / "0009.png"));
  Suite back = load_suite(tmp.path() / "suite");
  ASSERT_EQ(back.images.size(), 2u);
  EXPECT_TRUE(torch::equal(back.images[0], suite.images[0]));
  EXPECT_TRUE(torch::equal(back.images[1], suite.images[1]));
  EXPECT_EQ(back.info.scenario_list[0].images[0].hash.size(), 32u);

  write_brightness_model(tmp.path() / "m.pt", /*dark=*/0, /*bright=*/1);
  auto model = load_classifier(tmp.path() / "m.pt", c10::Device(c10::kCPU));
  check_model_fits(*model, back.info, "m.pt");
  CheckReport r = check_suite(*model, back, std::nullopt, c10::Device(c10::kCPU));
  ASSERT_EQ(r.scenarios.size(), 2u);
  EXPECT_EQ(r.scenarios[0].images, 10);
  EXPECT_EQ(r.scenarios[0].correct, 7);
  EXPECT_DOUBLE_EQ(r.scenarios[0].accuracy, 0.7);
  EXPECT_TRUE(r.scenarios[0].passed());  // mark 0.6
  EXPECT_EQ(r.scenarios[0].top_wrong, 0);
  EXPECT_EQ(r.scenarios[0].top_wrong_count, 3);
  EXPECT_NEAR(r.scenarios[0].interval.low, wilson_interval(7, 10).low, 1e-12);
  EXPECT_EQ(r.scenarios[1].correct, 0);
  EXPECT_FALSE(r.scenarios[1].passed());
  EXPECT_EQ(r.failed(), 1);
  // A mark given at check time overrides the suite's.
  CheckReport strict = check_suite(*model, back, 0.8, c10::Device(c10::kCPU));
  EXPECT_FALSE(strict.scenarios[0].passed());
  EXPECT_EQ(strict.failed(), 2);
}

TEST(Suite, ADamagedSuiteIsAClearError) {
  test::TempDir tmp;
  Suite suite = known_suite();
  const fs::path dir = tmp.path() / "suite";
  save_suite(suite, dir);
  auto expect_error = [&](auto kind, const std::string& fragment) {
    try {
      load_suite(dir);
      ADD_FAILURE() << "loaded a damaged suite (" << fragment << ")";
    } catch (const decltype(kind)& e) {
      EXPECT_TRUE(test::contains(e.what(), fragment)) << e.what();
    }
  };
  const fs::path png = dir / "images" / "s02" / "0001.png";
  const std::string good_png = read_file(png);
  write_file_atomic(png, good_png.substr(0, good_png.size() / 2));  // truncated
  expect_error(DataError(""), "0001.png: its content changed since the suite was exported");
  fs::remove(png);
  expect_error(IoError(""), "0001.png");
  write_file_atomic(png, good_png);
  EXPECT_NO_THROW(load_suite(dir));
  const std::string json = read_file(dir / "suite.json");
  write_file_atomic(dir / "suite.json", json.substr(0, json.size() / 2));
  expect_error(DataError(""), "suite.json: not valid JSON");
  fs::remove(dir / "suite.json");
  expect_error(IoError(""), "not a suite made by `defuse export-suite`");
}

TEST(Suite, AModelOfAnotherShapeOrClassesIsRefused) {
  test::TempDir tmp;
  Suite suite = known_suite();
  test::write_torchscript_constant(tmp.path() / "four.pt", {0, 1, 0, 0});
  auto four = load_classifier(tmp.path() / "four.pt", c10::Device(c10::kCPU));
  try {
    check_model_fits(*four, suite.info, "four.pt");
    ADD_FAILURE() << "accepted a model of 4 classes for a suite of 3";
  } catch (const ModelError& e) {
    EXPECT_TRUE(test::contains(e.what(), "four.pt")) << e.what();
    EXPECT_TRUE(test::contains(e.what(), "the suite")) << e.what();
  }
  test::write_torchscript_linear(tmp.path() / "wide.pt", 28 * 28, 3);
  auto wide = load_classifier(tmp.path() / "wide.pt", c10::Device(c10::kCPU));
  EXPECT_THROW(check_model_fits(*wide, suite.info, "wide.pt"), ModelError);
}

LabelledScenario scenario(int64_t id, int64_t label, float shift) {
  LabelledScenario s;
  s.id = id;
  s.label = label;
  s.mean = torch::full({4}, shift);
  s.covariance = torch::eye(4) * 0.5;
  return s;
}

TEST(Suite, BuildKeepsTheOriginalsFailuresReproducibly) {
  torch::manual_seed(3);
  auto vae = test::make_tiny_vae(12, 4, 8);
  test::TempDir tmp;
  test::write_torchscript_constant(tmp.path() / "says1.pt", {0, 5, 0});
  auto says1 = load_classifier(tmp.path() / "says1.pt", c10::Device(c10::kCPU));
  JudgePanel no_judges;
  SuiteOptions o;
  o.images_per_scenario = 20;
  o.round_size = 8;  // several rounds
  o.max_draws = 64;
  SuiteInfo info;
  info.channels = 1;
  info.height = 12;
  info.width = 12;
  info.class_names = {"a", "b", "c"};
  const std::vector<LabelledScenario> both{scenario(1, 1, 0), scenario(2, 2, 1)};
  Suite s = build_suite(*vae, *says1, no_judges, VerdictRule{}, both, 1.0, info, o);
  // Scenario 1 is labelled 1, which the classifier always answers: no failure to keep.
  ASSERT_EQ(s.info.left_out.size(), 1u);
  EXPECT_EQ(s.info.left_out[0].id, 1);
  EXPECT_TRUE(test::contains(s.info.left_out[0].reason, "none of 64 draws")) << s.info.left_out[0].reason;
  ASSERT_EQ(s.info.scenario_list.size(), 1u);
  const auto& sc = s.info.scenario_list[0];
  EXPECT_EQ(sc.id, 2);
  EXPECT_EQ(sc.images.size(), 20u);
  EXPECT_EQ(sc.draws, 24);  // three rounds of 8
  EXPECT_EQ(sc.predicted_label, 1);
  EXPECT_EQ(s.images[0].sizes(), (std::vector<int64_t>{20, 1, 12, 12}));
  EXPECT_EQ(s.codes[0].sizes(), (std::vector<int64_t>{20, 4}));
  // The same seed gives the same images, whatever the other scenarios are; another seed others.
  Suite alone = build_suite(*vae, *says1, no_judges, VerdictRule{}, {both[1]}, 1.0, info, o);
  EXPECT_TRUE(torch::equal(alone.images[0], s.images[0]));
  o.seed = 1;
  Suite other = build_suite(*vae, *says1, no_judges, VerdictRule{}, {both[1]}, 1.0, info, o);
  EXPECT_FALSE(torch::equal(other.codes[0], s.codes[0]));
  // Every confirmed draw instead of the failures only: scenario 1 has images too.
  o.failing_only = false;
  Suite all = build_suite(*vae, *says1, no_judges, VerdictRule{}, both, 1.0, info, o);
  EXPECT_EQ(all.info.scenario_list.size(), 2u);
  EXPECT_EQ(all.info.images, "confirmed");
  // A judge that reads everything as class 0 confirms none of the draws of label 2.
  JudgePanel judges;
  test::write_torchscript_constant(tmp.path() / "says0.pt", {9, 0, 0});
  judges.add(load_classifier(tmp.path() / "says0.pt", c10::Device(c10::kCPU)), JudgeInfo{"j", "test", "torchscript"});
  o.failing_only = true;
  Suite judged = build_suite(*vae, *says1, judges, VerdictRule{}, {both[1]}, 1.0, info, o);
  EXPECT_TRUE(judged.info.scenario_list.empty());
  EXPECT_EQ(judged.info.left_out.size(), 1u);
}

}  // namespace
}  // namespace defuse
