#include "defuse/judge/judges.h"

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "defuse/model/classifier.h"
#include "defuse/train/train_classifier.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

// A TorchScript classifier that answers `label` for every image, with softmax probability
// `p` for it (the rest spread evenly over the other classes).
std::unique_ptr<Classifier> fixed_classifier(const std::filesystem::path& path, int64_t label, int64_t classes,
                                             double p) {
  torch::jit::Module module("Fixed");
  auto probs = torch::full({1, classes}, (1.0 - p) / static_cast<double>(classes - 1));
  probs[0][label] = p;
  module.register_buffer("logits", probs.log());
  module.define(R"(
    def forward(self, x):
        return self.logits.expand(x.size(0), self.logits.size(1))
  )");
  module.save(path.string());
  return load_classifier(path, torch::kCPU);
}

JudgeReading reading(std::vector<int64_t> label, std::vector<float> agreement, std::vector<float> confidence) {
  JudgeReading r;
  r.label = torch::tensor(label, torch::kLong);
  r.agreement = torch::tensor(agreement, torch::kFloat32);
  r.confidence = torch::tensor(confidence, torch::kFloat32);
  return r;
}

TEST(Verdicts, GenuineWhenTheJudgesReadTheSeedLabelLabelChangeWhenTheyReadThePrediction) {
  // Seeds are 3, the classifier said 5 every time.
  auto r = reading({3, 5, 3, 3, 7, 5}, {1, 1, 0.5, 1, 1, 1}, {0.9f, 0.95f, 0.9f, 0.3f, 0.9f, 0.4f});
  auto seed = torch::full({6}, 3, torch::kLong), pred = torch::full({6}, 5, torch::kLong);
  VerdictRule rule;
  rule.min_confidence = 0.5;  // unanimous, mean probability >= 0.5
  auto v = failure_verdicts(r, seed, pred, rule);
  auto g = static_cast<int8_t>(Verdict::kGenuine), c = static_cast<int8_t>(Verdict::kLabelChange),
       a = static_cast<int8_t>(Verdict::kAmbiguous);
  EXPECT_TRUE(torch::equal(v, torch::tensor(std::vector<int8_t>{g, c, a, a, a, a}, torch::kInt8)))
      << "split judges, unsure judges, a third class and an unsure label change are ambiguous";
  // A looser rule lets the split reading through.
  rule.min_agreement = 0.5;
  EXPECT_EQ(failure_verdicts(r, seed, pred, rule)[2].item<int8_t>(), g);
}

TEST(Verdicts, NamesRoundTrip) {
  for (auto v : {Verdict::kGenuine, Verdict::kLabelChange, Verdict::kAmbiguous})
    EXPECT_EQ(verdict_names().parse(verdict_names().name(v), "test", "verdict"), v);
  EXPECT_EQ(verdict_names().name(Verdict::kLabelChange), "label-change");
  EXPECT_THROW(verdict_names().parse("maybe", "test", "verdict"), ConfigError);
}

