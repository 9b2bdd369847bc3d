// defuse report: a self-contained HTML report of a workspace (report/index.html; the stage
// itself is src/defuse/pipeline/report_stage.h).
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/report_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, ReportStageOptions& o) {
  app.add_option("-d,--data", o.data, "Dataset spec (default: the one the workspace's classifier was trained on)");
  app.add_option("-o,--output", o.output, "HTML file to write (default: <workspace>/report/index.html)");
  app.add_option("--map-train", o.map_train, "Training codes on the latent map (a random subset; 0: none)")
      ->capture_default_str();
  app.add_option("--map-failures", o.map_failures, "Failure codes on the latent map (a random subset)")
      ->capture_default_str();
  app.add_option("--perplexity", o.perplexity, "t-SNE perplexity of the latent map")->capture_default_str();
  app.add_option("--seed", o.seed, "Random seed (map subsets, t-SNE)")->capture_default_str();
}

namespace {

const Registrar registrar = stage_command<ReportStageOptions>(
    "report",
    "Write a self-contained HTML report of the workspace: settings, scenario galleries, latent map, lambda curves", 85,
    run_report_stage, Writes::kNo);

}  // namespace
}  // namespace defuse::cli
