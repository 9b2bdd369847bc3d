// Writing a workspace's classifiers out as TorchScript (`defuse export`, `evaluate --export`).
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "defuse/base/workspace.h"

namespace defuse::cli {

// Writes model `which` of the workspace to `file` atomically with export_torchscript and
// returns the path written. `which`: "chosen" (evaluate's choice), "original", "baseline",
// "lambda=<λ>" or just the number λ. Throws ConfigError for an unknown model, StateError
// when the stage that holds it has not run.
std::string export_model(Workspace& workspace, const std::string& which, const std::string& file, c10::Device device);

}  // namespace defuse::cli