TEST(JudgePanel, ReadsTheConsensusWithAgreementAndMeanProbability) {
  test::TempDir tmp;
  JudgePanel panel;
  panel.add(fixed_classifier(tmp.path() / "a.pt", 2, 4, 0.9), {"judge-1", "a.pt", "torchscript"});
  panel.add(fixed_classifier(tmp.path() / "b.pt", 2, 4, 0.7), {"judge-2", "b.pt", "torchscript"});
  panel.add(fixed_classifier(tmp.path() / "c.pt", 1, 4, 0.6), {"judge-3", "c.pt", "torchscript"});
  auto images = torch::zeros({5, 1, 8, 8}, torch::kUInt8);
  JudgeReading r = panel.read(images, torch::kCPU);
  ASSERT_EQ(r.size(), 5);
  EXPECT_TRUE(torch::all(r.label.eq(2)).item<bool>());
  EXPECT_NEAR(r.agreement[0].item<float>(), 2.0 / 3.0, 1e-6);
  // Class 2's mean probability: (0.9 + 0.7 + 0.4 / 3) / 3.
  EXPECT_NEAR(r.confidence[0].item<float>(), (0.9 + 0.7 + 0.4 / 3) / 3, 1e-5);
  EXPECT_EQ(r.votes.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(r.votes[2][0].item<int64_t>(), 1);
}

TEST(JudgePanel, ReadingWithNoJudgesIsAnError) {
  JudgePanel panel;
  EXPECT_THROW(panel.read(torch::zeros({1, 1, 8, 8}, torch::kUInt8), torch::kCPU), Error);
}

TEST(TrainJudges, RefusesAJudgeOfOtherClassesBeforeTrainingAny) {
  test::TempDir tmp;
  Dataset data = test::make_toy_dataset(64, 16, 1, 8, 8, 4);
  test::write_torchscript_linear(tmp.path() / "wrong.pt", 64, 3);  // 3 classes, the data has 4
  TrainJudgesOptions o;
  o.files = {(tmp.path() / "wrong.pt").string()};
  o.archs = {"mlp"};
  bool trained = false;
  o.on_progress = [&](int, int, const TrainProgress&) { trained = true; };
  std::string message = test::error_message<ModelError>([&] { train_judges(data, o); });
  EXPECT_TRUE(test::contains(message, "wrong.pt")) << message;
  EXPECT_TRUE(test::contains(message, "3 logits")) << message;
  EXPECT_FALSE(trained) << "no judge may be trained before every given judge is checked";
}

TEST(TrainJudges, TrainsZooJudgesWithTheirOwnSeedsAndStoresThemInTheWorkspace) {
  test::TempDir tmp;
  Dataset data = test::make_toy_dataset(96, 32, 1, 8, 8, 4);
  test::write_torchscript_linear(tmp.path() / "mine.pt", 64, 4);
  TrainJudgesOptions o;
  o.files = {(tmp.path() / "mine.pt").string()};
  o.archs = {"mlp", "mlp"};
  o.epochs = 2;
  auto result = train_judges(data, o);
  ASSERT_EQ(result.panel.size(), 3);
  const auto& info = result.panel.info();
  EXPECT_EQ(info[0].name, "judge-1");
  EXPECT_EQ(info[0].origin, (tmp.path() / "mine.pt").string());
  EXPECT_EQ(info[1].origin, "trained");
  EXPECT_NE(info[1].seed, info[2].seed) << "two judges of one architecture must differ in their seed";
  EXPECT_NE(info[1].seed, 0u) << "the classifier trains with seed 0 by default";
  for (const auto& j : info) EXPECT_GE(j.test_accuracy, 0.0);
  // The two mlp judges differ (other seeds), so their readings of the test images differ somewhere.
  auto images = torch::randint(0, 255, {16, 1, 8, 8}, torch::kUInt8);
  auto a = predict_logits(result.panel.model(1), images, 16, torch::kCPU);
  auto b = predict_logits(result.panel.model(2), images, 16, torch::kCPU);
  EXPECT_FALSE(torch::allclose(a, b));

  // Stored and loaded back through a workspace stage: same readings.
  Workspace ws(tmp.path() / "ws");
  nlohmann::json judges = nlohmann::json::array();
  for (const auto& j : info)
    judges.push_back({{"name", j.name},
                      {"origin", j.origin},
                      {"arch", j.arch},
                      {"seed", j.seed},
                      {"test_accuracy", j.test_accuracy}});
  ws.run_stage(kJudgesStage, {{"archs", {"mlp", "mlp"}}}, nlohmann::json::object(), [&](int64_t) {
    return Workspace::StageOutput{{{"judges", judges}, {"count", 3}}, save_judges(ws, result.panel), nullptr};
  });
  std::string fingerprint;
  JudgePanel loaded = load_workspace_judges(ws, torch::kCPU, &fingerprint);
  ASSERT_EQ(loaded.size(), 3);
  EXPECT_FALSE(fingerprint.empty());
  auto before = result.panel.read(images, torch::kCPU), after = loaded.read(images, torch::kCPU);
  EXPECT_TRUE(torch::equal(before.label, after.label));
  EXPECT_TRUE(torch::allclose(before.confidence, after.confidence));
}

TEST(TrainJudges, AWorkspaceWithoutJudgesGivesAnEmptyPanel) {
  test::TempDir tmp;
  Workspace ws(tmp.path() / "ws");
  std::string fingerprint = "x";
  EXPECT_TRUE(load_workspace_judges(ws, torch::kCPU, &fingerprint).empty());
  EXPECT_EQ(fingerprint, "");
}

TEST(TrainJudges, UnknownArchitectureIsAConfigError) {
  TrainJudgesOptions o;
  o.archs = {"transformer"};
  EXPECT_THROW(o.validate(), ConfigError);
}

TEST(TrainJudges, EveryJudgeTrainsInBatchesOfTheGivenSize) {
  Dataset data = test::make_toy_dataset(96, 16, 1, 8, 8, 4);
  TrainJudgesOptions o;
  o.archs = {"mlp", "mlp"};
  o.epochs = 1;
  o.batch_size = 48;
  std::vector<int64_t> batches;
  o.on_progress = [&](int, int, const TrainProgress& p) { batches.push_back(p.batches); };
  train_judges(data, o);
  EXPECT_EQ(batches, (std::vector<int64_t>{2, 2, 2, 2}));  // two judges, two batches of 48 each
  o.batch_size = 0;
  EXPECT_TRUE(test::contains(test::error_message<ConfigError>([&] { o.validate(); }), "--batch-size"));
}

}  // namespace
}  // namespace defuse
