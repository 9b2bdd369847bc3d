// Stage train-classifier: train a zoo classifier on the dataset, or import the user's
// TorchScript one; either way it is checked against the data and scored on the test split.
#pragma once

#include <string>

#include "defuse/pipeline/stage_support.h"
#include "defuse/train/train_classifier.h"

namespace defuse {

struct ClassifierStageOptions {
  std::string data = kDefaultData;  // dataset spec (README: Datasets)
  std::string classifier;           // a TorchScript file to import instead of training ("": train)
  TrainClassifierOptions train;     // the zoo model's training (unused on import)
};

// The options that decide the stage's result (its fingerprint); `device` is where it runs.
nlohmann::json options_json(const ClassifierStageOptions& o, const std::string& device);

struct ClassifierStageResult : StageResult {
  double test_accuracy = 0;
  std::string model;  // the stored classifier's path
};

ClassifierStageResult run_classifier_stage(const StageEnv& env, ClassifierStageOptions options);

// A rank other than 0 of a distributed run: its share of the work rank 0 planned
// (distributed_stage.h).
struct StagePlan;
void run_classifier_worker(const StageEnv& env, ClassifierStageOptions options, const StagePlan& plan);

}  // namespace defuse
