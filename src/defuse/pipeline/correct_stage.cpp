#include "defuse/pipeline/correct_stage.h"

#include <fmt/format.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/correct/correct_store.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/data/fingerprint.h"
#include "defuse/dist/world.h"
#include "defuse/model/classifier_store.h"
#include "defuse/pipeline/correct_inputs.h"
#include "defuse/pipeline/distributed_stage.h"

namespace defuse {
namespace {

using nlohmann::json;

// The judges confirmed no scenario draw (see allow_nothing).
struct NothingConfirmed : StateError {
  using StateError::StateError;
};

}  // namespace

json options_json(const CorrectOptions& o, double tau, const std::string& confirm) {
  json options = {{"lambdas", o.lambdas},
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
                  {"seed", o.seed},
                  {"confirm", confirm}};
  // Absent at their old values (patience 0, fp32), so fingerprints of before them still match.
  if (o.patience > 0) {
    options["patience"] = o.patience;
    options["check_every"] = o.check_every;
    options["min_improvement"] = o.min_improvement;
    options["holdout"] = o.holdout;
  }
  const std::string precision = resolve_precision(o.precision, o.device);
  if (precision != "fp32") options["precision"] = precision;
  return options;
}

CorrectStageResult run_correct_stage(const StageEnv& env, CorrectStageOptions options) {
  prepare_compute(env);
  CorrectOptions* o = &options.correct;
  check_option(options.confirm == "judges" || options.confirm == "none", "correct", "--confirm must be judges or none");
  o->device = env.device;
  auto lock = hold_workspace(env, "correct");
  Workspace workspace(env.workspace);
  o->validate();
  CorrectionInputs in = load_correction_inputs(env, workspace, options.data, o->baseline);
  const double tau = o->tau.value_or(in.distill_tau);

  env.info(
      fmt::format("correct: {} labelled scenarios ({} samples each), λ sweep {}{}, {} epoch(s) of {} "
                  "training images each",
                  in.labelled.size(), o->samples_per_scenario, json(o->lambdas).dump(),
                  o->baseline ? " + failures-only baseline" : "", o->epochs, in.dataset.train.size()));
  std::unique_ptr<Progress> bar;
  int bar_model = 0;
  o->on_progress = [&](const CorrectProgress& p) {
    if (p.model != bar_model) {
      if (bar) bar->finish();
      bar = std::make_unique<Progress>(env.log(), fmt::format("{}/{} {}", p.model, p.models, p.name), p.steps,
                                       env.progress());
      bar_model = p.model;
    }
    bar->update(p.step, fmt::format("loss {:.4f}", p.loss));
  };

  CorrectStageResult r;
  json& summary = r.summary;
  const std::string confirm = in.judges.empty() ? "none" : options.confirm;
  const json fingerprint = options_json(*o, tau, confirm);
  PlanSender plan(kCorrectStage);
  StageRun run;
  try {
    run = run_stage(env, workspace, kCorrectStage, fingerprint, in.fingerprints, [&](int64_t) {
      auto samples = sample_scenarios(*in.vae, in.labelled, o->samples_per_scenario, tau, o->seed, kTrainSampleStream,
                                      env.device, o->sample_batch_size);
      const int64_t drawn = samples.size();
      std::vector<int64_t> kept;
      if (!in.judges.empty() && options.confirm == "judges") {
        // Only draws the judges read as their scenario's label: a draw that crossed into
        // another class would teach the classifier a wrong label.
        samples = keep_confirmed_draws(samples, in.judges, in.verdict, static_cast<int64_t>(in.labelled.size()),
                                       env.device, &kept);
        std::vector<int64_t> empty;
        for (size_t k = 0; k < kept.size(); ++k)
          if (kept[k] == 0) empty.push_back(in.labelled[k].id);
        env.info(
            fmt::format("correct: the judges confirm {} of {} scenario draws{}", samples.size(), drawn,
                        empty.empty() ? std::string() : fmt::format("; none of scenario {}", fmt::join(empty, ", "))));
        if (samples.size() == 0 && !o->lambdas.empty())
          throw NothingConfirmed(
              "correct: the judges confirm none of the scenario draws' labels: nothing to "
              "train on (check the labels with `defuse annotate`, or draw wider: a larger "
              "--tau)");
      }
      if (root_of_many()) {
        // The other ranks train whole models: they get the classifier's file and the draws.
        StagePlan p{
            kCorrectStage, true,
            plan_info(fingerprint, resolve_data_spec(workspace, options.data), dataset_fingerprint(in.dataset))};
        p.info["tau"] = tau;
        p.info["confirm"] = confirm;
        p.files = {read_file(workspace.path(kClassifierArtifact))};
        auto defined = [](const at::Tensor& t, at::ScalarType type) {
          return t.defined() ? t : torch::empty({0}, type);
        };
        for (const LabelledImages* set : {&samples, &in.failures})
          for (auto [t, type] :
               {std::pair{set->images, torch::kUInt8}, {set->labels, torch::kLong}, {set->scenario, torch::kLong}})
            p.tensors.push_back(defined(t, type));
        plan.send(std::move(p));
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
                          {"check_accuracy", m.check_accuracy < 0 ? json(nullptr) : json(m.check_accuracy)},
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
    if (!options.allow_nothing) throw;
    // An answer, not an error: the labels are not ones the judges read in the scenarios'
    // draws, so there is nothing to teach the classifier.
    env.warn(std::string(e.what()) + "; nothing corrected");
    r.summary = {{"nothing_to_correct", true}, {"reason", e.what()}, {"models", json::array()}};
    r.text = "correct: nothing corrected";
    r.nothing_to_correct = true;
    return r;
  }
  take_run(r, run);
  if (!env.json)
    for (const auto& m : summary["models"])
      env.info(fmt::format("  {:<16} {:>6} steps  train CE {:.4f}  scenario CE {:.4f}{}  ({})",
                           m["name"].get<std::string>(), m["steps"].get<int64_t>(), m["train_loss"].get<double>(),
                           m["scenario_loss"].get<double>(),
                           m.value("check_accuracy", json(nullptr)).is_number()
                               ? fmt::format("  held-out samples {:.1f}%", 100 * m["check_accuracy"].get<double>())
                               : "",
                           format_duration(m["seconds"].get<double>())));
  r.models = static_cast<int64_t>(need(summary, "models", "correct").size());
  r.text = fmt::format(
      "correct: {} models fine-tuned on {} labelled scenarios in {}; next: defuse evaluate "
      "--workspace {}",
      r.models, summary["scenarios"].get<int64_t>(), format_duration(summary["seconds"].get<double>()), env.workspace);
  return r;
}

void run_correct_worker(const StageEnv& env, CorrectStageOptions options, const StagePlan& plan) {
  prepare_compute(env);
  CorrectOptions& o = options.correct;
  o.device = env.device;
  o.validate();
  check_options(options_json(o, plan.info.at("tau").get<double>(), plan.info.at("confirm").get<std::string>()), plan);
  if (plan.files.size() != 1 || plan.tensors.size() != 6)
    throw dist::DistError("correct: rank 0's plan does not carry the models it should (a different defuse version?)");
  ScratchDir scratch;
  auto device = parse_device(env.device, "correct");
  auto classifier = load_classifier(scratch.write("classifier.pt", plan.files[0]), device);
  classifier->to(torch::kCPU);
  auto set = [&](size_t at) {
    LabelledImages s;
    if (plan.tensors[at].size(0) > 0) s = {plan.tensors[at], plan.tensors[at + 1], plan.tensors[at + 2], {}};
    return s;
  };
  Dataset dataset = worker_dataset(env, options.data, plan);
  correct_classifier(*classifier, images_tensor(dataset.train, dataset), labels_tensor(dataset.train), set(0), set(3),
                     o);
}

}  // namespace defuse
