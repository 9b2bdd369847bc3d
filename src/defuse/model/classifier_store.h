// Moving the classifier stage's results in and out of a workspace.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "defuse/base/workspace.h"
#include "defuse/model/classifier.h"

namespace defuse {

inline constexpr const char* kClassifierStage = "train-classifier";
inline constexpr const char* kClassifierArtifact = "classifier/model.pt";

// Writes the model to the workspace atomically; returns (artifact name, relative path) for
// Workspace::complete_stage.
std::pair<std::string, std::string> save_classifier_artifact(Workspace& workspace, Classifier& model);

struct WorkspaceClassifier {
  std::unique_ptr<Classifier> model;
  StageRecord record;
};

// Loads the classifier of the latest complete train-classifier stage (StateError if none).
WorkspaceClassifier load_workspace_classifier(Workspace& workspace, c10::Device device);

}  // namespace defuse
