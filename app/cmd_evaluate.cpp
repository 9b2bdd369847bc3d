// defuse evaluate: test accuracy, held-out scenario accuracy and accuracy on the identified
// failures for the original classifier, every λ and the baseline; the choice of λ.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "correct_inputs.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/correct/correct_store.h"
#include "defuse/correct/evaluate.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "model_export.h"

namespace defuse::cli {
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
    out += fmt::format(" {:>8}", fmt::format("{}#{}:{}", r.scenario_verdicts[k] == "genuine" ? "*" : "",
                                              r.scenario_ids[k],
                                              class_names.at(static_cast<size_t>(r.scenario_labels[k])).substr(0, 5)));
  out += "\n";
  for (const auto& m : r.models) {
    out += fmt::format("{:<16}", m.name);
    for (double a : m.per_scenario) out += fmt::format(" {:>8}", percent(a, 0));
    out += "\n";
  }
  return out;
}

const Registrar registrar(
    "evaluate",
    "Score the original and corrected classifiers on the test set, held-out scenario draws and the failures; "
    "choose lambda",
    [](CLI::App& app, Context& ctx) -> Action {
      auto o = std::make_shared<EvaluateOptions>();
      auto data = std::make_shared<std::string>();
      auto drop_points = std::make_shared<double>(100 * o->max_test_drop);
      auto tie_points = std::make_shared<double>(100 * o->tie);
      auto export_file = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data, "Dataset spec (default: the one the workspace's classifier was trained on)");
      app.add_option("--samples-per-scenario", o->samples_per_scenario,
                     "Held-out draws per labelled scenario (a random stream disjoint from correct's)")
          ->capture_default_str();
      app.add_option("--tau", o->tau,
                     "Draws come from N(mean, tau * covariance) (default: distill's --show-tau, the spread the "
                     "labelling page showed and the judges read)");
      app.add_option("--max-test-drop", *drop_points,
                     "Choice rule: the best scenario accuracy among the lambdas whose test accuracy drops by at most "
                     "this many percentage points")
          ->capture_default_str();
      auto confirm = std::make_shared<std::string>("judges");
      app.add_option("--confirm", *confirm,
                     "judges: score only the held-out draws whose label the workspace's judges confirm; none: every "
                     "draw")
          ->check(CLI::IsMember({"judges", "none"}))
          ->capture_default_str();
      app.add_option("--tie", *tie_points,
                     "Choice rule: scores within this many percentage points of the best are ties, which go to the "
                     "smaller lambda")
          ->capture_default_str();
      app.add_option("--seed", o->seed, "Random seed of the held-out draws")->capture_default_str();
      app.add_option("--batch-size", o->batch_size, "Images per forward pass")->capture_default_str();
      app.add_option("--export", *export_file,
                     "Also write the chosen model to this file (TorchScript; see `defuse export`)");

      return [o, data, drop_points, tie_points, export_file, confirm](Context& ctx) {
        prepare_compute(ctx);
        o->device = ctx.device;
        o->max_test_drop = *drop_points / 100.0;
        o->tie = *tie_points / 100.0;
        auto lock = hold_workspace(ctx, "evaluate");
        Workspace workspace(ctx.workspace);
        o->validate();
        CorrectionInputs in = load_correction_inputs(ctx, workspace, *data, true, "evaluate");
        const double tau = o->tau.value_or(in.distill_tau);
        auto device = parse_device(ctx.device, "evaluate");
        auto corrected = load_corrected_models(workspace, device);
        for (const char* key : {"classifier", "vae", "distill", "annotations", "dataset"})
          if (corrected.record.inputs.value(key, std::string()) != in.fingerprints.value(key, std::string()))
            throw StateError(fmt::format("evaluate: the {} changed since `defuse correct` ran: run correct again",
                                         std::string(key) == "annotations" ? "annotation decisions" : key));
        json inputs = in.fingerprints;
        inputs["correct"] = corrected.record.fingerprint;
        json options = {{"samples_per_scenario", o->samples_per_scenario}, {"tau", tau}, {"version", 2},
                        {"confirm", in.judges.empty() ? "none" : *confirm},
                        {"max_test_drop", o->max_test_drop}, {"tie", o->tie}, {"seed", o->seed}};

        EvaluationResult result;
        StageRun run = run_stage(ctx, workspace, kEvaluateStage, options, inputs, [&](int64_t) {
          auto held_out = sample_scenarios(*in.vae, in.labelled, o->samples_per_scenario, tau, o->seed,
                                           kHeldOutStream, ctx.device, 256);
          const auto scenarios = static_cast<int64_t>(in.labelled.size());
          std::vector<int64_t> kept(static_cast<size_t>(scenarios), o->samples_per_scenario);
          if (!in.judges.empty() && *confirm == "judges") {
            // Score only the draws whose label the judges confirm, as correct trained on: a
            // draw that crossed into another class is not the failure being fixed.
            result.draws_drawn = held_out.size();
            held_out = keep_confirmed_draws(held_out, in.judges, in.verdict, scenarios, ctx.device, &kept);
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
          result.models.push_back(score_model(*in.classifier, "original", -1, test_images, test_labels, held_out,
                                              in.failures, scenarios, *o, genuine, &pred));
          predictions.emplace_back("original", pred);
          for (auto& m : corrected.models) {
            result.models.push_back(score_model(*m.model, m.name, m.lambda, test_images, test_labels, held_out,
                                                in.failures, scenarios, *o, genuine, &pred));
            predictions.emplace_back(m.name, pred);
          }
          save_held_out(workspace, held_out, genuine, predictions);
          std::vector<at::Tensor> per_model;
          for (const auto& [name, p] : predictions) per_model.push_back(p);
          score_heldout_failures(result, per_model, held_out, genuine);
          choose_model(result, o->max_test_drop, o->tie);
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
        json summary = run.record.metrics;
        if (run.reused) summary["skipped"] = true;
        if (!run.reused && !ctx.json) ctx.info(accuracy_table(result, in.dataset.class_names));
        const std::string chosen = summary.at("chosen").get<std::string>();
        if (!summary.value("within_budget", false))
          ctx.warn(fmt::format("evaluate: no λ kept the test accuracy within {:.2f} points of the original's; chose "
                               "the smallest drop", 100 * o->max_test_drop));
        if (!export_file->empty()) {
          std::string exported = export_model(workspace, chosen, *export_file, device);
          ctx.info(fmt::format("evaluate: wrote the chosen model ({}) to {}", chosen, exported));
          summary["exported"] = exported;
        }
        auto model = [&](const std::string& name) -> const json* {
          for (const auto& m : summary.at("models"))
            if (m.at("name") == name) return &m;
          return nullptr;
        };
        const json& c = *model(chosen);
        const json& original = *model("original");
        const json* baseline = model("baseline");
        std::string text = run.reused ? skipped_text(run.record) + "; " : std::string("evaluate: ");
        const bool genuine = c["genuine_scenario_accuracy"].is_number();
        const char* key = genuine ? "genuine_scenario_accuracy" : "scenario_accuracy";
        text += fmt::format("chose {}: test accuracy {} ({:+.2f} points), held-out {} accuracy {} (original "
                            "{}); baseline {}",
                            chosen, percent(c["test_accuracy"].get<double>()),
                            100 * (c["test_accuracy"].get<double>() - original["test_accuracy"].get<double>()),
                            genuine ? "genuine-scenario" : "scenario", percent(c[key].get<double>(), 1),
                            percent(original[key].get<double>(), 1),
                            baseline ? fmt::format("test {}, scenario {}", percent((*baseline)["test_accuracy"].get<double>()),
                                                   percent((*baseline)["scenario_accuracy"].get<double>(), 1))
                                     : std::string("not trained"));
        ctx.result(summary, text);
      };
    },
    70);

}  // namespace
}  // namespace defuse::cli
