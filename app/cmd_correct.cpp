// defuse correct: fine-tune the classifier on its labelled failure scenarios, for a sweep of
// λ and the failures-only baseline.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "correct_inputs.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/correct/correct.h"
#include "defuse/correct/correct_store.h"
#include "defuse/model/classifier.h"
#include "defuse/model/tensors.h"

namespace defuse::cli {
namespace {

// The judges confirmed no scenario draw (see --allow-nothing).
struct NothingConfirmed : StateError {
  using StateError::StateError;
};

using nlohmann::json;

// The effective options (the fingerprint): `tau` is the τ the samples are drawn at.
json options_json(const CorrectOptions& o, double tau) {
  return {{"lambdas", o.lambdas},
          {"baseline", o.baseline ? "failures-only" : "none"},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"scenario_batch_size", o.scenario_batch_size},
          {"optimizer", o.optimizer},
          {"lr", o.lr},
          {"momentum", o.momentum},
          {"weight_decay", o.weight_decay},
          {"freeze_batch_norm", o.freeze_batch_norm},
          {"samples_per_scenario", o.samples_per_scenario},
          {"tau", tau},
          {"seed", o.seed}};
}

const Registrar registrar(
    "correct",
    "Fine-tune the classifier on its labelled scenarios: CE(train) + lambda * CE(scenarios), for a sweep of lambda "
    "and the failures-only baseline",
    [](CLI::App& app, Context& ctx) -> Action {
      auto o = std::make_shared<CorrectOptions>();
      auto data = std::make_shared<std::string>();
      auto baseline = std::make_shared<std::string>("failures-only");
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data, "Dataset spec (default: the one the workspace's classifier was trained on)");
      app.add_option("-l,--lambda", o->lambdas, "Weights of the scenario loss to sweep (comma-separated)")
          ->delimiter(',')
          ->capture_default_str();
      app.add_option("--baseline", *baseline, "Also fine-tune on the labelled failures alone (failures-only) or not (none)")
          ->check(CLI::IsMember({"failures-only", "none"}))
          ->capture_default_str();
      app.add_option("--epochs", o->epochs, "Passes over the training split per model")->capture_default_str();
      app.add_option("--batch-size", o->batch_size, "Training images per step")->capture_default_str();
      app.add_option("--scenario-batch-size", o->scenario_batch_size, "Scenario samples per step")->capture_default_str();
      app.add_option("--optimizer", o->optimizer, "sgd (with momentum, as the reference) or adam")
          ->check(CLI::IsMember({"sgd", "adam"}))
          ->capture_default_str();
      app.add_option("--lr", o->lr, "Learning rate")->capture_default_str();
      app.add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str();
      app.add_option("--weight-decay", o->weight_decay, "L2 weight decay")->capture_default_str();
      app.add_flag("--freeze-batch-norm,!--train-batch-norm", o->freeze_batch_norm,
                   "Keep batch norm's running statistics as trained (the decoded scenario images would shift them)")
          ->capture_default_str();
      app.add_option("--samples-per-scenario", o->samples_per_scenario,
                     "Training samples drawn from each labelled scenario's Gaussian")
          ->capture_default_str();
      app.add_option("--tau", o->tau,
                     "Samples come from N(mean, tau * covariance) (default: distill's --show-tau, the spread the "
                     "labelling page showed and the judges read)");
      auto confirm = std::make_shared<std::string>("judges");
      app.add_option("--confirm", *confirm,
                     "judges: train only on the scenario draws whose label the workspace's judges confirm (a draw "
                     "that crossed into another class would teach a wrong label); none: on every draw")
          ->check(CLI::IsMember({"judges", "none"}))
          ->capture_default_str();
      app.add_option("--seed", o->seed, "Random seed (scenario samples, batch order)")->capture_default_str();

      auto allow_nothing = std::make_shared<bool>(false);
      app.add_flag("--allow-nothing", *allow_nothing,
                   "When the judges confirm none of the scenario draws' labels, end with nothing corrected (exit 0, "
                   "\"nothing_to_correct\" in the result) instead of an error: what `defuse run` does");
      return [o, data, baseline, confirm, allow_nothing](Context& ctx) {
        prepare_compute(ctx);
        o->device = ctx.device;
        o->baseline = *baseline == "failures-only";
        auto lock = hold_workspace(ctx, "correct");
        Workspace workspace(ctx.workspace);
        o->validate();
        CorrectionInputs in = load_correction_inputs(ctx, workspace, *data, o->baseline);
        const double tau = o->tau.value_or(in.distill_tau);

        ctx.info(fmt::format("correct: {} labelled scenarios ({} samples each), λ sweep {}{}, {} epoch(s) of {} "
                             "training images each",
                             in.labelled.size(), o->samples_per_scenario, json(o->lambdas).dump(),
                             o->baseline ? " + failures-only baseline" : "", o->epochs, in.dataset.train.size()));
        std::unique_ptr<Progress> bar;
        int bar_model = 0;
        o->on_progress = [&](const CorrectProgress& p) {
          if (p.model != bar_model) {
            if (bar) bar->finish();
            bar = std::make_unique<Progress>(*ctx.err, fmt::format("{}/{} {}", p.model, p.models, p.name), p.steps,
                                             ctx.progress());
            bar_model = p.model;
          }
          bar->update(p.step, fmt::format("loss {:.4f}", p.loss));
        };

        json summary;
        json options = options_json(*o, tau);
        options["confirm"] = in.judges.empty() ? "none" : *confirm;
        StageRun run;
        try {
          run = run_stage(ctx, workspace, kCorrectStage, options, in.fingerprints, [&](int64_t) {
            auto samples = sample_scenarios(*in.vae, in.labelled, o->samples_per_scenario, tau, o->seed,
                                            kTrainSampleStream, ctx.device, o->sample_batch_size);
            const int64_t drawn = samples.size();
            std::vector<int64_t> kept;
            if (!in.judges.empty() && *confirm == "judges") {
              // Only draws the judges read as their scenario's label: a draw that crossed into
              // another class would teach the classifier a wrong label.
              samples = keep_confirmed_draws(samples, in.judges, in.verdict, static_cast<int64_t>(in.labelled.size()),
                                             ctx.device, &kept);
              std::vector<int64_t> empty;
              for (size_t k = 0; k < kept.size(); ++k)
                if (kept[k] == 0) empty.push_back(in.labelled[k].id);
              ctx.info(fmt::format("correct: the judges confirm {} of {} scenario draws{}", samples.size(), drawn,
                                   empty.empty() ? std::string()
                                                 : fmt::format("; none of scenario {}", fmt::join(empty, ", "))));
              if (samples.size() == 0 && !o->lambdas.empty())
                throw NothingConfirmed("correct: the judges confirm none of the scenario draws' labels: nothing to "
                                       "train on (check the labels with `defuse annotate`, or draw wider: a larger "
                                       "--tau)");
            }
            auto result = correct_classifier(*in.classifier, images_tensor(in.dataset.train, in.dataset),
                                             labels_tensor(in.dataset.train), samples, in.failures, *o);
            if (bar) bar->finish();
            Workspace::StageOutput out;
            out.artifacts = save_corrected_models(workspace, result);
            json models = json::array();
            for (const auto& m : result.models)
              models.push_back({{"name", m.name},
                                {"lambda", m.lambda < 0 ? json(nullptr) : json(m.lambda)},
                                {"artifact", corrected_model_path(m.name)},
                                {"steps", m.steps},
                                {"train_loss", m.train_loss},
                                {"scenario_loss", m.scenario_loss},
                                {"seconds", m.seconds}});
            summary = {{"models", models},
                       {"scenarios", result.scenarios},
                       {"scenario_samples", result.scenario_samples},
                       {"scenario_draws", drawn},
                       {"baseline_failures", result.baseline_failures},
                       {"automatic_labels", in.automatic},
                       {"seconds", result.seconds}};
            out.metrics = summary;
            return out;
          });
        } catch (const NothingConfirmed& e) {
          if (!*allow_nothing) throw;
          // An answer, not an error: the labels are not ones the judges read in the scenarios'
          // draws, so there is nothing to teach the classifier.
          ctx.warn(std::string(e.what()) + "; nothing corrected");
          ctx.result({{"nothing_to_correct", true}, {"reason", e.what()}, {"models", json::array()}},
                     "correct: nothing corrected");
          return;
        }
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
        }
        if (!ctx.json)
          for (const auto& m : summary["models"])
            ctx.info(fmt::format("  {:<16} {:>6} steps  train CE {:.4f}  scenario CE {:.4f}  ({})",
                                 m["name"].get<std::string>(), m["steps"].get<int64_t>(), m["train_loss"].get<double>(),
                                 m["scenario_loss"].get<double>(), format_duration(m["seconds"].get<double>())));
        ctx.result(summary, fmt::format("correct: {} models fine-tuned on {} labelled scenarios in {}; next: defuse "
                                        "evaluate --workspace {}",
                                        summary["models"].size(), summary["scenarios"].get<int64_t>(),
                                        format_duration(summary["seconds"].get<double>()), ctx.workspace));
      };
    },
    60);

}  // namespace
}  // namespace defuse::cli
