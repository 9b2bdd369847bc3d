// Stage train-judges: the classifiers other than the one under test that read every found
// failure (DESIGN §3, "Validity"): the user's own and zoo models defuse trains with other
// architectures, seeds and augmentation.
#pragma once

#include <string>

#include "defuse/judge/judges.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {

struct JudgesStageOptions {
  std::string data;          // dataset spec ("": the workspace classifier's)
  TrainJudgesOptions train;  // archs {"none"} trains no judge
};

// The fingerprint options; `archs` are the architectures "auto" resolved to on the data.
nlohmann::json options_json(const JudgesStageOptions& o, const std::string& data, const std::vector<std::string>& archs,
                            const std::string& device);

struct JudgesStageResult : StageResult {
  int64_t count = 0;  // judges in the workspace
};

JudgesStageResult run_judges_stage(const StageEnv& env, JudgesStageOptions options);

// A rank other than 0 of a distributed run: its share of the work rank 0 planned
// (distributed_stage.h).
struct StagePlan;
void run_judges_worker(const StageEnv& env, JudgesStageOptions options, const StagePlan& plan);

}  // namespace defuse
