#include "defuse/distill/distill.h"

#include <gtest/gtest.h>

#include <set>
#include <torch/script.h>
#include <torch/torch.h>

#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/vae.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

struct Fixture {
  std::unique_ptr<Vae> vae;
  std::unique_ptr<Classifier> classifier;
  FailureSet failures;
  at::Tensor train_codes, train_images, train_labels;
};

// Two well-separated clusters of failure codes in a 4-D latent space: 60 around +3 (seed
// label 1 read as 2) and 40 around -3 (seed label 0 read as 3).
Fixture make_fixture() {
  torch::manual_seed(0);
  Fixture f;
  VaeSpec vs;
  vs.channels = 1;
  vs.height = vs.width = 8;
  vs.latent = 4;
  vs.filters = 8;
  f.vae = make_vae(vs);
  ClassifierSpec cs;
  cs.arch = "mlp";
  cs.channels = 1;
  cs.height = cs.width = 8;
  cs.num_classes = 4;
  f.classifier = make_classifier(cs);
  auto a = torch::randn({60, 4}) * 0.3 + 3.0;
  auto b = torch::randn({40, 4}) * 0.3 - 3.0;
  f.failures.latent = torch::cat({a, b});
  f.failures.noise = torch::zeros({100, 4});
  f.failures.images = torch::zeros({100, 1, 8, 8}, torch::kUInt8);
  f.failures.seed_index = torch::arange(100);
  f.failures.seed_label = torch::cat({torch::full({60}, 1, torch::kLong), torch::full({40}, 0, torch::kLong)});
  f.failures.predicted = torch::cat({torch::full({60}, 2, torch::kLong), torch::full({40}, 3, torch::kLong)});
  f.failures.probability = torch::full({100}, 0.9f);
  f.failures.num_classes = 4;
  f.train_codes = torch::randn({50, 4}) * 2;
  f.train_images = torch::randint(0, 256, {50, 1, 8, 8}, torch::kUInt8);
  f.train_labels = torch::randint(0, 4, {50}, torch::kLong);
  return f;
}

DistillOptions small_options() {
  DistillOptions o;
  o.components = 6;
  o.min_failure_rate = 0;  // random models: keep every candidate
  o.samples = 16;
  o.shown = 4;
  o.neighbours = 3;
  o.seed = 3;
  return o;
}

TEST(Distill, FindsTheTwoClustersWithTheirLabelsAndRanksThem) {
  auto f = make_fixture();
  auto result = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                                  small_options());
  EXPECT_EQ(result.failures, 100);
  ASSERT_EQ(result.scenarios.size(), 2u);
  EXPECT_EQ(result.candidates, 2);
  int64_t members = 0;
  for (size_t i = 0; i < result.scenarios.size(); ++i) {
    const auto& s = result.scenarios[i];
    members += s.members;
    EXPECT_DOUBLE_EQ(s.seed_label_share, 1.0);
    EXPECT_DOUBLE_EQ(s.predicted_share, 1.0);
    EXPECT_EQ(s.predicted_label, s.seed_label == 1 ? 2 : 3);
    EXPECT_GE(s.failure_rate, 0.0);
    EXPECT_LE(s.failure_rate, 1.0);
    EXPECT_DOUBLE_EQ(s.score, s.failure_rate * s.weight);
    EXPECT_EQ(s.sample_images.sizes(), (std::vector<int64_t>{4, 1, 8, 8}));
    EXPECT_EQ(s.neighbour_index.size(0), 3);
    if (i > 0) EXPECT_GE(result.scenarios[i - 1].score, s.score);
    // The mean sits in its cluster.
    EXPECT_NEAR(s.mean.mean().item<double>(), s.seed_label == 1 ? 3.0 : -3.0, 0.3);
  }
  EXPECT_EQ(members, 100);
  EXPECT_EQ(result.assignments.size(), 100u);
}

TEST(Distill, SameSeedGivesTheSameScenarios) {
  auto f = make_fixture();
  auto a = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                             small_options());
  auto b = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                             small_options());
  ASSERT_EQ(a.scenarios.size(), b.scenarios.size());
  for (size_t i = 0; i < a.scenarios.size(); ++i) {
    EXPECT_EQ(a.scenarios[i].component, b.scenarios[i].component);
    EXPECT_EQ(a.scenarios[i].failure_rate, b.scenarios[i].failure_rate);
    EXPECT_TRUE(torch::equal(a.scenarios[i].sample_images, b.scenarios[i].sample_images));
  }
}

