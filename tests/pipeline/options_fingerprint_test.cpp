// Every option of every stage reaches the stage's fingerprint (options_json), so that no
// changed option lets a stale stage count as up to date under --skip-unchanged (what `defuse
// run` does). Each test changes one field at a time and expects the fingerprint to change;
// the fields that must not count are listed with the reason. A size guard fails when a field
// is added to an options struct, until it is added here (and, if it changes results, to the
// stage's options_json).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "defuse/pipeline/classifier_stage.h"
#include "defuse/pipeline/correct_stage.h"
#include "defuse/pipeline/distill_stage.h"
#include "defuse/pipeline/evaluate_stage.h"
#include "defuse/pipeline/identify_stage.h"
#include "defuse/pipeline/judges_stage.h"
#include "defuse/pipeline/report_stage.h"
#include "defuse/pipeline/vae_stage.h"

namespace defuse {
namespace {

using nlohmann::json;

template <typename O>
using Changes = std::vector<std::pair<std::string, std::function<void(O&)>>>;

template <typename O>
void expect_each_change_counts(const std::string& stage, const std::function<json(const O&)>& fingerprint,
                               const Changes<O>& changes) {
  const O defaults{};
  const json base = fingerprint(defaults);
  for (const auto& [field, change] : changes) {
    O changed = defaults;
    change(changed);
    EXPECT_NE(fingerprint(changed).dump(), base.dump())
        << stage << ": a change of " << field << " leaves the fingerprint as it was";
  }
}

// The sizes of the options structs as this test knows them (x86-64, libstdc++). A new field
// changes the size: add the field to the changes below (or to the exclusions, with a reason).
TEST(OptionsFingerprint, TheTestKnowsEveryField) {
  EXPECT_EQ(sizeof(TrainClassifierOptions), 184u) << "a field was added to TrainClassifierOptions";
  EXPECT_EQ(sizeof(TrainJudgesOptions), 176u) << "a field was added to TrainJudgesOptions";
  EXPECT_EQ(sizeof(TrainVaeOptions), 248u) << "a field was added to TrainVaeOptions";
  EXPECT_EQ(sizeof(IdentifyOptions), 336u) << "a field was added to IdentifyOptions";
  EXPECT_EQ(sizeof(DistillOptions), 272u) << "a field was added to DistillOptions";
  EXPECT_EQ(sizeof(CorrectOptions), 280u) << "a field was added to CorrectOptions";
  EXPECT_EQ(sizeof(EvaluateOptions), 96u) << "a field was added to EvaluateOptions";
  EXPECT_EQ(sizeof(ReportStageOptions), 96u) << "a field was added to ReportStageOptions";
  // The stages' own fields around the options above.
  EXPECT_EQ(sizeof(ClassifierStageOptions), 248u) << "a field was added to ClassifierStageOptions";
  EXPECT_EQ(sizeof(JudgesStageOptions), 208u) << "a field was added to JudgesStageOptions";
  EXPECT_EQ(sizeof(VaeStageOptions), 280u) << "a field was added to VaeStageOptions";
  EXPECT_EQ(sizeof(IdentifyStageOptions), 416u) << "a field was added to IdentifyStageOptions";
  EXPECT_EQ(sizeof(DistillStageOptions), 304u) << "a field was added to DistillStageOptions";
  EXPECT_EQ(sizeof(CorrectStageOptions), 352u) << "a field was added to CorrectStageOptions";
  EXPECT_EQ(sizeof(EvaluateStageOptions), 160u) << "a field was added to EvaluateStageOptions";
}

TEST(OptionsFingerprint, TrainClassifier) {
  // Not counted: train.device (the device argument is), eval_batch_size (evaluation only),
  // on_progress (a callback).
  std::function<json(const ClassifierStageOptions&)> f = [](const ClassifierStageOptions& o) {
    return options_json(o, "cpu");
  };
  expect_each_change_counts<ClassifierStageOptions>("train-classifier", f,
                                                    {{"data", [](auto& o) { o.data = "mnist:DIR"; }},
                                                     {"classifier", [](auto& o) { o.classifier = "mine.pt"; }},
                                                     {"arch", [](auto& o) { o.train.arch = "mlp"; }},
                                                     {"epochs", [](auto& o) { o.train.epochs += 1; }},
                                                     {"batch_size", [](auto& o) { o.train.batch_size += 1; }},
                                                     {"lr", [](auto& o) { o.train.lr *= 2; }},
                                                     {"weight_decay", [](auto& o) { o.train.weight_decay *= 2; }},
                                                     {"augment", [](auto& o) { o.train.augment = !o.train.augment; }},
                                                     {"seed", [](auto& o) { o.train.seed += 1; }}});
  EXPECT_NE(options_json(ClassifierStageOptions{}, "cpu"), options_json(ClassifierStageOptions{}, "cuda"));
  // precision counts as resolved, and fp32 (the default) is the fingerprint of before the
  // option, so existing workspaces stay up to date.
  ClassifierStageOptions fp32, bf16;
  bf16.train.precision = "bf16";
  EXPECT_NE(f(fp32), f(bf16));
  EXPECT_FALSE(f(fp32).contains("precision"));
}

TEST(OptionsFingerprint, TrainJudges) {
  // archs is counted as resolved (the caller passes what "auto" stands for); device as given.
  std::function<json(const JudgesStageOptions&)> f = [](const JudgesStageOptions& o) {
    return options_json(o, o.data, o.train.archs, "cpu");
  };
  expect_each_change_counts<JudgesStageOptions>("train-judges", f,
                                                {{"data", [](auto& o) { o.data = "mnist:DIR"; }},
                                                 {"archs", [](auto& o) { o.train.archs = {"mlp"}; }},
                                                 {"files", [](auto& o) { o.train.files = {"judge.pt"}; }},
                                                 {"epochs", [](auto& o) { o.train.epochs += 1; }},
                                                 {"batch_size", [](auto& o) { o.train.batch_size = 64; }},
                                                 {"augment", [](auto& o) { o.train.augment = !o.train.augment; }},
                                                 {"seed", [](auto& o) { o.train.seed += 1; }}});
  // The batch size of before the option (128) stays out of the fingerprint.
  EXPECT_FALSE(f(JudgesStageOptions{}).contains("batch_size"));
  JudgesStageOptions fp32, bf16;
  fp32.train.precision = "fp32";
  bf16.train.precision = "bf16";
  EXPECT_NE(f(fp32), f(bf16));
  EXPECT_FALSE(f(fp32).contains("precision"));
}

TEST(OptionsFingerprint, TrainVae) {
  // Not counted: device (the argument), eval_batch_size (evaluation and encoding batches),
  // encode_splits (the stage always encodes), on_progress. precision counts as resolved:
  // "bf16" differs from fp32 everywhere, "auto" is whatever this CPU makes of it.
  Dataset grey;
  grey.channels = 1;
  grey.height = grey.width = 28;
  std::function<json(const VaeStageOptions&)> f = [&](const VaeStageOptions& o) {
    return options_json(o, o.data, grey, "cpu");
  };
  Changes<VaeStageOptions> changes{{"data", [](auto& o) { o.data = "mnist:DIR"; }},
                                   {"latent", [](auto& o) { o.train.latent = 7; }},
                                   {"filters", [](auto& o) { o.train.filters = 8; }},
                                   {"decoder", [](auto& o) { o.train.decoder = "transposed"; }},
                                   {"loss", [](auto& o) { o.train.loss = "mse"; }},
                                   {"beta", [](auto& o) { o.train.beta = 0.5; }},
                                   {"anneal_steps", [](auto& o) { o.train.anneal_steps = 17; }},
                                   {"epochs", [](auto& o) { o.train.epochs += 1; }},
                                   {"batch_size", [](auto& o) { o.train.batch_size += 1; }},
                                   {"lr", [](auto& o) { o.train.lr *= 2; }},
                                   {"weight_decay", [](auto& o) { o.train.weight_decay *= 2; }},
                                   {"seed", [](auto& o) { o.train.seed += 1; }}};
  expect_each_change_counts<VaeStageOptions>("train-vae", f, changes);
  // β counts as resolved: the default on grey images is the β = 1 every grey VAE trained with
  // before, so their workspaces stay up to date.
  VaeStageOptions auto_beta, one;
  one.train.beta = 1;
  EXPECT_EQ(f(auto_beta), f(one));
  VaeStageOptions fp32, bf16;
  fp32.train.precision = "fp32";
  bf16.train.precision = "bf16";
  EXPECT_NE(f(fp32), f(bf16));
}

TEST(OptionsFingerprint, Identify) {
  // Not counted: search.device (the resolved precision counts; identify never recorded its
  // device), batch_size
  // (decodes per pass: the same failures), on_progress; only_correct and check_reconstruction
  // are set from all_seeds and keep_bad_reconstructions, which count; realism_reference and
  // rejected_examples are constants no command sets. beta_a/b count with noise "beta", sigma
  // with "gaussian", levels with search "growing", verdict with judges.
  std::function<json(const IdentifyStageOptions&)> f = [](const IdentifyStageOptions& o) {
    return options_json(o, o.data, true, o.search.precision);
  };
  expect_each_change_counts<IdentifyStageOptions>(
      "identify", f,
      {{"data", [](auto& o) { o.data = "mnist:DIR"; }},
       {"split", [](auto& o) { o.split = "test"; }},
       {"all_seeds", [](auto& o) { o.all_seeds = true; }},
       {"keep_bad_reconstructions", [](auto& o) { o.keep_bad_reconstructions = true; }},
       {"grid", [](auto& o) { o.grid += 1; }},
       {"samples", [](auto& o) { o.search.samples += 1; }},
       {"keep", [](auto& o) { o.search.keep += 1; }},
       {"noise", [](auto& o) { o.search.noise = "beta"; }},
       {"sigma", [](auto& o) { o.search.sigma *= 2; }},
       {"search", [](auto& o) { o.search.search = "growing"; }},
       {"max_seeds", [](auto& o) { o.search.max_seeds += 1; }},
       {"seed", [](auto& o) { o.search.seed += 1; }},
       {"precision", [](auto& o) { o.search.precision = "bf16"; }},
       {"gate", [](auto& o) { o.search.gate = "plausible"; }},
       {"verdict.min_agreement", [](auto& o) { o.search.verdict.min_agreement /= 2; }},
       {"verdict.min_confidence", [](auto& o) { o.search.verdict.min_confidence /= 2; }},
       {"neighbours", [](auto& o) { o.search.neighbours += 1; }}});
  IdentifyStageOptions beta, beta_a, growing, growing_levels;
  beta.search.noise = beta_a.search.noise = "beta";
  beta_a.search.beta_a += 1;
  EXPECT_NE(f(beta), f(beta_a)) << "beta_a";
  beta_a = beta;
  beta_a.search.beta_b += 1;
  EXPECT_NE(f(beta), f(beta_a)) << "beta_b";
  growing.search.search = growing_levels.search.search = "growing";
  growing_levels.search.levels = {0.5, 1.0};
  EXPECT_NE(f(growing), f(growing_levels)) << "levels";
  IdentifyStageOptions o;
  EXPECT_NE(options_json(o, "", true, "fp32"), options_json(o, "", false, "fp32")) << "judges: the gate resolves";
  IdentifyStageOptions wide;
  wide.search.screen_margin *= 2;
  EXPECT_NE(options_json(o, "", true, "bf16"), options_json(wide, "", true, "bf16")) << "screen_margin with bf16";
  EXPECT_EQ(options_json(o, "", true, "fp32"), options_json(wide, "", true, "fp32")) << "screen_margin is bf16's";
}

TEST(OptionsFingerprint, Distill) {
  // Not counted: device and batch_size (where and in what batches it decodes), on_iteration;
  // data counts through the dataset's fingerprint in the stage's inputs.
  std::function<json(const DistillStageOptions&)> f = [](const DistillStageOptions& o) {
    return options_json(o.distill);
  };
  expect_each_change_counts<DistillStageOptions>(
      "distill", f,
      {{"points", [](auto& o) { o.distill.points = "failures"; }},
       {"min_seeds", [](auto& o) { o.distill.min_seeds += 1; }},
       {"components", [](auto& o) { o.distill.components += 1; }},
       {"covariance", [](auto& o) { o.distill.covariance = "diag"; }},
       {"concentration", [](auto& o) { o.distill.concentration = 0.5; }},
       {"max_iter", [](auto& o) { o.distill.max_iter += 1; }},
       {"tol", [](auto& o) { o.distill.tol *= 2; }},
       {"reg_covar", [](auto& o) { o.distill.reg_covar *= 2; }},
       {"n_init", [](auto& o) { o.distill.n_init += 1; }},
       {"min_weight", [](auto& o) { o.distill.min_weight *= 2; }},
       {"tau", [](auto& o) { o.distill.tau *= 2; }},
       {"samples", [](auto& o) { o.distill.samples += 1; }},
       {"shown", [](auto& o) { o.distill.shown += 1; }},
       {"show_tau", [](auto& o) { o.distill.show_tau *= 2; }},
       {"verdict.min_agreement", [](auto& o) { o.distill.verdict.min_agreement /= 2; }},
       {"verdict.min_confidence", [](auto& o) { o.distill.verdict.min_confidence /= 2; }},
       {"neighbours", [](auto& o) { o.distill.neighbours += 1; }},
       {"min_failure_rate", [](auto& o) { o.distill.min_failure_rate = 0.25; }},
       {"seed", [](auto& o) { o.distill.seed += 1; }}});
}

TEST(OptionsFingerprint, Correct) {
  // Not counted: device, sample_batch_size (decodes per pass), on_progress, allow_nothing
  // (what happens when nothing is confirmed, not what is trained); tau counts as resolved (the
  // argument: the option, or distill's), data through the dataset's fingerprint.
  std::function<json(const CorrectStageOptions&)> f = [](const CorrectStageOptions& o) {
    return options_json(o.correct, o.correct.tau.value_or(1.0), o.confirm);
  };
  expect_each_change_counts<CorrectStageOptions>(
      "correct", f,
      {{"confirm", [](auto& o) { o.confirm = "none"; }},
       {"lambdas", [](auto& o) { o.correct.lambdas = {0.5}; }},
       {"baseline", [](auto& o) { o.correct.baseline = !o.correct.baseline; }},
       {"epochs", [](auto& o) { o.correct.epochs += 1; }},
       {"batch_size", [](auto& o) { o.correct.batch_size += 1; }},
       {"scenario_batch_size", [](auto& o) { o.correct.scenario_batch_size += 1; }},
       {"optimizer", [](auto& o) { o.correct.optimizer = "adam"; }},
       {"lr", [](auto& o) { o.correct.lr *= 2; }},
       {"momentum", [](auto& o) { o.correct.momentum /= 2; }},
       {"weight_decay", [](auto& o) { o.correct.weight_decay = 0.01; }},
       {"freeze_batch_norm", [](auto& o) { o.correct.freeze_batch_norm = !o.correct.freeze_batch_norm; }},
       {"samples_per_scenario", [](auto& o) { o.correct.samples_per_scenario += 1; }},
       {"tau", [](auto& o) { o.correct.tau = 0.5; }},
       {"patience", [](auto& o) { o.correct.patience += 1; }},
       {"check_every", [](auto& o) { o.correct.check_every += 1; }},
       {"min_improvement", [](auto& o) { o.correct.min_improvement *= 2; }},
       {"holdout", [](auto& o) { o.correct.holdout += 1; }},
       {"seed", [](auto& o) { o.correct.seed += 1; }}});
  // Early stopping off and fp32 leave the fingerprint of before both options.
  CorrectStageOptions fp32, bf16, off, off_other_check;
  fp32.correct.precision = off.correct.precision = off_other_check.correct.precision = "fp32";
  bf16.correct.precision = "bf16";
  EXPECT_NE(f(fp32), f(bf16));
  off.correct.patience = off_other_check.correct.patience = 0;
  off_other_check.correct.check_every += 1;
  EXPECT_EQ(f(off), f(off_other_check));
  EXPECT_FALSE(f(off).contains("patience"));
  EXPECT_FALSE(f(off).contains("precision"));
}

TEST(OptionsFingerprint, Evaluate) {
  // Not counted: device, batch_size (images per pass); tau as resolved, as in correct.
  std::function<json(const EvaluateStageOptions&)> f = [](const EvaluateStageOptions& o) {
    return options_json(o.evaluate, o.evaluate.tau.value_or(1.0), o.confirm);
  };
  expect_each_change_counts<EvaluateStageOptions>(
      "evaluate", f,
      {{"confirm", [](auto& o) { o.confirm = "none"; }},
       {"samples_per_scenario", [](auto& o) { o.evaluate.samples_per_scenario += 1; }},
       {"tau", [](auto& o) { o.evaluate.tau = 0.5; }},
       {"max_test_drop", [](auto& o) { o.evaluate.max_test_drop *= 2; }},
       {"tie", [](auto& o) { o.evaluate.tie *= 2; }},
       {"enough", [](auto& o) { o.evaluate.enough /= 2; }},
       {"seed", [](auto& o) { o.evaluate.seed += 1; }}});
}

TEST(OptionsFingerprint, Report) {
  // output counts as resolved (the caller passes the path it writes); data through the inputs.
  std::function<json(const ReportStageOptions&)> f = [](const ReportStageOptions& o) {
    return options_json(o, o.output);
  };
  expect_each_change_counts<ReportStageOptions>("report", f,
                                                {{"map_train", [](auto& o) { o.map_train += 1; }},
                                                 {"map_failures", [](auto& o) { o.map_failures += 1; }},
                                                 {"perplexity", [](auto& o) { o.perplexity *= 2; }},
                                                 {"seed", [](auto& o) { o.seed += 1; }},
                                                 {"output", [](auto& o) { o.output = "elsewhere.html"; }}});
}

}  // namespace
}  // namespace defuse
