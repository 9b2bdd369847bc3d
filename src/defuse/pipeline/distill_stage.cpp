#include "defuse/pipeline/distill_stage.h"

#include <fmt/format.h>

#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"
#include "defuse/model/vae_store.h"

namespace defuse {
namespace {

using nlohmann::json;

std::string scenario_table(const ScenarioSet& set) {
  std::string out =
      fmt::format("{:>3}  {:>7}  {:>8}  {:>7}  {:<28}  {:>9}  {:<13} {:>8}  {}\n", "id", "weight", "fails", "members",
                  "seed label -> predicted", "neighbours", "verdict", "genuine", "judges read");
  for (const auto& s : set.scenarios) {
    std::string pair = fmt::format("{} -> {}", set.class_names.at(static_cast<size_t>(s.seed_label)),
                                   set.class_names.at(static_cast<size_t>(s.predicted_label)));
    const auto& v = s.validity;
    std::string judges = v.judge_label >= 0
                             ? fmt::format("{} ({})", set.class_names.at(static_cast<size_t>(v.judge_label)),
                                           percent(v.judge_agreement, 0))
                             : std::string("-");
    out += fmt::format("{:>3}  {:>7.3f}  {:>8}  {:>7}  {:<28}  {:>9}  {:<13} {:>8}  {}\n", s.id, s.weight,
                       percent(s.failure_rate, 0), s.members, pair,
                       s.neighbour_accuracy < 0 ? "-" : percent(s.neighbour_accuracy, 0), v.known() ? v.verdict : "-",
                       v.genuine_share < 0 ? "-" : percent(v.genuine_share, 0), judges);
  }
  return out;
}

}  // namespace

json options_json(const DistillOptions& o) {
  return {{"points", o.points},
          {"min_seeds", o.min_seeds},
          {"components", o.components},
          {"covariance", o.covariance},
          {"concentration", o.concentration},
          {"max_iter", o.max_iter},
          {"tol", o.tol},
          {"reg_covar", o.reg_covar},
          {"n_init", o.n_init},
          {"min_weight", o.min_weight},
          {"tau", o.tau},
          {"samples", o.samples},
          {"shown", o.shown},
          {"neighbours", o.neighbours},
          {"min_failure_rate", o.min_failure_rate},
          {"seed", o.seed},
          {"show_tau", o.show_tau},
          {"verdict", {{"agreement", o.verdict.min_agreement}, {"confidence", o.verdict.min_confidence}}},
          // 2: the truncation is capped by the number of points (distill_truncation)
          {"version", 2}};
}

DistillStageResult run_distill_stage(const StageEnv& env, DistillStageOptions options) {
  prepare_compute(env);
  DistillOptions* o = &options.distill;
  o->device = env.device;
  o->validate();
  auto device = parse_device(env.device, "distill");
  auto lock = hold_workspace(env, "distill");
  Workspace workspace(env.workspace);
  auto classifier = load_workspace_classifier(workspace, device);
  auto vae = load_workspace_vae(workspace, device);
  std::string judges_fingerprint;
  JudgePanel judges = load_workspace_judges(workspace, device, &judges_fingerprint);
  auto identify = workspace.require(kIdentifyStage, "identify");
  FailureSet failures = load_failures(workspace, identify);
  VaeCodes codes = load_vae_codes(workspace);
  Dataset dataset = load_dataset_logged(env, resolve_data_spec(workspace, options.data));
  check_vae_fits(*vae.model, dataset, "distill");
  validate_classifier(*classifier.model, dataset, "the workspace's classifier");
  if (codes.train.size(0) != dataset.train.size())
    throw StateError(
        fmt::format("distill: the VAE's codes cover {} training images but the dataset has {}: "
                    "run train-vae with this dataset",
                    codes.train.size(0), dataset.train.size()));
  json inputs = {{"dataset", dataset_fingerprint(dataset)},
                 {"classifier", classifier.record.fingerprint},
                 {"vae", vae.record.fingerprint},
                 {"identify", identify.fingerprint},
                 {"judges", judges_fingerprint}};
  if (!judges.empty() && !failures.validity.judged())
    env.warn(
        "distill: the failures were identified without the workspace's judges: run `defuse identify` "
        "again for verdicts");
  env.info(fmt::format("distill: fitting a DP-GMM (K at most {}, {} covariances) to {} failures ({})", o->components,
                       o->covariance, failures.size(), o->points == "seeds" ? "one point per seed" : "one point each"));
  Progress bar(env.log(), "DP-GMM", o->max_iter, env.progress());
  o->on_iteration = [&](int it, double lb) { bar.update(it, fmt::format("lower bound {:.2f}", lb)); };

  DistillStageResult r;
  json& summary = r.summary;
  ScenarioSet stored;
  StageRun run = run_stage(env, workspace, kDistillStage, options_json(*o), inputs, [&](int64_t run_id) {
    auto train_images = images_tensor(dataset.train, dataset);
    auto result = distill_scenarios(*vae.model, *classifier.model, failures, codes.train, train_images,
                                    labels_tensor(dataset.train), *o, &judges);
    bar.finish(fmt::format("{} iterations, {}", result.iterations, result.converged ? "converged" : "not converged"));
    stored = save_scenario_thumbnails(workspace, run_id, result, train_images, dataset.class_names, failures);
    json scenarios = json::array();
    for (const auto& s : stored.scenarios)
      scenarios.push_back({{"id", s.id},
                           {"component", s.component},
                           {"weight", s.weight},
                           {"failure_rate", s.failure_rate},
                           {"seed_label", s.seed_label},
                           {"seed_label_name", dataset.class_names[static_cast<size_t>(s.seed_label)]},
                           {"predicted_label", s.predicted_label},
                           {"predicted_label_name", dataset.class_names[static_cast<size_t>(s.predicted_label)]},
                           {"seed_label_share", s.seed_label_share},
                           {"predicted_share", s.predicted_share},
                           {"members", s.members},
                           {"neighbour_accuracy", s.neighbour_accuracy},
                           {"score", s.score},
                           {"validity", validity_json(s.validity)}});
    summary = {{"scenarios", static_cast<int64_t>(stored.scenarios.size())},
               {"candidates", result.candidates},
               {"single_seed", result.single_seed},
               {"points", result.points},
               {"failures", result.failures},
               {"components_used", result.components_used},
               {"truncation", result.truncation},
               {"iterations", result.iterations},
               {"converged", result.converged},
               {"lower_bound", result.lower_bound},
               {"fit_seconds", result.fit_seconds},
               {"seconds", result.seconds},
               {"per_scenario", scenarios}};
    if (!judges.empty()) {
      int64_t genuine = 0, changes = 0, ambiguous = 0;
      for (const auto& sc : stored.scenarios) {
        genuine += sc.validity.verdict == "genuine";
        changes += sc.validity.verdict == "label-change";
        ambiguous += sc.validity.verdict == "ambiguous";
      }
      summary["verdicts"] = {{"genuine", genuine}, {"label_change", changes}, {"ambiguous", ambiguous}};
    }
    Workspace::StageOutput out;
    out.metrics = summary;
    for (const auto& s : stored.scenarios) {
      for (const auto& img : s.samples) out.artifacts.emplace_back(img.path, img.path);
      for (const auto& img : s.member_images) out.artifacts.emplace_back(img.path, img.path);
      for (const auto& img : s.neighbours) out.artifacts.emplace_back(img.path, img.path);
    }
    out.extra = [&stored, run_id](Database& db) { write_scenarios(db, run_id, stored); };
    return out;
  });
  take_run(r, run);
  if (!env.json && !stored.scenarios.empty()) env.info(scenario_table(stored));
  std::string verdicts;
  r.scenarios = need(summary, "scenarios", "distill").get<int64_t>();
  r.failures = failures.size();
  if (summary.contains("verdicts")) {
    const json& v = summary["verdicts"];
    r.verdicts = VerdictCounts{need(v, "genuine", "distill's verdicts").get<int64_t>(),
                               need(v, "label_change", "distill's verdicts").get<int64_t>(),
                               need(v, "ambiguous", "distill's verdicts").get<int64_t>()};
    verdicts = fmt::format(": {} genuine, {} label changes (the classifier is right there), {} ambiguous",
                           r.verdicts->genuine, r.verdicts->label_change, r.verdicts->ambiguous);
  }
  r.text = fmt::format("distill: {} scenarios from {} failures ({} candidate components, {} iterations, {}){}",
                       r.scenarios, failures.size(), summary["candidates"].get<int64_t>(),
                       summary["iterations"].get<int>(), format_duration(summary["seconds"].get<double>()), verdicts);
  return r;
}

}  // namespace defuse
