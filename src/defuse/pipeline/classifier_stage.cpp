#include "defuse/pipeline/classifier_stage.h"

#include <fmt/format.h>

#include "defuse/base/hash.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/pipeline/distributed_stage.h"

namespace defuse {
namespace {

using nlohmann::json;

std::string confusion_table(const Evaluation& eval, const Dataset& dataset) {
  std::string out = "confusion matrix (rows: true class, columns: predicted):\n      ";
  const size_t k = eval.confusion.size();
  for (size_t j = 0; j < k; ++j) out += fmt::format("{:>6}", j);
  out += "   accuracy  class\n";
  for (size_t i = 0; i < k; ++i) {
    out += fmt::format("{:>6}", i);
    int64_t total = 0;
    for (size_t j = 0; j < k; ++j) {
      out += fmt::format("{:>6}", eval.confusion[i][j]);
      total += eval.confusion[i][j];
    }
    double acc = total ? static_cast<double>(eval.confusion[i][i]) / static_cast<double>(total) : 0.0;
    out += fmt::format("   {:>8}  {}\n", percent(acc, 1), dataset.class_names[i]);
  }
  return out;
}

json metrics_json(const Evaluation& test, const Dataset& dataset) {
  return {{"test_accuracy", test.accuracy},
          {"confusion", test.confusion},
          {"classes", dataset.class_names},
          {"test_images", dataset.test.size()}};
}

}  // namespace

json options_json(const ClassifierStageOptions& o, const std::string& device) {
  if (!o.classifier.empty()) return {{"data", o.data}, {"classifier", o.classifier}, {"device", device}};
  const TrainClassifierOptions& t = o.train;
  json options = {{"data", o.data},       {"arch", t.arch},
                  {"epochs", t.epochs},   {"batch_size", t.batch_size},
                  {"lr", t.lr},           {"weight_decay", t.weight_decay},
                  {"augment", t.augment}, {"seed", t.seed},
                  {"device", device}};
  // fp32 stays out, so that fingerprints of before the option still match.
  const std::string precision = resolve_precision(t.precision, device);
  if (precision != "fp32") options["precision"] = precision;
  return options;
}

ClassifierStageResult run_classifier_stage(const StageEnv& env, ClassifierStageOptions o) {
  prepare_compute(env);
  o.train.device = env.device;
  auto device = parse_device(env.device, "train-classifier");
  auto lock = hold_workspace(env, "train-classifier");
  Workspace workspace(env.workspace);
  Dataset dataset = load_dataset_logged(env, o.data);
  json inputs = {{"dataset", dataset_fingerprint(dataset)}};
  const json options = options_json(o, env.device);
  ClassifierStageResult r;
  StageRun run;
  PlanSender plan(kClassifierStage);  // an import computes on rank 0 alone

  if (!o.classifier.empty()) {
    // Import: validate, evaluate, copy into the workspace.
    inputs["classifier"] = hash_file(o.classifier);
    run = run_stage(env, workspace, kClassifierStage, options, inputs, [&](int64_t) {
      auto model = load_classifier(o.classifier, device);
      validate_classifier(*model, dataset, o.classifier);
      auto test = evaluate_classifier(*model, dataset.test, dataset, o.train.eval_batch_size, env.device);
      model->to(torch::kCPU);
      json metrics = metrics_json(test, dataset);
      metrics["arch"] = model->spec().arch;
      metrics["epochs"] = 0;
      metrics["seconds"] = 0.0;
      r.text = fmt::format("train-classifier: imported {}: test accuracy {}", o.classifier, percent(test.accuracy));
      if (!env.quiet && !env.json) env.info(confusion_table(test, dataset));
      return Workspace::StageOutput{metrics, {save_classifier_artifact(workspace, *model)}, nullptr};
    });
  } else {
    std::unique_ptr<Progress> bar;
    o.train.on_progress = [&](const TrainProgress& p) {
      if (p.batch == 1) {
        if (bar) bar->finish();
        bar = std::make_unique<Progress>(env.log(), fmt::format("epoch {}/{}", p.epoch, p.epochs), p.batches,
                                         env.progress());
      }
      bar->update(p.batch, fmt::format("loss {:.4f}  acc {}", p.loss, percent(p.accuracy)));
    };
    run = run_stage(env, workspace, kClassifierStage, options, inputs, [&](int64_t) {
      plan.send({kClassifierStage, true, plan_info(options, o.data, inputs["dataset"].get<std::string>())});
      auto result = train_classifier(dataset, o.train);
      if (bar) bar->finish();
      json epochs = json::array();
      for (const auto& e : result.epochs)
        epochs.push_back({{"epoch", e.epoch},
                          {"train_loss", e.train_loss},
                          {"train_accuracy", e.train_accuracy},
                          {"seconds", e.seconds}});
      json metrics = metrics_json(result.test, dataset);
      metrics["arch"] = result.model->spec().arch;
      metrics["epochs"] = static_cast<int>(result.epochs.size());
      metrics["seconds"] = result.seconds;
      metrics["seconds_per_epoch"] = result.seconds / static_cast<double>(result.epochs.size());
      metrics["history"] = epochs;
      metrics["train_accuracy"] = result.epochs.back().train_accuracy;
      if (result.ranks > 1)
        metrics["distributed"] = distributed_json(result.ranks, result.comm_seconds, result.comm_bytes, result.steps);
      r.text = fmt::format("train-classifier: {} on {}, {} epochs in {}: test accuracy {}",
                           metrics["arch"].get<std::string>(), dataset.name, result.epochs.size(),
                           format_duration(result.seconds), percent(result.test.accuracy));
      if (!env.json) env.info(confusion_table(result.test, dataset));
      return Workspace::StageOutput{metrics, {save_classifier_artifact(workspace, *result.model)}, nullptr};
    });
  }
  take_run(r, run);
  r.model = workspace.path(kClassifierArtifact).string();
  r.summary["model"] = r.model;
  r.summary.erase("confusion");
  r.test_accuracy = need(r.summary, "test_accuracy", "train-classifier").get<double>();
  r.text += " -> " + r.model;
  return r;
}

void run_classifier_worker(const StageEnv& env, ClassifierStageOptions o, const StagePlan& plan) {
  prepare_compute(env);
  o.train.device = env.device;
  check_options(options_json(o, env.device), plan);
  Dataset dataset = worker_dataset(env, o.data, plan);
  train_classifier(dataset, o.train);
}

}  // namespace defuse
