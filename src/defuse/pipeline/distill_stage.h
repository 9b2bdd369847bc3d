// Stage distill: cluster the identified failures with the DP-GMM into ranked failure
// scenarios, each with its judges' verdict, thumbnails and neighbours (DESIGN §3).
#pragma once

#include <optional>
#include <string>

#include "defuse/distill/distill.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

struct DistillStageOptions {
  std::string data;  // dataset spec ("": the workspace classifier's)
  DistillOptions distill;
};

// The fingerprint options.
nlohmann::json options_json(const DistillOptions& o);

// How many scenarios the judges call what (DESIGN §3, "Validity").
struct VerdictCounts {
  int64_t genuine = 0, label_change = 0, ambiguous = 0;
};

struct DistillStageResult : StageResult {
  int64_t scenarios = 0, failures = 0;
  std::optional<VerdictCounts> verdicts;  // unset without judges
};

DistillStageResult run_distill_stage(const StageEnv& env, DistillStageOptions options);

}  // namespace defuse
