// Moving corrected classifiers and evaluation results in and out of a workspace.
//
// `defuse correct` writes one checkpoint per model, correct/<name>.pt ("lambda-0.01.pt",
// "baseline.pt"), in the classifier's own format (a zoo checkpoint or a TorchScript module),
// and lists them in its stage metrics ("models": [{name, lambda, artifact, ...}]). The
// artifacts are named "model:<name>". `defuse evaluate` writes evaluate/results.json and
// evaluate/results.csv and records the chosen model in its metrics.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "defuse/base/workspace.h"
#include "defuse/correct/correct.h"

namespace defuse {

inline constexpr const char* kEvaluationJsonArtifact = "evaluate/results.json";
inline constexpr const char* kEvaluationCsvArtifact = "evaluate/results.csv";
inline constexpr const char* kHeldOutArtifact = "evaluate/heldout.pt";

// The artifact path of a corrected model ("correct/lambda-0.01.pt", "correct/baseline.pt").
std::string corrected_model_path(const std::string& name);

// Writes every model atomically; returns (artifact name, relative path) pairs for the stage.
std::vector<std::pair<std::string, std::string>> save_corrected_models(Workspace& workspace,
                                                                       const CorrectResult& result);

struct StoredModel {
  std::string name;    // "lambda=<λ>" or "baseline"
  double lambda = -1;  // -1 for the baseline
  std::unique_ptr<Classifier> model;
};

struct WorkspaceCorrected {
  std::vector<StoredModel> models;  // in the stage's order
  StageRecord record;
};

// Writes evaluate/heldout.pt atomically (an archive Python reads with torch.jit.load):
// `images` uint8 [N, C, H, W], `labels` int64 [N] (each draw's scenario label), `scenario`
// int64 [N] (index into the labelled scenarios), `genuine` bool [N] (its scenario's verdict is
// genuine) and `pred_<model>` int64 [N] for every scored model, with the string `models`
// (JSON) mapping those attribute names to the model names.
void save_held_out(Workspace& workspace, const LabelledImages& held_out, const std::vector<bool>& genuine,
                   const std::vector<std::pair<std::string, at::Tensor>>& predictions);

// The models of the latest complete, intact correct stage (StateError telling to run
// `defuse correct` if there is none).
WorkspaceCorrected load_corrected_models(Workspace& workspace, c10::Device device);

}  // namespace defuse
