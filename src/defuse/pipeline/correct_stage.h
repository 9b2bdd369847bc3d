// Stage correct: fine-tune the classifier on its labelled scenarios, CE(train) + λ·CE(scenario
// draws the judges confirm), for a sweep of λ and the failures-only baseline (DESIGN §3).
#pragma once

#include <string>

#include "defuse/correct/correct.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

struct CorrectStageOptions {
  std::string data;                // dataset spec ("": the workspace classifier's)
  std::string confirm = "judges";  // judges: train only on draws the judges confirm; none: on every draw
  // When the judges confirm no draw: end with nothing corrected (nothing_to_correct) instead
  // of an error (what `defuse run` does).
  bool allow_nothing = false;
  CorrectOptions correct;  // tau unset: distill's scenario_tau
};

// The fingerprint options: `tau` is the τ the samples are drawn at, `confirm` the rule applied.
nlohmann::json options_json(const CorrectOptions& o, double tau, const std::string& confirm);

struct CorrectStageResult : StageResult {
  int64_t models = 0;               // fine-tuned models (the λ sweep and the baseline)
  bool nothing_to_correct = false;  // allow_nothing and the judges confirmed no draw
};

CorrectStageResult run_correct_stage(const StageEnv& env, CorrectStageOptions options);

// A rank other than 0 of a distributed run: the models of the sweep that fall to it
// (distributed_stage.h).
struct StagePlan;
void run_correct_worker(const StageEnv& env, CorrectStageOptions options, const StagePlan& plan);

}  // namespace defuse
