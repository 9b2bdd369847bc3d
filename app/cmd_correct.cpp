// defuse correct: fine-tune the classifier on its labelled failure scenarios, for a sweep of
// λ and the failures-only baseline.
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/correct_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, CorrectStageOptions& o) {
  app.add_option("-d,--data", o.data, "Dataset spec (default: the one the workspace's classifier was trained on)");
  app.add_option("-l,--lambda", o.correct.lambdas, "Weights of the scenario loss to sweep (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--baseline", [&o](const std::string& v) { o.correct.baseline = v == "failures-only"; },
         "Also fine-tune on the labelled failures alone (failures-only) or not (none)")
      ->check(CLI::IsMember({"failures-only", "none"}))
      ->default_str(o.correct.baseline ? "failures-only" : "none");
  app.add_option("--epochs", o.correct.epochs, "Passes over the training split per model, at most")
      ->capture_default_str();
  app.add_option("--patience", o.correct.patience,
                 "Stop a model once neither its accuracy nor its loss on held-out scenario samples has improved for "
                 "this many checks in a row (0: train every epoch through)")
      ->capture_default_str();
  app.add_option("--check-every", o.correct.check_every, "Steps between those checks")->capture_default_str();
  app.add_option("--min-improvement", o.correct.min_improvement,
                 "A check improves the held-out loss when it is this much (relative) below the best so far")
      ->capture_default_str();
  app.add_option("--holdout", o.correct.holdout,
                 "Every N-th sample of each scenario is held out of training for the checks")
      ->capture_default_str();
  app.add_option("--precision", o.correct.precision,
                 "fp32, or bf16: the forward passes in bfloat16 autocast (CPUs with AVX512-BF16/AMX; losses, "
                 "optimiser and the stored models stay fp32); auto: bf16 where the CPU has it")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--batch-size", o.correct.batch_size, "Training images per step")->capture_default_str();
  app.add_option("--scenario-batch-size", o.correct.scenario_batch_size, "Scenario samples per step")
      ->capture_default_str();
  app.add_option("--optimizer", o.correct.optimizer, "sgd (with momentum, as the reference) or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  app.add_option("--lr", o.correct.lr, "Learning rate")->capture_default_str();
  app.add_option("--momentum", o.correct.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o.correct.weight_decay, "L2 weight decay")->capture_default_str();
  app.add_flag("--freeze-batch-norm,!--train-batch-norm", o.correct.freeze_batch_norm,
               "Keep batch norm's running statistics as trained (the decoded scenario images would shift them)")
      ->capture_default_str();
  app.add_option("--samples-per-scenario", o.correct.samples_per_scenario,
                 "Training samples drawn from each labelled scenario's Gaussian")
      ->capture_default_str();
  app.add_option("--tau", o.correct.tau,
                 "Samples come from N(mean, tau * covariance) (default: distill's --show-tau, the spread the "
                 "labelling page showed and the judges read)");
  app.add_option("--confirm", o.confirm,
                 "judges: train only on the scenario draws whose label the workspace's judges confirm (a draw "
                 "that crossed into another class would teach a wrong label); none: on every draw")
      ->check(CLI::IsMember({"judges", "none"}))
      ->capture_default_str();
  app.add_option("--seed", o.correct.seed, "Random seed (scenario samples, batch order)")->capture_default_str();
  app.add_flag("--allow-nothing", o.allow_nothing,
               "When the judges confirm none of the scenario draws' labels, end with nothing corrected (exit 0, "
               "\"nothing_to_correct\" in the result) instead of an error: what `defuse run` does");
}

namespace {

const Registrar registrar = stage_command<CorrectStageOptions>(
    "correct",
    "Fine-tune the classifier on its labelled scenarios: CE(train) + lambda * CE(scenarios), for a sweep of lambda "
    "and the failures-only baseline",
    60, run_correct_stage, Writes::kYes, run_correct_worker);

}  // namespace
}  // namespace defuse::cli
