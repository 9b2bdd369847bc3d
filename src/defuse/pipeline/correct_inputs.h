// What `defuse correct` and `defuse evaluate` both read from a workspace: the dataset, the
// trained classifier, the VAE, the labelled scenarios and their failures, checked against
// each other, with the fingerprints of all of them for the stage records.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "defuse/base/stage_env.h"
#include "defuse/annotate/annotation_store.h"
#include "defuse/annotate/scenario_store.h"
#include "defuse/base/workspace.h"
#include "defuse/correct/correct.h"
#include "defuse/data/dataset.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/vae.h"

namespace defuse {

struct CorrectionInputs {
  Dataset dataset;
  std::unique_ptr<Classifier> classifier;  // the trained (original) classifier
  std::unique_ptr<Vae> vae;
  ScenarioSet scenarios;
  std::vector<ResolvedScenario> resolved;
  std::vector<LabelledScenario> labelled;  // the scenarios that take part
  LabelledImages failures;                 // identified failures of the labelled scenarios
  double distill_tau = 0;                  // the τ to draw scenario samples at (scenario_tau: distill's show_tau)
  int64_t automatic = 0;                   // labelled scenarios decided by automatic votes only
  JudgePanel judges;                       // the workspace's judges (empty without train-judges)
  VerdictRule verdict;                     // when the judges' reading counts (identify's rule)
  nlohmann::json fingerprints;             // dataset, classifier, vae, distill, identify, annotations, judges
};

// Loads and checks everything; logs what is left out (rejected, tied or unlabelled
// scenarios) and warns when labels were automatic. Throws StateError when the workspace is
// not ready (no annotations, every scenario rejected, identify re-run since distill, ...).
// `stage` names the command in the log lines.
CorrectionInputs load_correction_inputs(const StageEnv& env, Workspace& workspace, const std::string& data,
                                        bool with_failures, const std::string& stage = "correct");

}  // namespace defuse
