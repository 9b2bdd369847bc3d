// defuse train-classifier: train a zoo classifier, or import the user's TorchScript one.
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/classifier_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, ClassifierStageOptions& o) {
  app.add_option("-d,--data", o.data,
                 "Dataset spec KIND[:DIR][,KEY=VALUE]...: fashion-mnist[:DIR], mnist:DIR, svhn:DIR, gtsrb:DIR or "
                 "folder:DIR; gtsrb and folder take size=N, holdout=F and split-seed=N, gtsrb also gt=PATH "
                 "(README: Datasets)")
      ->capture_default_str();
  app.add_option("--classifier", o.classifier,
                 "Use this TorchScript classifier (FILE.pt) instead of training one; it is validated "
                 "and evaluated on the test split");
  app.add_option("--arch", o.train.arch, "Architecture: auto (the cnn, on grey and colour images), cnn, resnet, mlp")
      ->check(CLI::IsMember({"auto", "cnn", "resnet", "mlp"}))
      ->capture_default_str();
  app.add_option("--epochs", o.train.epochs, "Passes over the training split")->capture_default_str();
  app.add_option("--batch-size", o.train.batch_size, "Training batch size")->capture_default_str();
  app.add_option("--lr", o.train.lr, "Peak learning rate of the one-cycle schedule (AdamW)")->capture_default_str();
  app.add_option("--weight-decay", o.train.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_flag("--augment,!--no-augment", o.train.augment, "Random ±2 px shifts of training images")
      ->capture_default_str();
  app.add_option("--seed", o.train.seed, "Random seed (initialisation, shuffling, dropout)")->capture_default_str();
  add_training_precision_option(app, o.train.precision, "fp32 (default), or bf16");
}

namespace {

const Registrar registrar = stage_command<ClassifierStageOptions>(
    "train-classifier", "Train a classifier from the zoo (or import a TorchScript one) and evaluate it", 10,
    run_classifier_stage, Writes::kYes, run_classifier_worker);

}  // namespace
}  // namespace defuse::cli
