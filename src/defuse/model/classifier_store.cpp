#include "defuse/model/classifier_store.h"

#include "defuse/base/atomic_file.h"

namespace defuse {

std::pair<std::string, std::string> save_classifier_artifact(Workspace& workspace, Classifier& model) {
  write_atomic_via(workspace.path(kClassifierArtifact), [&](const std::filesystem::path& tmp) { model.save(tmp); });
  return {"model", kClassifierArtifact};
}

WorkspaceClassifier load_workspace_classifier(Workspace& workspace, c10::Device device) {
  WorkspaceClassifier out;
  out.record = workspace.require(kClassifierStage, "train-classifier");
  const ArtifactRecord* artifact = out.record.artifact("model");
  out.model = load_classifier(workspace.path(artifact ? artifact->path : kClassifierArtifact), device);
  return out;
}

}  // namespace defuse
