// Stage evaluate: score the original classifier, every λ model and the baseline on the test
// split, on held-out scenario draws the judges confirm, on the scenarios' identified failures
// and on the fresh failures among the draws; choose λ by the rule (DESIGN §3).
#pragma once

#include <string>

#include "defuse/correct/evaluate.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

struct EvaluateStageOptions {
  std::string data;                // dataset spec ("": the workspace classifier's)
  std::string confirm = "judges";  // judges: score only draws the judges confirm; none: every draw
  EvaluateOptions evaluate;        // tau unset: distill's scenario_tau
};

// The fingerprint options.
nlohmann::json options_json(const EvaluateOptions& o, double tau, const std::string& confirm);

struct EvaluateStageResult : StageResult {
  EvaluationResult evaluation;  // the models' scores and the choice
};

EvaluateStageResult run_evaluate_stage(const StageEnv& env, EvaluateStageOptions options);

}  // namespace defuse
