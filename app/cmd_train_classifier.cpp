// defuse train-classifier: train a zoo classifier, or import the user's TorchScript one.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/hash.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/train/train_classifier.h"

namespace defuse::cli {
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
  return {{"test_accuracy", test.accuracy}, {"confusion", test.confusion}, {"classes", dataset.class_names},
          {"test_images", dataset.test.size()}};
}

const Registrar registrar(
    "train-classifier", "Train a classifier from the zoo (or import a TorchScript one) and evaluate it",
    [](CLI::App& app, Context& ctx) -> Action {
      auto opts = std::make_shared<TrainClassifierOptions>();
      auto data = std::make_shared<std::string>(kDefaultData);
      auto classifier = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data,
                     "Dataset spec KIND[:DIR][,KEY=VALUE]...: fashion-mnist[:DIR], mnist:DIR, svhn:DIR, gtsrb:DIR or "
                     "folder:DIR; gtsrb and folder take size=N, holdout=F and split-seed=N, gtsrb also gt=PATH "
                     "(README: Datasets)")
          ->capture_default_str();
      app.add_option("--classifier", *classifier,
                     "Use this TorchScript classifier (FILE.pt) instead of training one; it is validated "
                     "and evaluated on the test split");
      app.add_option("--arch", opts->arch, "Architecture: auto (cnn for grey, resnet for colour), cnn, resnet, mlp")
          ->check(CLI::IsMember({"auto", "cnn", "resnet", "mlp"}))
          ->capture_default_str();
      app.add_option("--epochs", opts->epochs, "Passes over the training split")->capture_default_str();
      app.add_option("--batch-size", opts->batch_size, "Training batch size")->capture_default_str();
      app.add_option("--lr", opts->lr, "Peak learning rate of the one-cycle schedule (AdamW)")->capture_default_str();
      app.add_option("--weight-decay", opts->weight_decay, "AdamW weight decay")->capture_default_str();
      app.add_flag("--augment,!--no-augment", opts->augment, "Random ±2 px shifts of training images")
          ->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed (initialisation, shuffling, dropout)")->capture_default_str();

      return [opts, data, classifier](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        auto device = parse_device(ctx.device, "train-classifier");
        auto lock = hold_workspace(ctx, "train-classifier");
        Workspace workspace(ctx.workspace);
        Dataset dataset = load_dataset_logged(ctx, *data);
        json inputs = {{"dataset", dataset_fingerprint(dataset)}};
        json summary;
        std::string text;

        if (!classifier->empty()) {
          // Import: validate, evaluate, copy into the workspace.
          json options = {{"data", *data}, {"classifier", *classifier}, {"device", ctx.device}};
          inputs["classifier"] = hash_file(*classifier);
          StageRun run = run_stage(ctx, workspace, "train-classifier", options, inputs, [&](int64_t) {
            auto model = load_classifier(*classifier, device);
            validate_classifier(*model, dataset, *classifier);
            auto test = evaluate_classifier(*model, dataset.test, dataset, opts->eval_batch_size, ctx.device);
            model->to(torch::kCPU);
            json metrics = metrics_json(test, dataset);
            metrics["arch"] = model->spec().arch;
            metrics["epochs"] = 0;
            metrics["seconds"] = 0.0;
            summary = metrics;
            text = fmt::format("train-classifier: imported {}: test accuracy {}", *classifier, percent(test.accuracy));
            if (!ctx.quiet && !ctx.json) ctx.info(confusion_table(test, dataset));
            return Workspace::StageOutput{metrics, {save_classifier_artifact(workspace, *model)}, nullptr};
          });
          if (run.reused) {
            summary = run.record.metrics;
            summary["skipped"] = true;
            text = skipped_text(run.record);
          }
        } else {
          json options = {{"data", *data},       {"arch", opts->arch},
                          {"epochs", opts->epochs}, {"batch_size", opts->batch_size},
                          {"lr", opts->lr},         {"weight_decay", opts->weight_decay},
                          {"augment", opts->augment}, {"seed", opts->seed},
                          {"device", ctx.device}};
          std::unique_ptr<Progress> bar;
          opts->on_progress = [&](const TrainProgress& p) {
            if (p.batch == 1) {
              if (bar) bar->finish();
              bar = std::make_unique<Progress>(*ctx.err, fmt::format("epoch {}/{}", p.epoch, p.epochs), p.batches,
                                               ctx.progress());
            }
            bar->update(p.batch, fmt::format("loss {:.4f}  acc {}", p.loss, percent(p.accuracy)));
          };
          StageRun run = run_stage(ctx, workspace, "train-classifier", options, inputs, [&](int64_t) {
            auto result = train_classifier(dataset, *opts);
            if (bar) bar->finish();
            json epochs = json::array();
            for (const auto& e : result.epochs)
              epochs.push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss},
                                {"train_accuracy", e.train_accuracy}, {"seconds", e.seconds}});
            json metrics = metrics_json(result.test, dataset);
            metrics["arch"] = result.model->spec().arch;
            metrics["epochs"] = opts->epochs;
            metrics["seconds"] = result.seconds;
            metrics["seconds_per_epoch"] = result.seconds / opts->epochs;
            metrics["history"] = epochs;
            metrics["train_accuracy"] = result.epochs.back().train_accuracy;
            summary = metrics;
            text = fmt::format("train-classifier: {} on {}, {} epochs in {}: test accuracy {}", metrics["arch"].get<std::string>(),
                               dataset.name, opts->epochs, format_duration(result.seconds),
                               percent(result.test.accuracy));
            if (!ctx.json) ctx.info(confusion_table(result.test, dataset));
            return Workspace::StageOutput{metrics, {save_classifier_artifact(workspace, *result.model)}, nullptr};
          });
          if (run.reused) {
            summary = run.record.metrics;
            summary["skipped"] = true;
            text = skipped_text(run.record);
          }
        }
        summary["model"] = workspace.path(kClassifierArtifact).string();
        summary.erase("confusion");
        ctx.result(summary, text + " -> " + workspace.path(kClassifierArtifact).string());
      };
    },
    10);

}  // namespace
}  // namespace defuse::cli
