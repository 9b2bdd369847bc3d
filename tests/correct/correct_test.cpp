#include "defuse/correct/correct.h"

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <map>

#include "defuse/annotate/annotation_store.h"
#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/correct/evaluate.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"
#include "defuse/train/train_classifier.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

TEST(DeriveSeed, StreamsAreDistinctAndStable) {
  EXPECT_EQ(derive_seed(7, kTrainSampleStream), derive_seed(7, kTrainSampleStream));
  EXPECT_NE(derive_seed(7, kTrainSampleStream), derive_seed(7, kHeldOutStream));
  EXPECT_NE(derive_seed(7, kTrainSampleStream), derive_seed(8, kTrainSampleStream));
  EXPECT_NE(derive_seed(0, 0), 0u);
}

TEST(BalancedStream, BalancesLabelsThenScenariosAndCoversEveryImage) {
  // Label 0: scenario 0 with 10 images, scenario 1 with 2; label 1: scenario 2 with 5.
  std::vector<int64_t> labels, scenario;
  for (int i = 0; i < 10; ++i) labels.push_back(0), scenario.push_back(0);
  for (int i = 0; i < 2; ++i) labels.push_back(0), scenario.push_back(1);
  for (int i = 0; i < 5; ++i) labels.push_back(1), scenario.push_back(2);
  auto l = torch::tensor(labels), s = torch::tensor(scenario);
  BalancedStream stream(l, s, 3);
  auto idx = torch::cat({stream.next(300), stream.next(300)});  // across calls: one stream
  std::map<int64_t, int64_t> per_label, per_scenario, per_image;
  for (int64_t i = 0; i < idx.size(0); ++i) {
    int64_t k = idx[i].item<int64_t>();
    ++per_label[labels[static_cast<size_t>(k)]];
    ++per_scenario[scenario[static_cast<size_t>(k)]];
    ++per_image[k];
  }
  EXPECT_EQ(per_label[0], 300);
  EXPECT_EQ(per_label[1], 300);
  EXPECT_EQ(per_scenario[0], 150);
  EXPECT_EQ(per_scenario[1], 150);
  EXPECT_EQ(per_scenario[2], 300);
  EXPECT_EQ(per_image.size(), 17u);  // every image is used
  EXPECT_EQ(per_image[10], 75);      // scenario 1's two images, 150 draws between them
  EXPECT_EQ(per_image[11], 75);
  EXPECT_EQ(per_image[0], 15);  // scenario 0's ten images
  // Reshuffled on every pass, deterministic per seed.
  BalancedStream again(l, s, 3), other(l, s, 4);
  EXPECT_TRUE(torch::equal(again.next(600), idx));
  EXPECT_FALSE(torch::equal(other.next(600), idx));
  EXPECT_THROW(BalancedStream(torch::empty({0}, torch::kLong), torch::empty({0}, torch::kLong), 1), Error);
}

ScenarioSet three_scenarios(int64_t z) {
  ScenarioSet set;
  set.run_id = 1;
  set.class_names = {"a", "b", "c"};
  for (int64_t i = 1; i <= 3; ++i) {
    Scenario s;
    s.id = i;
    s.seed_label = 0;
    s.predicted_label = 1;
    s.mean.assign(static_cast<size_t>(z), static_cast<float>(i));
    s.covariance.assign(static_cast<size_t>(z * z), 0.f);
    for (int64_t d = 0; d < z; ++d) s.covariance[static_cast<size_t>(d * z + d)] = 1.f;
    s.members = 2;
    s.member_failures = {2 * (i - 1), 2 * (i - 1) + 1};
    set.scenarios.push_back(s);
  }
  return set;
}

ResolvedScenario decision(int64_t id, Resolution status, int64_t label = -1) {
  ResolvedScenario r;
  r.scenario_id = id;
  r.status = status;
  if (status == Resolution::kLabelled) r.label = label;
  return r;
}

