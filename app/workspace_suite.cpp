#include "workspace_suite.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>

#include "common.h"
#include "defuse/pipeline/correct_inputs.h"
#include "defuse/base/error.h"
#include "defuse/model/classifier_store.h"

namespace defuse::cli {

std::vector<CLI::Option*> add_suite_options(CLI::App& app, SuiteRequest& r, bool with_mark_and_data) {
  std::vector<CLI::Option*> added;
  added.push_back(
      app.add_option("--scenarios", r.scenarios,
                     "genuine: the labelled scenarios the judges call genuine; labelled: every labelled scenario")
          ->check(CLI::IsMember({"genuine", "labelled"}))
          ->capture_default_str());
  added.push_back(
      app.add_option("--images", r.options.images_per_scenario, "Images per scenario")->capture_default_str());
  added.push_back(app.add_option("--max-draws", r.options.max_draws, "Draws per scenario at most, to find them")
                      ->capture_default_str());
  added.push_back(app.add_flag("--all-confirmed", r.all_confirmed,
                               "Keep every draw the judges read as the scenario's label, not only those the original "
                               "classifier gets wrong"));
  added.push_back(app.add_option("--seed", r.options.seed, "Random seed of the draws")->capture_default_str());
  if (!with_mark_and_data) return added;
  added.push_back(
      app.add_option("--min-accuracy", r.options.min_accuracy, "Each scenario's pass mark (accuracy in [0, 1])")
          ->capture_default_str());
  added.push_back(
      app.add_option("-d,--data", r.data, "Dataset spec (default: the one the workspace's classifier was trained on)"));
  return added;
}

std::vector<LabelledScenario> chosen_scenarios(Context& ctx, const CorrectionInputs& in, const std::string& which,
                                               const std::string& stage) {
  std::vector<LabelledScenario> chosen;
  int64_t judged = 0;
  for (const auto& s : in.labelled) {
    judged += s.verdict.empty() ? 0 : 1;
    if (which == "labelled" || s.genuine()) chosen.push_back(s);
  }
  if (chosen.empty()) {
    if (in.judges.empty() || judged == 0)
      throw StateError(stage + ": no scenario was judged (" +
                       (in.judges.empty() ? std::string("the workspace has no judges")
                                          : std::string("distill ran before the judges were trained")) +
                       "), so none is known to be genuine: run `defuse train-judges` and identify, distill and "
                       "annotate again, or pass --scenarios labelled to take every labelled scenario");
    throw StateError(
        fmt::format("{}: none of the {} labelled scenarios is genuine (the judges read their failures "
                    "otherwise): no failure of the classifier to take; --scenarios labelled takes them all",
                    stage, in.labelled.size()));
  }
  const auto unjudged =
      std::count_if(chosen.begin(), chosen.end(), [](const LabelledScenario& s) { return s.verdict.empty(); });
  if (unjudged > 0)
    ctx.warn(
        fmt::format("note: {} of the {} scenarios were not judged: their images are the classifier's failures "
                    "only if their labels are right",
                    unjudged, chosen.size()));
  return chosen;
}

WorkspaceSuite workspace_suite(Context& ctx, Workspace& workspace, const SuiteRequest& request) {
  SuiteOptions options = request.options;
  options.failing_only = !request.all_confirmed;
  options.device = ctx.device;
  options.validate();
  CorrectionInputs in = load_correction_inputs(ctx, workspace, request.data, false, "export-suite");
  std::vector<LabelledScenario> chosen = chosen_scenarios(ctx, in, request.scenarios, "export-suite");

  SuiteInfo info;
  info.defuse_version = DEFUSE_VERSION;
  info.channels = in.dataset.channels;
  info.height = in.dataset.height;
  info.width = in.dataset.width;
  info.class_names = in.dataset.class_names;
  info.scenarios = request.scenarios;
  info.data = resolve_data_spec(workspace, request.data);
  info.fingerprints = in.fingerprints;
  StageRecord classifier = workspace.require(kClassifierStage, "train-classifier");
  info.original_test_accuracy = classifier.metrics.value("test_accuracy", -1.0);

  WorkspaceSuite out;
  out.suite =
      build_suite(*in.vae, *in.classifier, in.judges, in.verdict, chosen, in.distill_tau, std::move(info), options);
  for (auto& sc : out.suite.info.scenario_list)
    if (const Scenario* found = in.scenarios.find(sc.id)) sc.seed_label = found->seed_label;
  for (const auto& l : out.suite.info.left_out)
    ctx.warn(fmt::format("note: scenario {} left out of the suite: {}", l.id, l.reason));
  if (out.suite.info.scenario_list.empty())
    throw StateError("export-suite: no scenario gave an image (see the notes above): nothing to put in a suite");
  out.dataset = std::move(in.dataset);
  return out;
}

}  // namespace defuse::cli
