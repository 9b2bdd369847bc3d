// Stage train-vae: train the β-VAE whose latent space identify searches, encode both
// splits, and measure its fidelity (the classifier's accuracy on its test reconstructions).
#pragma once

#include <optional>
#include <string>

#include "defuse/pipeline/stage_support.h"
#include "defuse/train/train_vae.h"

namespace defuse {

struct VaeStageOptions {
  std::string data;  // dataset spec ("": the workspace classifier's)
  TrainVaeOptions train;
};

// The fingerprint options, with the latent size, filters and precision resolved for the data
// and the device.
nlohmann::json options_json(const VaeStageOptions& o, const std::string& data, const Dataset& dataset,
                            const std::string& device);

struct VaeStageResult : StageResult {
  double test_reconstruction = 0, test_kl = 0;
  // The classifier's accuracy on the decoded test means; unset without a classifier that fits.
  std::optional<double> reconstruction_accuracy;
};

VaeStageResult run_vae_stage(const StageEnv& env, VaeStageOptions options);

// A rank other than 0 of a distributed run: its share of the work rank 0 planned
// (distributed_stage.h).
struct StagePlan;
void run_vae_worker(const StageEnv& env, VaeStageOptions options, const StagePlan& plan);

}  // namespace defuse