TEST(LabelledScenarios, KeepsLabelledOnesAndExplainsWhenThereAreNone) {
  auto set = three_scenarios(2);
  auto picked = labelled_scenarios(set, {decision(1, Resolution::kLabelled, 2), decision(2, Resolution::kRejected),
                                         decision(3, Resolution::kLabelled, 0)});
  ASSERT_EQ(picked.size(), 2u);
  EXPECT_EQ(picked[0].id, 1);
  EXPECT_EQ(picked[0].label, 2);
  EXPECT_EQ(picked[1].id, 3);
  EXPECT_EQ(picked[1].label, 0);
  EXPECT_FLOAT_EQ(picked[1].mean[0].item<float>(), 3.f);
  EXPECT_EQ(picked[1].member_failures, (std::vector<int64_t>{4, 5}));

  auto reason = [&](std::vector<ResolvedScenario> r) {
    return test::error_message<StateError>([&] { labelled_scenarios(set, r); });
  };
  EXPECT_TRUE(test::contains(reason({decision(1, Resolution::kRejected), decision(2, Resolution::kRejected),
                                     decision(3, Resolution::kRejected)}),
                             "all 3 scenarios were rejected"));
  EXPECT_TRUE(test::contains(reason({decision(1, Resolution::kUnlabelled), decision(2, Resolution::kUnlabelled),
                                     decision(3, Resolution::kUnlabelled)}),
                             "annotate"));
  EXPECT_TRUE(test::contains(
      reason({decision(1, Resolution::kTie), decision(2, Resolution::kRejected), decision(3, Resolution::kUnlabelled)}),
      "1 tied"));
  EXPECT_TRUE(test::contains(reason({}), "no scenarios"));
}

