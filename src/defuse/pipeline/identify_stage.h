// Stage identify: search the VAE's latent space around seed images for realistic decodes the
// classifier gets wrong (DESIGN §3, "Identification"), read each by the judges, keep what
// the gate lets through, and draw the failure grids.
#pragma once

#include <string>

#include "defuse/identify/identify.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

struct IdentifyStageOptions {
  std::string data;                       // dataset spec ("": the workspace classifier's)
  std::string split = "train";            // where the seeds come from: train or test
  bool all_seeds = false;                 // also seeds the classifier gets wrong (the reference's)
  bool keep_bad_reconstructions = false;  // also seeds whose plain reconstruction it misreads
  int64_t grid = 50;                      // failures shown in identify/failures.png (one per seed)
  IdentifyOptions search;                 // the search itself (gate "auto": genuine with judges)
};

// The fingerprint options (the gate and precision resolved: with judges or not, the device).
nlohmann::json options_json(const IdentifyStageOptions& o, const std::string& data, bool has_judges,
                            const std::string& precision);

struct IdentifyStageResult : StageResult {
  int64_t seeds = 0, failures = 0;
  double decodes_per_second = 0;
};

IdentifyStageResult run_identify_stage(const StageEnv& env, IdentifyStageOptions options);

// A rank other than 0 of a distributed run: its share of the work rank 0 planned
// (distributed_stage.h).
struct StagePlan;
void run_identify_worker(const StageEnv& env, IdentifyStageOptions options, const StagePlan& plan);

}  // namespace defuse
