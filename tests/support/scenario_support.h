// Test support for the annotation stage: a tiny workspace whose latest "distill" stage holds
// a few scenarios with small PNG thumbnails, as `defuse distill` would leave it. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "defuse/annotate/scenario_store.h"
#include "defuse/base/image_io.h"

namespace defuse::test {

struct ScenarioWorkspaceOptions {
  int64_t scenarios = 4;    // scenarios 1..n
  int64_t samples = 8;      // decoded samples per scenario
  int64_t neighbours = 4;   // nearest real training images per scenario
  int64_t latent = 3;       // latent size of the stored means and covariances
  int64_t image_size = 28;  // thumbnails are image_size x image_size, grey
  // Class names; empty = Fashion-MNIST's ten.
  std::vector<std::string> class_names;
};

// A grey garment-like blob of `size` x `size`: an ellipse whose shape depends on `scenario`,
// jittered per `index`, with a soft edge and a little texture (`real` images are brighter
// and smoother), so that screenshots of pages look like something.
Image blob_image(int64_t size, int64_t scenario, int64_t index, bool real);

// The Fashion-MNIST class names, in label order.
std::vector<std::string> fashion_mnist_classes();

// Creates (or adds to) the workspace at `dir`: writes the thumbnails under
// scenarios/run-<id>/ and records a complete "distill" stage whose scenarios are written by
// write_scenarios in the stage's transaction, with the thumbnails as its artifacts. Scenario
// k (1-based) has seed label (2k) mod classes and predicted label (2k+1) mod classes.
// Returns the set as stored (with its run id).
ScenarioSet make_scenario_workspace(const std::filesystem::path& dir, const ScenarioWorkspaceOptions& options = {});

}  // namespace defuse::test