TEST(LabelledFailures, MapsMembersToTheirScenarioLabel) {
  auto set = three_scenarios(2);
  auto picked = labelled_scenarios(set, {decision(1, Resolution::kLabelled, 2), decision(2, Resolution::kRejected),
                                         decision(3, Resolution::kLabelled, 0)});
  auto images = torch::arange(6, torch::kUInt8).view({6, 1, 1, 1});
  auto f = labelled_failures(picked, images);
  ASSERT_EQ(f.size(), 4);
  EXPECT_TRUE(torch::equal(f.images.flatten(), torch::tensor({0, 1, 4, 5}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(f.labels, torch::tensor({2, 2, 0, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(f.scenario, torch::tensor({0, 0, 1, 1}, torch::kLong)));
  // Memberships beyond the failure set: distill and identify do not belong together.
  EXPECT_TRUE(test::contains(test::error_message<StateError>([&] { labelled_failures(picked, images.slice(0, 0, 5)); }),
                             "run distill again"));
}

// A tiny learnable problem: the toy dataset (each class lights its own band), an MLP
// trained on it, a random VAE whose decodes of a scenario the MLP mostly gets "wrong"
// for the label a person would give.
class Correction : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::manual_seed(3);
    dataset_ = new Dataset(test::make_toy_dataset(300, 100, 1, 12, 12, 2));
    TrainClassifierOptions o;
    o.arch = "mlp";
    o.epochs = 3;
    o.batch_size = 32;
    o.seed = 1;
    auto trained = train_classifier(*dataset_, o);
    original_ = trained.model.release();
    vae_ = test::make_tiny_vae().release();
  }
  static void TearDownTestSuite() {
    delete dataset_;
    delete original_;
    delete vae_;
  }

  void SetUp() override {
    LabelledScenario s;
    s.id = 1;
    s.mean = torch::full({4}, 0.3f);
    s.covariance = torch::eye(4) * 4.0f;
    s.member_failures = {0, 1, 2};
    scenarios_ = {s};
    // Label the scenario with the class the original predicts least often on it.
    auto probe = sample_scenarios(*vae_, scenarios_, 200, 1.0, 9, kHeldOutStream, "cpu", 64);
    auto share1 = predict_logits(*original_, probe.images, 100, torch::kCPU).argmax(1).to(torch::kDouble).mean();
    scenarios_[0].label = share1.item<double>() > 0.5 ? 0 : 1;
    train_ = sample_scenarios(*vae_, scenarios_, 128, 1.0, 1, kTrainSampleStream, "cpu", 64);
    held_out_ = sample_scenarios(*vae_, scenarios_, 200, 1.0, 1, kHeldOutStream, "cpu", 64);
    failures_ = labelled_failures(scenarios_, train_.images.slice(0, 0, 16));
  }

  CorrectOptions options() const {
    CorrectOptions o;
    o.lambdas = {0.0, 1.0};
    o.epochs = 2;
    o.batch_size = 32;
    o.scenario_batch_size = 32;
    o.lr = 0.02;
    o.samples_per_scenario = 128;
    o.tau = 1.0;
    o.seed = 5;
    return o;
  }

  double accuracy(Classifier& model, const LabelledImages& set) {
    return predict_logits(model, set.images, 100, torch::kCPU)
        .argmax(1)
        .eq(set.labels)
        .to(torch::kDouble)
        .mean()
        .item<double>();
  }
  double test_accuracy(Classifier& model) {
    return predict_logits(model, images_tensor(dataset_->test, *dataset_), 100, torch::kCPU)
        .argmax(1)
        .eq(labels_tensor(dataset_->test))
        .to(torch::kDouble)
        .mean()
        .item<double>();
  }

  static Dataset* dataset_;
  static Classifier* original_;
  static Vae* vae_;
  std::vector<LabelledScenario> scenarios_;
  LabelledImages train_, held_out_, failures_;
};
Dataset* Correction::dataset_ = nullptr;
Classifier* Correction::original_ = nullptr;
Vae* Correction::vae_ = nullptr;

TEST_F(Correction, ScenarioSamplesAreDeterministicAndStreamsDiffer) {
  EXPECT_EQ(train_.size(), 128);
  EXPECT_EQ(train_.images.dtype(), torch::kUInt8);
  EXPECT_TRUE(torch::all(train_.labels.eq(scenarios_[0].label)).item<bool>());
  auto again = sample_scenarios(*vae_, scenarios_, 128, 1.0, 1, kTrainSampleStream, "cpu", 7);  // other batching
  EXPECT_TRUE(torch::equal(again.images, train_.images));
  auto other = sample_scenarios(*vae_, scenarios_, 128, 1.0, 1, kHeldOutStream, "cpu", 64);
  EXPECT_FALSE(torch::equal(other.images, train_.images));
  // A scenario from another latent space is a clear error.
  auto wrong = scenarios_;
  wrong[0].mean = torch::zeros({3});
  wrong[0].covariance = torch::eye(3);
  EXPECT_THROW(sample_scenarios(*vae_, wrong, 4, 1.0, 1, 1, "cpu", 8), StateError);
}

TEST_F(Correction, LambdaFixesTheScenarioAndKeepsTheTestAccuracy) {
  const double before_scenario = accuracy(*original_, held_out_);
  const double before_test = test_accuracy(*original_);
  ASSERT_LT(before_scenario, 0.5);
  ASSERT_GT(before_test, 0.9);
  auto params_before = original_->parameters().front().clone();

  auto result = correct_classifier(*original_, images_tensor(dataset_->train, *dataset_),
                                   labels_tensor(dataset_->train), train_, failures_, options());
  ASSERT_EQ(result.models.size(), 3u);
  EXPECT_EQ(result.models[0].name, "lambda=0");
  EXPECT_EQ(result.models[1].name, "lambda=1");
  EXPECT_EQ(result.models[2].name, "baseline");
  EXPECT_EQ(result.models[2].lambda, -1);
  EXPECT_EQ(result.scenarios, 1);
  EXPECT_EQ(result.baseline_failures, 3);
  EXPECT_EQ(result.models[1].steps, 2 * ((300 + 31) / 32));
  // The original is untouched.
  EXPECT_TRUE(torch::equal(original_->parameters().front(), params_before));

  auto& plain = *result.models[0].model;
  auto& corrected = *result.models[1].model;
  auto& baseline = *result.models[2].model;
  EXPECT_GT(accuracy(corrected, held_out_), 0.9);
  EXPECT_GE(test_accuracy(corrected), before_test - 0.05);
  // λ = 0 is plain fine-tuning: the scenario stays broken.
  EXPECT_LT(accuracy(plain, held_out_), 0.5);
  // The baseline learnt its three failures at least.
  EXPECT_EQ(accuracy(baseline, failures_), 1.0);
  EXPECT_GT(result.models[1].scenario_loss, 0);
  EXPECT_EQ(result.models[2].train_loss, 0);
}

TEST_F(Correction, EarlyStopEndsAModelWhenItsHeldOutSamplesStopImproving) {
  auto o = options();
  o.lambdas = {1.0};
  o.baseline = false;
  o.epochs = 20;  // 200 steps at most
  o.check_every = 5;
  o.patience = 2;
  o.holdout = 4;
  auto train = images_tensor(dataset_->train, *dataset_);
  auto labels = labels_tensor(dataset_->train);
  auto stopped = correct_classifier(*original_, train, labels, train_, failures_, o);
  const auto& m = stopped.models.at(0);
  EXPECT_LT(m.steps, 200);
  EXPECT_EQ(m.steps % 5, 0);
  EXPECT_GE(m.steps, 15);  // a best check, then two without a rise
  EXPECT_GT(m.check_accuracy, 0.9);
  EXPECT_GT(accuracy(*m.model, held_out_), 0.9);
  // The same run again stops at the same step with the same weights.
  auto again = correct_classifier(*original_, train, labels, train_, failures_, o);
  EXPECT_EQ(again.models[0].steps, m.steps);
  EXPECT_TRUE(torch::equal(again.models[0].model->parameters().front(), m.model->parameters().front()));
  // patience 0: every epoch, no check.
  o.patience = 0;
  auto full = correct_classifier(*original_, train, labels, train_, failures_, o);
  EXPECT_EQ(full.models[0].steps, 200);
  EXPECT_EQ(full.models[0].check_accuracy, -1);
  o.holdout = 1;
  EXPECT_THROW(correct_classifier(*original_, train, labels, train_, failures_, o), ConfigError);
}

TEST_F(Correction, EachModelDependsOnlyOnItsLambdaAndTheSeed) {
  auto o = options();
  o.baseline = false;
  auto sweep = correct_classifier(*original_, images_tensor(dataset_->train, *dataset_), labels_tensor(dataset_->train),
                                  train_, failures_, o);
  o.lambdas = {1.0};
  auto alone = correct_classifier(*original_, images_tensor(dataset_->train, *dataset_), labels_tensor(dataset_->train),
                                  train_, failures_, o);
  auto a = sweep.models[1].model->parameters(), b = alone.models[0].model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  o.seed = 6;
  auto reseeded = correct_classifier(*original_, images_tensor(dataset_->train, *dataset_),
                                     labels_tensor(dataset_->train), train_, failures_, o);
  EXPECT_FALSE(torch::equal(reseeded.models[0].model->parameters().front(), b.front()));
}

TEST_F(Correction, BadOptionsAndInputsAreClearErrors) {
  auto train_images = images_tensor(dataset_->train, *dataset_);
  auto train_labels = labels_tensor(dataset_->train);
  auto message = [&](CorrectOptions o, const LabelledImages& failures) {
    return test::error_message<Error>(
        [&] { correct_classifier(*original_, train_images, train_labels, train_, failures, o); });
  };
  auto o = options();
  o.lambdas = {-0.5};
  EXPECT_TRUE(test::contains(message(o, failures_), "--lambda values must be non-negative"));
  o = options();
  o.lambdas = {0.1, 0.1};
  EXPECT_TRUE(test::contains(message(o, failures_), "given twice"));
  o = options();
  o.optimizer = "rmsprop";
  EXPECT_TRUE(test::contains(message(o, failures_), "--optimizer"));
  o = options();
  o.lambdas.clear();
  o.baseline = false;
  EXPECT_TRUE(test::contains(message(o, failures_), "nothing to train"));
  o = options();
  EXPECT_TRUE(test::contains(message(o, LabelledImages{}), "baseline needs the failures"));
  // Labels the classifier cannot output.
  auto bad = train_;
  bad.labels = torch::full_like(bad.labels, 7);
  o.baseline = false;
  EXPECT_TRUE(test::contains(test::error_message<StateError>([&] {
                               correct_classifier(*original_, train_images, train_labels, bad, failures_, o);
                             }),
                             "outside the classifier's 2 classes"));
}

// A model's scores for the choice and the JSON round trip.
// The choice rule's options: a test budget, a tie tolerance, a score that counts as fixed.
EvaluateOptions rule(double max_test_drop, double tie = 0, double enough = 0) {
  EvaluateOptions o;
  o.max_test_drop = max_test_drop;
  o.tie = tie;
  o.enough = enough;
  return o;
}

ModelScores model(std::string name, double lambda, double test, double scenario) {
  ModelScores m;
  m.name = std::move(name);
  m.lambda = lambda;
  m.test_accuracy = test;
  m.scenario_accuracy = scenario;
  return m;
}

TEST(ChooseModel, GenuineScenarioAccuracyDecidesWhenThereIsOne) {
  auto scored = [](std::string name, double lambda, double test, double scenario, double genuine) {
    ModelScores m = model(std::move(name), lambda, test, scenario);
    m.genuine_scenario_accuracy = genuine;
    return m;
  };
  EvaluationResult r;
  // λ = 1 fits every labelled scenario best, λ = 0.1 the genuine ones.
  r.models = {scored("original", -1, 0.99, 0.1, 0.05), scored("lambda=0.1", 0.1, 0.99, 0.7, 0.95),
              scored("lambda=1", 1, 0.99, 0.9, 0.80)};
  choose_model(r, rule(0.002));
  EXPECT_TRUE(r.by_genuine);
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  EXPECT_TRUE(test::contains(r.rule, "genuine-scenario")) << r.rule;
  auto j = evaluation_json(r);
  EXPECT_DOUBLE_EQ(j["models"][1]["genuine_scenario_accuracy"].get<double>(), 0.95);
  // Without genuine scenarios, all scenarios decide, and the key is null.
  for (auto& m : r.models) m.genuine_scenario_accuracy = -1;
  choose_model(r, rule(0.002));
  EXPECT_FALSE(r.by_genuine);
  EXPECT_EQ(r.chosen_model().name, "lambda=1");
  EXPECT_TRUE(evaluation_json(r)["models"][1]["genuine_scenario_accuracy"].is_null());
}

TEST(ScoreModel, GenuineScenarioAccuracyCountsOnlyTheGenuineScenariosDraws) {
  test::TempDir tmp;
  // A classifier that always answers 1: right on scenario 0's draws (label 1), wrong on
  // scenario 1's (label 0).
  test::write_torchscript_constant(tmp.path() / "one.pt", {0.0f, 5.0f});
  auto model = load_classifier(tmp.path() / "one.pt", torch::kCPU);
  LabelledImages held_out;
  held_out.images = torch::zeros({6, 1, 4, 4}, torch::kUInt8);
  held_out.labels = torch::tensor({1, 1, 1, 0, 0, 0}, torch::kLong);
  held_out.scenario = torch::tensor({0, 0, 0, 1, 1, 1}, torch::kLong);
  EvaluateOptions o;
  at::Tensor pred;
  auto s = score_model(*model, "original", -1, torch::zeros({0, 1, 4, 4}, torch::kUInt8),
                       torch::zeros({0}, torch::kLong), held_out, LabelledImages{}, 3, o, {true, false, false}, &pred);
  EXPECT_DOUBLE_EQ(s.scenario_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s.genuine_scenario_accuracy, 1.0);
  EXPECT_EQ(pred.size(0), 6);
  ASSERT_EQ(s.per_scenario.size(), 3u);
  EXPECT_DOUBLE_EQ(s.per_scenario[2], -1.0) << "a scenario with no draws is not evaluated";
  auto none = score_model(*model, "original", -1, torch::zeros({0, 1, 4, 4}, torch::kUInt8),
                          torch::zeros({0}, torch::kLong), held_out, LabelledImages{}, 3, o, {false, false, false});
  EXPECT_DOUBLE_EQ(none.genuine_scenario_accuracy, -1.0);
}

// Held-out failure accuracy: over the draws the original misreads (of the genuine scenarios
// when there are any), so the original scores 0 and a model's figure is what it fixed.
TEST(ScoreHeldoutFailures, CountsOnlyTheDrawsTheOriginalMisreads) {
  LabelledImages held_out;
  held_out.images = torch::zeros({6, 1, 4, 4}, torch::kUInt8);
  held_out.labels = torch::tensor({1, 1, 1, 2, 2, 2}, torch::kLong);
  held_out.scenario = torch::tensor({0, 0, 0, 1, 1, 1}, torch::kLong);
  EvaluationResult r;
  r.models.resize(2);
  r.models[0].name = "original";
  r.models[1].name = "lambda=0.1";
  // The original misreads draws 1, 2 (scenario 0) and 3 (scenario 1).
  const auto original = torch::tensor({1, 0, 0, 0, 2, 2}, torch::kLong);
  // The corrected model fixes draw 1, not 2, and 3; it breaks draw 0, which does not count.
  const auto corrected = torch::tensor({0, 1, 0, 2, 2, 2}, torch::kLong);
  score_heldout_failures(r, {original, corrected}, held_out, {false, false});
  EXPECT_EQ(r.heldout_failures, 3);  // no genuine scenario: every scenario's failures
  EXPECT_DOUBLE_EQ(r.models[0].heldout_failure_accuracy, 0.0);
  EXPECT_DOUBLE_EQ(r.models[1].heldout_failure_accuracy, 2.0 / 3.0);
  score_heldout_failures(r, {original, corrected}, held_out, {true, false});
  EXPECT_EQ(r.heldout_failures, 2);  // scenario 0's only
  EXPECT_DOUBLE_EQ(r.models[1].heldout_failure_accuracy, 0.5);
  // No failure of the original among the draws: not measured.
  score_heldout_failures(r, {held_out.labels, corrected}, held_out, {});
  EXPECT_EQ(r.heldout_failures, 0);
  EXPECT_DOUBLE_EQ(r.models[1].heldout_failure_accuracy, -1.0);
  EXPECT_THROW(score_heldout_failures(r, {original}, held_out, {}), Error);
}

TEST(ConfirmedDraws, KeepOnlyTheDrawsWhoseLabelTheJudgesConfirm) {
  test::TempDir tmp;
  test::write_torchscript_constant(tmp.path() / "one.pt", {0.0f, 5.0f});
  JudgePanel panel;
  panel.add(load_classifier(tmp.path() / "one.pt", torch::kCPU), {"judge-1", "one.pt", "torchscript"});
  LabelledImages draws;
  draws.images = torch::zeros({5, 1, 4, 4}, torch::kUInt8);
  draws.labels = torch::tensor({1, 0, 1, 0, 1}, torch::kLong);
  draws.scenario = torch::tensor({0, 1, 0, 1, 2}, torch::kLong);
  std::vector<int64_t> kept;
  auto out = keep_confirmed_draws(draws, panel, VerdictRule{}, 4, "cpu", &kept);
  EXPECT_EQ(out.size(), 3);
  EXPECT_TRUE(torch::all(out.labels.eq(1)).item<bool>());
  EXPECT_EQ(kept, (std::vector<int64_t>{2, 0, 1, 0}));
}

TEST(ChooseModel, BestScenarioAccuracyWithinTheTestBudget) {
  EvaluationResult r;
  r.models = {model("original", -1, 0.990, 0.10), model("lambda=0.01", 0.01, 0.990, 0.40),
              model("lambda=0.1", 0.1, 0.9885, 0.80), model("lambda=1", 1, 0.985, 0.97),
              model("baseline", -1, 0.95, 0.99)};
  choose_model(r, rule(0.002));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");  // λ = 1 drops 0.5 points; the baseline is never chosen
  EXPECT_TRUE(r.within_budget);
  EXPECT_TRUE(test::contains(r.rule, "0.20 points"));
  choose_model(r, rule(0.01));
  EXPECT_EQ(r.chosen_model().name, "lambda=1");
  // Ties in scenario accuracy: the smaller λ.
  r.models[2].scenario_accuracy = 0.97;
  choose_model(r, rule(0.01));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  // Within the tie tolerance of the best: also the smaller λ; outside it, the better score.
  r.models[2].scenario_accuracy = 0.966;
  choose_model(r, rule(0.01));
  EXPECT_EQ(r.chosen_model().name, "lambda=1");
  choose_model(r, rule(0.01, 0.005));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  EXPECT_TRUE(test::contains(r.rule, "within 0.5 points of the best")) << r.rule;
  r.models[2].scenario_accuracy = 0.96;
  choose_model(r, rule(0.01, 0.005));
  EXPECT_EQ(r.chosen_model().name, "lambda=1");
  r.models[2].scenario_accuracy = 0.97;
  // Nobody within budget: the smallest drop, flagged.
  for (size_t i = 1; i < 4; ++i) r.models[i].test_accuracy = 0.9 + 0.01 * static_cast<double>(i);
  choose_model(r, rule(0.002));
  EXPECT_FALSE(r.within_budget);
  EXPECT_EQ(r.chosen_model().name, "lambda=1");
  EXPECT_TRUE(test::contains(r.rule, "smallest drop"));

  auto j = evaluation_json(r);
  EXPECT_EQ(j["chosen"], "lambda=1");
  EXPECT_EQ(j["lambda"], 1.0);
  EXPECT_EQ(j["models"][0]["lambda"], nullptr);
  EXPECT_EQ(j["models"].size(), 5u);
  auto csv = evaluation_csv(r);
  EXPECT_EQ(csv.substr(0, csv.find('\r')),
            "name,lambda,test_accuracy,test_drop,scenario_accuracy,genuine_scenario_accuracy,failure_accuracy,"
            "heldout_failure_accuracy,chosen");
  EXPECT_TRUE(test::contains(csv, "lambda=1,1,0.930000,0.060000,0.970000,,,,true"));
}

TEST(ChooseModel, TheCheapestFixWhenSomeModelReachesEnough) {
  // MNIST's sweep of 2026-12-02 (docs/benchmarks.md): every λ within the 0.2-point budget, the
  // largest the best on the genuine scenarios.
  auto scored = [](std::string name, double lambda, double test, double genuine) {
    ModelScores m = model(std::move(name), lambda, test, genuine);
    m.genuine_scenario_accuracy = genuine;
    return m;
  };
  EvaluationResult r;
  r.models = {scored("original", -1, 0.9952, 0.807), scored("lambda=0.03", 0.03, 0.9948, 0.956),
              scored("lambda=0.1", 0.1, 0.9940, 0.989), scored("lambda=0.3", 0.3, 0.9935, 1.0),
              scored("baseline", -1, 0.8086, 0.998)};
  choose_model(r, rule(0.002, 0.005));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.3");  // the best score
  choose_model(r, rule(0.002, 0.005, 0.9));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.03");  // the highest test accuracy of the three fixes
  EXPECT_TRUE(r.within_budget);
  EXPECT_TRUE(test::contains(r.rule, "cheapest fix")) << r.rule;
  EXPECT_TRUE(test::contains(r.rule, "90%")) << r.rule;
  // λ = 0.03 falls short of 99%: the best test accuracy among those that reach it.
  choose_model(r, rule(0.002, 0.005, 0.99));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.3");
  r.models[2].genuine_scenario_accuracy = 0.995;
  choose_model(r, rule(0.002, 0.005, 0.99));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  // A fix outside the test budget does not count; the baseline is never chosen.
  r.models[1].test_accuracy = 0.9920;
  r.models[1].genuine_scenario_accuracy = 1.0;
  choose_model(r, rule(0.002, 0.005, 0.9));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  // Equal test accuracy: the smaller λ.
  r.models[3].test_accuracy = 0.9940;
  choose_model(r, rule(0.002, 0.005, 0.9));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  // Nobody reaches it: the best score within the budget (0.995 ties with 0.999), and the rule
  // says so.
  r.models[3].genuine_scenario_accuracy = 0.999;
  choose_model(r, rule(0.002, 0.005, 1.0));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.1");
  choose_model(r, rule(0.002, 0, 1.0));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.3");
  EXPECT_TRUE(test::contains(r.rule, "none reached 100%")) << r.rule;
  // An original that already reaches `enough` has nothing to fix by that measure: the best score.
  r.models[0].genuine_scenario_accuracy = 0.95;
  choose_model(r, rule(0.002, 0, 0.9));
  EXPECT_EQ(r.chosen_model().name, "lambda=0.3");
  EXPECT_TRUE(test::contains(r.rule, "original already reaches 90%")) << r.rule;
  // More than 100% is refused.
  EXPECT_THROW(rule(0.002, 0.005, 1.5).validate(), ConfigError);
}

TEST(EvaluationFromJson, ReadsBackWhatEvaluationJsonWrote) {
  EvaluationResult r;
  r.models = {model("original", -1, 0.99, 0.1), model("lambda=0.1", 0.1, 0.985, 0.8), model("baseline", -1, 0.9, 0.7)};
  for (auto& m : r.models) m.per_scenario = {m.scenario_accuracy, m.scenario_accuracy / 2};
  r.models[1].genuine_scenario_accuracy = 0.75;
  r.models[1].failure_accuracy = 0.5;
  r.models[1].heldout_failure_accuracy = 0.625;
  r.scenario_ids = {3, 7};
  r.scenario_labels = {1, 0};
  r.scenario_verdicts = {"genuine", ""};
  r.scenario_draws = {100, 28};
  r.test_images = 500;
  r.scenario_images = 128;
  r.failure_images = 9;
  r.draws_drawn = 256;
  r.heldout_failures = 40;
  choose_model(r, rule(0.01));
  const EvaluationResult back = evaluation_from_json(evaluation_json(r));
  EXPECT_EQ(evaluation_json(back), evaluation_json(r));
  EXPECT_EQ(back.chosen_model().name, r.chosen_model().name);
  EXPECT_DOUBLE_EQ(back.models[1].genuine_scenario_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(back.models[0].genuine_scenario_accuracy, -1);
  EXPECT_EQ(back.models[2].lambda, -1);
  EXPECT_EQ(back.heldout_failures, 40);

  // A missing key, a model the choice does not list, a wrong type: errors naming it, never 0.
  auto j = evaluation_json(r);
  j.erase("heldout_failures");
  EXPECT_TRUE(test::contains(test::error_message<StateError>([&] { evaluation_from_json(j); }), "heldout_failures"));
  j = evaluation_json(r);
  j["chosen"] = "lambda=9";
  EXPECT_TRUE(test::contains(test::error_message<StateError>([&] { evaluation_from_json(j); }), "lambda=9"));
  j = evaluation_json(r);
  j["models"][1]["test_accuracy"] = "high";
  EXPECT_TRUE(test::contains(test::error_message<StateError>([&] { evaluation_from_json(j); }), "malformed"));
}

}  // namespace
}  // namespace defuse
