// defuse distill: cluster the identified failures into ranked failure scenarios.
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/distill_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, DistillStageOptions& o) {
  app.add_option("-d,--data", o.data, "Dataset spec (default: the one the workspace's classifier was trained on)");
  app.add_option("--points", o.distill.points,
                 "What the DP-GMM clusters: seeds (one point per seed: the mean code of its failures) or failures "
                 "(every failure, the reference's)")
      ->check(CLI::IsMember({"seeds", "failures"}))
      ->capture_default_str();
  app.add_option("--min-seeds", o.distill.min_seeds, "Scenarios need failures of at least this many seeds")
      ->capture_default_str();
  app.add_option("--components", o.distill.components, "DP-GMM truncation K (most scenarios it can find)")
      ->capture_default_str();
  app.add_option("--covariance", o.distill.covariance, "Component covariance: full, diag, spherical, tied")
      ->check(CLI::IsMember({"full", "diag", "spherical", "tied"}))
      ->capture_default_str();
  app.add_option("--concentration", o.distill.concentration, "Weight concentration prior (0 = 1/K)")
      ->capture_default_str();
  app.add_option("--max-iter", o.distill.max_iter, "DP-GMM iterations at most")->capture_default_str();
  app.add_option("--tol", o.distill.tol, "DP-GMM convergence tolerance on the lower bound")->capture_default_str();
  app.add_option("--n-init", o.distill.n_init, "DP-GMM fits from different initialisations")->capture_default_str();
  app.add_option("--min-weight", o.distill.min_weight, "Components heavier than this become scenario candidates")
      ->capture_default_str();
  app.add_option("--tau", o.distill.tau, "Scenario samples come from N(mean, tau * covariance)")->capture_default_str();
  app.add_option("--samples", o.distill.samples, "Samples per scenario to measure its failure rate")
      ->capture_default_str();
  app.add_option("--shown", o.distill.shown,
                 "Thumbnails kept per scenario: draws at its own spread, and as many member failures")
      ->capture_default_str();
  app.add_option("--show-tau", o.distill.show_tau,
                 "The shown draws come from N(mean, show_tau * covariance) (1: the scenario's own spread)")
      ->capture_default_str();
  app.add_option("--neighbours", o.distill.neighbours, "Nearest real training images per scenario")
      ->capture_default_str();
  app.add_option("--min-failure-rate", o.distill.min_failure_rate,
                 "Drop scenarios whose samples (at --tau around the mean) fail less often than this (0: keep "
                 "all, the reference's)")
      ->capture_default_str();
  app.add_option("--seed", o.distill.seed, "Random seed (k-means, scenario samples)")->capture_default_str();
  app.add_option("--batch-size", o.distill.batch_size, "Decodes per forward pass")->capture_default_str();
}

namespace {

const Registrar registrar = stage_command<DistillStageOptions>(
    "distill", "Cluster the identified failures (DP-GMM) into ranked failure scenarios with thumbnails", 40,
    run_distill_stage);

}  // namespace
}  // namespace defuse::cli
