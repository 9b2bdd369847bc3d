// defuse evaluate: test accuracy, held-out scenario accuracy and accuracy on the identified
// failures for the original classifier, every λ and the baseline; the choice of λ.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/model/device.h"
#include "defuse/pipeline/evaluate_stage.h"
#include "model_export.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, EvaluateStageOptions& o) {
  app.add_option("-d,--data", o.data, "Dataset spec (default: the one the workspace's classifier was trained on)");
  app.add_option("--samples-per-scenario", o.evaluate.samples_per_scenario,
                 "Held-out draws per labelled scenario (a random stream disjoint from correct's)")
      ->capture_default_str();
  app.add_option("--tau", o.evaluate.tau,
                 "Draws come from N(mean, tau * covariance) (default: distill's --show-tau, the spread the "
                 "labelling page showed and the judges read)");
  app.add_option_function<double>(
         "--max-test-drop", [&o](double points) { o.evaluate.max_test_drop = points / 100.0; },
         "Choice rule: the best scenario accuracy among the lambdas whose test accuracy drops by at most this many "
         "percentage points")
      ->default_str(fmt::format("{:g}", 100 * o.evaluate.max_test_drop));
  app.add_option("--confirm", o.confirm,
                 "judges: score only the held-out draws whose label the workspace's judges confirm; none: every "
                 "draw")
      ->check(CLI::IsMember({"judges", "none"}))
      ->capture_default_str();
  app.add_option_function<double>(
         "--tie", [&o](double points) { o.evaluate.tie = points / 100.0; },
         "Choice rule: scores within this many percentage points of the best are ties, which go to the smaller "
         "lambda")
      ->default_str(fmt::format("{:g}", 100 * o.evaluate.tie));
  app.add_option_function<double>(
         "--enough", [&o](double percent) { o.evaluate.enough = percent / 100.0; },
         "Choice rule: a held-out genuine-scenario accuracy (percent) that counts as fixed; of the lambdas within "
         "the test budget that reach it, the one with the highest test accuracy (0: always the best scenario "
         "accuracy)")
      ->default_str(fmt::format("{:g}", 100 * o.evaluate.enough));
  app.add_option("--seed", o.evaluate.seed, "Random seed of the held-out draws")->capture_default_str();
  app.add_option("--batch-size", o.evaluate.batch_size, "Images per forward pass")->capture_default_str();
}

namespace {

const Registrar registrar(
    "evaluate",
    "Score the original and corrected classifiers on the test set, held-out scenario draws and the failures; "
    "choose lambda",
    [](CLI::App& app, Context& ctx) -> Action {
      auto o = std::make_shared<EvaluateStageOptions>();
      auto export_file = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      bind_stage_options(app, *o);
      app.add_option("--export", *export_file,
                     "Also write the chosen model to this file (TorchScript; see `defuse export`)");
      return [o, export_file](Context& ctx) {
        auto r = run_evaluate_stage(ctx, *o);
        if (!export_file->empty()) {
          auto lock = hold_workspace(ctx, "evaluate");
          Workspace workspace(ctx.workspace);
          const std::string chosen = r.evaluation.chosen_model().name;
          std::string exported = export_model(workspace, chosen, *export_file, parse_device(ctx.device, "evaluate"));
          ctx.info(fmt::format("evaluate: wrote the chosen model ({}) to {}", chosen, exported));
          r.summary["exported"] = exported;
        }
        ctx.result(r.summary, r.text);
      };
    },
    70);

}  // namespace
}  // namespace defuse::cli
