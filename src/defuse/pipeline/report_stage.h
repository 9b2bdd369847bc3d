// Stage report: a self-contained HTML report of a workspace (report/index.html): the
// findings first, scenario galleries with their verdicts and before/after accuracy, a t-SNE
// map of training codes, failure codes and scenario means, the λ curves, the failure grid
// and an interpolation strip, then settings and timings in words. Works on a partial
// workspace (sections not yet computed say so). Recorded as a stage, so `defuse run` skips
// it when nothing changed.
#pragma once

#include <cstdint>
#include <string>

#include "defuse/pipeline/stage_support.h"

namespace defuse {

inline constexpr const char* kReportStage = "report";
inline constexpr const char* kReportArtifact = "report/index.html";

struct ReportStageOptions {
  std::string data;             // dataset spec ("": the workspace classifier's)
  int64_t map_train = 2000;     // training codes on the latent map (a random subset)
  int64_t map_failures = 1500;  // failure codes on the latent map (a random subset)
  double perplexity = 30;       // t-SNE perplexity
  uint64_t seed = 0;            // subsets and t-SNE
  std::string output;           // "" = <workspace>/report/index.html
};

// The fingerprint options (`output` resolved).
nlohmann::json options_json(const ReportStageOptions& o, const std::string& output);

struct ReportStageResult : StageResult {
  std::string path;  // the HTML file
};

ReportStageResult run_report_stage(const StageEnv& env, const ReportStageOptions& options);

}  // namespace defuse
