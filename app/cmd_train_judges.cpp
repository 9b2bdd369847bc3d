// defuse train-judges: the classifiers other than the one under test that read every found
// failure (DESIGN §3, "Validity"): the user's own (--judge FILE.pt) and zoo models defuse
// trains with other architectures, seeds and augmentation.
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/judges_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, JudgesStageOptions& o) {
  app.add_option("-d,--data", o.data,
                 "Dataset spec (default: the one the workspace's classifier was trained on, else fashion-mnist)");
  app.add_option("--judge", o.train.files,
                 "A classifier you trust more than the one under test (TorchScript or defuse checkpoint, same "
                 "input as the classifier); repeatable. Checked against the data before any training")
      ->take_all();
  app.add_option("--archs", o.train.archs,
                 "Zoo architectures of the judges defuse trains, one judge each (auto: cnn,mlp,cnn; "
                 "none: train no judge)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--epochs", o.train.epochs, "Passes over the training split per trained judge")->capture_default_str();
  app.add_option("--batch-size", o.train.batch_size, "Training batch size of each trained judge")
      ->capture_default_str();
  app.add_flag("--augment,!--no-augment", o.train.augment, "Random ±2 px shifts of the judges' training images")
      ->capture_default_str();
  app.add_option("--seed", o.train.seed, "Random seed of the trained judges (judge i: derived from it)")
      ->capture_default_str();
  add_training_precision_option(app, o.train.precision, "fp32, or bf16");
}

namespace {

const Registrar registrar = stage_command<JudgesStageOptions>(
    "train-judges",
    "Train the judges (classifiers other than the one under test) that tell genuine failures from label changes", 15,
    run_judges_stage, Writes::kYes, run_judges_worker);

}  // namespace
}  // namespace defuse::cli