TEST(Distill, MinimumFailureRateFilters) {
  auto f = make_fixture();
  auto o = small_options();
  o.min_failure_rate = 1.0;
  auto all = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                               small_options());
  auto strict = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o);
  size_t expected = 0;
  for (const auto& s : all.scenarios) expected += s.failure_rate >= 1.0;
  EXPECT_EQ(strict.scenarios.size(), expected);
}

TEST(Distill, NoFailuresGiveNoScenariosAndBadOptionsAreClearErrors) {
  auto f = make_fixture();
  FailureSet empty = f.failures;
  empty.latent = torch::zeros({0, 4});
  // With a validity gate, finding no genuine failure is an answer, not an error.
  auto none =
      distill_scenarios(*f.vae, *f.classifier, empty, f.train_codes, f.train_images, f.train_labels, small_options());
  EXPECT_EQ(none.failures, 0);
  EXPECT_TRUE(none.scenarios.empty());
  auto o = small_options();
  o.tau = 0;
  EXPECT_THROW(distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o),
               ConfigError);
  EXPECT_THROW(distill_scenarios(*f.vae, *f.classifier, f.failures, torch::zeros({5, 3}), f.train_images,
                                 f.train_labels, small_options()),
               StateError);
}

TEST(Distill, ClustersOnePointPerSeedAndNeedsSeveralSeedsPerScenario) {
  auto f = make_fixture();
  // Five failures around each of 20 seeds: 12 seeds in the +3 cluster, 8 in the -3 one.
  f.failures.seed_index = torch::arange(100).div(5, "floor");
  f.failures.seed_label = torch::cat({torch::full({60}, 1, torch::kLong), torch::full({40}, 0, torch::kLong)});
  auto o = small_options();
  o.components = 2;
  auto r = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o);
  EXPECT_EQ(r.points, 20);
  ASSERT_EQ(r.scenarios.size(), 2u);
  for (const auto& s : r.scenarios) {
    EXPECT_EQ(s.seeds, s.seed_label == 1 ? 12 : 8);
    EXPECT_EQ(s.members, s.seeds * 5) << "every failure goes with its seed";
  }
  // The same failures clustered one by one, the reference's way.
  o.points = "failures";
  auto each = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o);
  EXPECT_EQ(each.points, 100);
  // A scenario must hold failures of min_seeds seeds.
  o.points = "seeds";
  o.min_seeds = 10;
  auto strict = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o);
  ASSERT_EQ(strict.scenarios.size(), 1u);
  EXPECT_EQ(strict.scenarios[0].seed_label, 1);
  EXPECT_EQ(strict.single_seed, 1);
  o.points = "everything";
  EXPECT_THROW(o.validate(), ConfigError);
}

TEST(Distill, CapsTheTruncationByThePointsSoThatFewSeedsStillMakeScenarios) {
  EXPECT_EQ(distill_truncation(100, 21, 3), 7);
  EXPECT_EQ(distill_truncation(100, 1000, 3), 100);
  EXPECT_EQ(distill_truncation(100, 2, 3), 1);
  EXPECT_EQ(distill_truncation(6, 100, 1), 6);
  auto f = make_fixture();
  f.failures.seed_index = torch::arange(100).div(5, "floor");  // 20 seeds, 12 and 8 per cluster
  auto o = small_options();
  o.components = 100;  // the default: without the cap, 20 points in 20 components, none of 3 seeds
  auto r = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels, o);
  EXPECT_EQ(r.truncation, 6);
  ASSERT_GE(r.scenarios.size(), 2u);  // the two clusters, each perhaps in parts of >= 3 seeds
  std::set<int64_t> labels;
  for (const auto& s : r.scenarios) {
    EXPECT_GE(s.seeds, 3);
    EXPECT_EQ(s.seed_label_share, 1.0) << "a scenario holds one cluster's seeds";
    labels.insert(s.seed_label);
  }
  EXPECT_EQ(labels, (std::set<int64_t>{0, 1}));
}

