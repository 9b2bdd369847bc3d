#include "defuse/pipeline/evaluate_stage.h"

#include <fmt/format.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/correct/correct_store.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/pipeline/correct_inputs.h"

namespace defuse {
namespace {

using nlohmann::json;

std::string accuracy_table(const EvaluationResult& r, const std::vector<std::string>& class_names) {
  std::string out = fmt::format("{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}\n", "model", "test", "drop", "genuine",
                                "scenario", "failures", "new fails");
  for (size_t i = 0; i < r.models.size(); ++i) {
    const auto& m = r.models[i];
    out += fmt::format("{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}{}\n", m.name, percent(m.test_accuracy),
                       fmt::format("{:+.2f}", 100 * (m.test_accuracy - r.original().test_accuracy)),
                       m.genuine_scenario_accuracy < 0 ? "-" : percent(m.genuine_scenario_accuracy, 1),
                       percent(m.scenario_accuracy, 1), m.failure_accuracy < 0 ? "-" : percent(m.failure_accuracy, 1),
                       m.heldout_failure_accuracy < 0 ? "-" : percent(m.heldout_failure_accuracy, 1),
                       i == r.chosen ? "  <- chosen" : "");
  }
  if (r.heldout_failures > 0)
    out += fmt::format("new fails: the {} held-out draws{} that the original misreads (no model trained on them)\n",
                       r.heldout_failures, r.by_genuine ? " of the genuine scenarios" : "");
  out += "\nper scenario (held-out draws; * genuine):\n" + fmt::format("{:<16}", "model");
  for (size_t k = 0; k < r.scenario_ids.size(); ++k)
    out +=
        fmt::format(" {:>8}", fmt::format("{}#{}:{}", r.scenario_verdicts[k] == "genuine" ? "*" : "", r.scenario_ids[k],
                                          class_names.at(static_cast<size_t>(r.scenario_labels[k])).substr(0, 5)));
  out += "\n";
  for (const auto& m : r.models) {
    out += fmt::format("{:<16}", m.name);
    for (double a : m.per_scenario) out += fmt::format(" {:>8}", percent(a, 0));
    out += "\n";
  }
  return out;
}

}  // namespace

json options_json(const EvaluateOptions& o, double tau, const std::string& confirm) {
  return {{"samples_per_scenario", o.samples_per_scenario},
          {"tau", tau},
          {"version", 2},
          {"confirm", confirm},
          {"max_test_drop", o.max_test_drop},
          {"tie", o.tie},
          {"enough", o.enough},
          {"seed", o.seed}};
}

EvaluateStageResult run_evaluate_stage(const StageEnv& env, EvaluateStageOptions options) {
  prepare_compute(env);
  EvaluateOptions* o = &options.evaluate;
  check_option(options.confirm == "judges" || options.confirm == "none", "evaluate",
               "--confirm must be judges or none");
  o->device = env.device;
  auto lock = hold_workspace(env, "evaluate");
  Workspace workspace(env.workspace);
  o->validate();
  CorrectionInputs in = load_correction_inputs(env, workspace, options.data, true, "evaluate");
  const double tau = o->tau.value_or(in.distill_tau);
  auto device = parse_device(env.device, "evaluate");
  auto corrected = load_corrected_models(workspace, device);
  for (const char* key : {"classifier", "vae", "distill", "annotations", "dataset"})
    if (corrected.record.inputs.value(key, std::string()) != in.fingerprints.value(key, std::string()))
      throw StateError(fmt::format("evaluate: the {} changed since `defuse correct` ran: run correct again",
                                   std::string(key) == "annotations" ? "annotation decisions" : key));
  json inputs = in.fingerprints;
  inputs["correct"] = corrected.record.fingerprint;
  const json fingerprint = options_json(*o, tau, in.judges.empty() ? "none" : options.confirm);

  EvaluationResult result;
  StageRun run = run_stage(env, workspace, kEvaluateStage, fingerprint, inputs, [&](int64_t) {
    auto held_out =
        sample_scenarios(*in.vae, in.labelled, o->samples_per_scenario, tau, o->seed, kHeldOutStream, env.device, 256);
    const auto scenarios = static_cast<int64_t>(in.labelled.size());
    std::vector<int64_t> kept(static_cast<size_t>(scenarios), o->samples_per_scenario);
    if (!in.judges.empty() && options.confirm == "judges") {
      // Score only the draws whose label the judges confirm, as correct trained on: a
      // draw that crossed into another class is not the failure being fixed.
      result.draws_drawn = held_out.size();
      held_out = keep_confirmed_draws(held_out, in.judges, in.verdict, scenarios, env.device, &kept);
    }
    auto test_images = images_tensor(in.dataset.test, in.dataset);
    auto test_labels = labels_tensor(in.dataset.test);
    std::vector<bool> genuine;
    for (const auto& s : in.labelled) {
      result.scenario_ids.push_back(s.id);
      result.scenario_labels.push_back(s.label);
      result.scenario_verdicts.push_back(s.verdict);
      genuine.push_back(s.genuine());
    }
    result.scenario_draws = kept;
    result.test_images = test_images.size(0);
    result.scenario_images = held_out.size();
    result.failure_images = in.failures.size();
    // The held-out draws and every model's predictions on them go to evaluate/heldout.pt,
    // so that a reader outside defuse can check the figures (bench/independent_reader.py).
    std::vector<std::pair<std::string, at::Tensor>> predictions;
    at::Tensor pred;
    result.models.push_back(score_model(*in.classifier, "original", -1, test_images, test_labels, held_out, in.failures,
                                        scenarios, *o, genuine, &pred));
    predictions.emplace_back("original", pred);
    for (auto& m : corrected.models) {
      result.models.push_back(score_model(*m.model, m.name, m.lambda, test_images, test_labels, held_out, in.failures,
                                          scenarios, *o, genuine, &pred));
      predictions.emplace_back(m.name, pred);
    }
    save_held_out(workspace, held_out, genuine, predictions);
    std::vector<at::Tensor> per_model;
    for (const auto& [name, p] : predictions) per_model.push_back(p);
    score_heldout_failures(result, per_model, held_out, genuine);
    choose_model(result, *o);
    json j = evaluation_json(result);
    j["automatic_labels"] = in.automatic;
    write_file_atomic(workspace.path(kEvaluationJsonArtifact), j.dump(2) + "\n");
    write_file_atomic(workspace.path(kEvaluationCsvArtifact), evaluation_csv(result));
    Workspace::StageOutput out;
    out.metrics = j;
    out.artifacts = {{"results.json", kEvaluationJsonArtifact},
                     {"results.csv", kEvaluationCsvArtifact},
                     {"heldout", kHeldOutArtifact}};
    return out;
  });
  // Everything below reads the stored metrics, so a skipped (up to date) run reports the same.
  EvaluateStageResult r;
  json& summary = r.summary;
  take_run(r, run);
  if (!run.reused && !env.json) env.info(accuracy_table(result, in.dataset.class_names));
  r.evaluation = evaluation_from_json(summary);
  const EvaluationResult& e = r.evaluation;
  if (!e.within_budget)
    env.warn(
        fmt::format("evaluate: no λ kept the test accuracy within {:.2f} points of the original's; chose "
                    "the smallest drop",
                    100 * o->max_test_drop));
  const ModelScores& c = e.chosen_model();
  const ModelScores& original = e.original();
  const ModelScores* baseline = nullptr;
  for (const auto& m : e.models)
    if (m.name == "baseline") baseline = &m;
  const bool genuine = c.genuine_scenario_accuracy >= 0;
  auto score = [&](const ModelScores& m) { return genuine ? m.genuine_scenario_accuracy : m.scenario_accuracy; };
  r.text = run.reused ? skipped_text(run.record) + "; " : std::string("evaluate: ");
  r.text += fmt::format(
      "chose {}: test accuracy {} ({:+.2f} points), held-out {} accuracy {} (original {}); "
      "baseline {}",
      c.name, percent(c.test_accuracy), 100 * (c.test_accuracy - original.test_accuracy),
      genuine ? "genuine-scenario" : "scenario", percent(score(c), 1), percent(score(original), 1),
      baseline ? fmt::format("test {}, scenario {}", percent(baseline->test_accuracy),
                             percent(baseline->scenario_accuracy, 1))
               : std::string("not trained"));
  return r;
}

}  // namespace defuse