TEST(Distill, VerdictsOfTheMembersMakeTheScenariosVerdictAndRankGenuineFirst) {
  auto f = make_fixture();
  // The +3 cluster (60 failures) is a label change, the -3 one (40) genuine: the genuine one
  // must rank first although it is lighter.
  auto& v = f.failures.validity;
  v.verdict = torch::cat({torch::full({60}, static_cast<int8_t>(Verdict::kLabelChange), torch::kInt8),
                          torch::full({40}, static_cast<int8_t>(Verdict::kGenuine), torch::kInt8)});
  v.judge_label = torch::cat({torch::full({60}, 2, torch::kLong), torch::full({40}, 0, torch::kLong)});
  v.judge_agreement = torch::ones({100});
  v.judge_confidence = torch::ones({100});
  v.knn_label = v.judge_label.clone();
  v.knn_seed_share = torch::cat({torch::zeros({60}), torch::ones({40})});
  v.knn_predicted_share = 1 - v.knn_seed_share;
  v.realism = torch::full({100}, 0.5f);
  test::TempDir tmp;
  // A judge that reads every image as class 0.
  test::write_torchscript_constant(tmp.path() / "zero.pt", {5.0f, 0.0f, 0.0f, 0.0f});
  JudgePanel panel;
  panel.add(load_classifier(tmp.path() / "zero.pt", torch::kCPU), {"judge-1", "zero.pt", "torchscript"});
  auto r = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                             small_options(), &panel);
  ASSERT_EQ(r.scenarios.size(), 2u);
  const auto& first = r.scenarios[0].validity;
  const auto& second = r.scenarios[1].validity;
  EXPECT_EQ(first.verdict, "genuine");
  EXPECT_EQ(r.scenarios[0].seed_label, 0);
  EXPECT_DOUBLE_EQ(first.genuine_share, 1.0);
  EXPECT_EQ(first.judge_label, 0);
  EXPECT_DOUBLE_EQ(first.knn_seed_share, 1.0);
  EXPECT_NEAR(first.realism, 0.5, 1e-6);
  EXPECT_EQ(first.judges, 1);
  EXPECT_GE(first.draw_genuine_rate, 0.0);
  EXPECT_EQ(second.verdict, "label-change");
  EXPECT_DOUBLE_EQ(second.label_change_share, 1.0);
  EXPECT_DOUBLE_EQ(r.scenarios[1].score, 0.0) << "a label change holds no genuine failure mass";
  EXPECT_DOUBLE_EQ(second.draw_genuine_rate, 0.0) << "the judge reads 0, the seeds of that scenario are 1";
  // Every shown draw carries the judges' reading.
  EXPECT_TRUE(torch::all(r.scenarios[0].sample_judge.eq(0)).item<bool>());
  // Member thumbnails come from the scenario's own failures.
  ASSERT_GT(r.scenarios[0].member_rows.size(0), 0);
  EXPECT_TRUE(torch::all(r.scenarios[0].member_rows.ge(60)).item<bool>());
}

TEST(Distill, ThumbnailsAndScenarioRowsRoundTripThroughTheWorkspace) {
  auto f = make_fixture();
  auto result = distill_scenarios(*f.vae, *f.classifier, f.failures, f.train_codes, f.train_images, f.train_labels,
                                  small_options());
  test::TempDir tmp;
  Workspace ws(tmp.path());
  ScenarioSet stored;
  ws.run_stage(kDistillStage, nlohmann::json::object(), nlohmann::json::object(), [&](int64_t run_id) {
    stored = save_scenario_thumbnails(ws, run_id, result, f.train_images, {"a", "b", "c", "d"}, f.failures);
    Workspace::StageOutput out;
    for (const auto& s : stored.scenarios)
      for (const auto& img : s.samples) out.artifacts.emplace_back(img.path, img.path);
    out.extra = [&](Database& db) { write_scenarios(db, run_id, stored); };
    return out;
  });
  auto loaded = load_scenarios(ws);
  ASSERT_EQ(loaded.scenarios.size(), result.scenarios.size());
  EXPECT_EQ(loaded.class_names.size(), 4u);
  for (const auto& s : loaded.scenarios) {
    EXPECT_EQ(s.samples.size(), 4u);
    EXPECT_EQ(s.member_images.size(), 4u);
    for (const auto& img : s.member_images) {
      EXPECT_TRUE(std::filesystem::exists(ws.path(img.path))) << img.path;
      EXPECT_EQ(img.label, s.seed_label) << "a member's label is its seed's";
    }
    EXPECT_EQ(s.neighbours.size(), 3u);
    for (const auto& img : s.samples) EXPECT_TRUE(std::filesystem::exists(ws.path(img.path))) << img.path;
    EXPECT_EQ(s.mean.size(), 4u);
    EXPECT_EQ(s.covariance.size(), 16u);
  }
}

}  // namespace
}  // namespace defuse
