// Stage: distil identified failures into failure scenarios (DESIGN §3, "Distillation").
//
// 1. Fit the variational DP-GMM (dpgmm.h) on one point per seed, the mean code of its kept
//    failures (or, --points failures, on every kept failure's code: the reference, which fits
//    a 10,000-point with-replacement subsample); a failure belongs to its seed's component.
// 2. Every component heavier than `min_weight` whose failures come from at least `min_seeds`
//    seeds is a candidate scenario.
// 3. For each candidate, draw S fresh codes from N(mean, τ·cov), decode, classify: the
//    scenario's failure rate is the share whose prediction differs from the scenario's
//    dominant seed label (the reference never measures this; we rank and filter by it).
// 4. Its members (failures assigned to it) give the dominant seed and predicted labels and
//    their shares; its nearest real training images in latent space, with the classifier's
//    accuracy on them, tell whether the failure is already visible in real data.
// 5. With judges (DESIGN §3, "Validity"): the verdicts of its members give its own verdict
//    (genuine when at least half the members are genuine, label change when at least half are
//    label changes, else ambiguous), and draws at its own spread, read by the judges, how
//    often its region holds genuine failures. Its member failures are shown beside those
//    draws (their real variety), not only τ-draws that all look alike.
// 6. Rank genuine scenarios first, then ambiguous ones, then label changes ("the classifier is
//    right here"), each by genuine failure mass: weight × failure rate × genuine share (× 1
//    without judges); keep those with failure rate ≥ `min_failure_rate` (default 0: all).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "defuse/annotate/scenario_store.h"
#include "defuse/judge/verdict.h"

namespace defuse {

class Vae;
class Classifier;
class Workspace;
class JudgePanel;
struct FailureSet;
struct StageRecord;

inline constexpr const char* kDistillStage = "distill";
// The reference's τ: scenario samples come from N(mean, τ·cov).
inline constexpr double kDefaultScenarioTau = 0.01;

struct DistillOptions {
  std::string points = "seeds";      // what the mixture clusters: seeds (one point per seed, the mean code of its
                                     // kept failures) or failures (every kept failure, the reference's); seeds,
                                     // because a seed's M failures otherwise form a "scenario" of their own
  int64_t min_seeds = 3;             // scenarios need failures of at least this many seeds: a failure of one
                                     // image is an example, not a scenario
  int64_t components = 100;          // DP-GMM truncation K (the reference's 100)
  std::string covariance = "full";   // full, diag, spherical or tied (the reference: full)
  double concentration = 0;          // weight concentration prior α; 0 = 1/K (the reference's)
  int max_iter = 1000;               // coordinate-ascent iterations at most (reference 10,000; tol stops far earlier)
  double tol = 1e-3;                 // stop when the lower bound changes less (scikit-learn's default)
  double reg_covar = 1e-6;           // added to covariance diagonals (scikit-learn's default)
  int n_init = 1;                    // fits from different k-means seeds; the best lower bound wins
  double min_weight = 0.01;          // components heavier than this are candidates (the reference's cutoff)
  double tau = kDefaultScenarioTau;  // the failure-rate samples come from N(mean, τ·cov) (the reference's τ)
  int64_t samples = 64;              // S: samples drawn per scenario to measure its failure rate (reference 64)
  int64_t shown = 16;                // thumbnails kept for annotators: draws at the scenario's own spread,
                                     // and as many of its member failures
  double show_tau = 1.0;             // the shown draws come from N(mean, show_tau·cov): 1, the scenario's own
                                     // spread (τ = 0.01 draws all look alike); the judges read them too
  VerdictRule verdict;               // when the judges' reading of a draw counts as sure
  int64_t neighbours = 8;            // nearest real training images shown per scenario
  double min_failure_rate = 0;       // scenarios whose τ-samples fail less often than this are dropped; 0: none
                                     // (the reference keeps every component above min_weight). At 0.5 it dropped
                                     // every genuine scenario of the Fashion-MNIST main job (failure rates 0-19%
                                     // at the mean of judge-confirmed failures from >= 3 seeds) and half of MNIST's
                                     // (docs/benchmarks.md, "Validity", 2026-12-02 Intel)
  uint64_t seed = 0;                 // seeds k-means and the scenario samples
  std::string device = "cpu";        // cpu or cuda[:N] for decoding and classifying
  int64_t batch_size = 256;          // decodes per forward pass
  std::function<void(int iteration, double lower_bound)> on_iteration;  // DP-GMM progress

  void validate() const;  // throws ConfigError
};

struct DistilledScenario {
  int64_t component = 0;
  double weight = 0, failure_rate = 0, score = 0;
  int64_t seed_label = -1, predicted_label = -1, members = 0;
  int64_t seeds = 0;  // distinct seeds among the members
  double seed_label_share = 0, predicted_share = 0;
  double neighbour_accuracy = -1;
  at::Tensor mean;                 // [Z] float32
  at::Tensor covariance;           // [Z, Z] float32 (the component's, before τ)
  at::Tensor sample_images;        // [shown, C, H, W] uint8: draws at show_tau
  at::Tensor sample_predicted;     // [shown] int64
  at::Tensor sample_judge;         // [shown] int64: the judges' reading (-1 without judges)
  at::Tensor member_rows;          // [m] int64: the shown members, rows of the failure set
  ScenarioValidity validity;       // the verdict and its evidence (unknown without judges)
  at::Tensor neighbour_index;      // [k] int64, indices into the training split
  at::Tensor neighbour_label;      // [k] int64
  at::Tensor neighbour_predicted;  // [k] int64
};

struct DistillResult {
  std::vector<DistilledScenario> scenarios;  // kept, ranked (best first)
  int64_t failures = 0;                      // points clustered
  int64_t candidates = 0;                    // components above min_weight
  int64_t single_seed = 0;                   // of those, left out for holding failures of fewer than min_seeds seeds
  int64_t points = 0;                        // points the mixture clustered (seeds or failures)
  int64_t components_used = 0;               // components with weight > 0.01
  int64_t truncation = 0;                    // the DP-GMM's K for these points (distill_truncation)
  int iterations = 0;
  bool converged = false;
  double lower_bound = 0;
  std::vector<double> lower_bounds;  // per iteration
  std::vector<int32_t> assignments;  // [F] component of each failure
  double fit_seconds = 0, seconds = 0;
};

// `train_codes` [N, Z] float32 are the VAE means of the training images, `train_images`
// uint8 [N, C, H, W] and `train_labels` int64 [N] those images (for the neighbours).
// Throws DataError when there are no failures, ConfigError for bad options.
// `judges` (null or empty: no verdicts) read the draws; the members' verdicts come from
// `failures.validity`.
// The DP-GMM truncation K for `points` points: --components, capped at points / min_seeds
// (at least 1). The variational fit starts from K k-means clusters and, with few points per
// cluster, keeps them apart: on 21 seed points K = 100 gives 21 singletons, and so does
// scikit-learn's BayesianGaussianMixture (docs/benchmarks.md, "Validity"), none of them a
// scenario of min_seeds seeds. With the cap the initial clusters hold min_seeds points on
// average.
int64_t distill_truncation(int64_t components, int64_t points, int64_t min_seeds);

// The τ correct and evaluate draw a scenario's samples at, from a complete distill run's
// recorded options: its show_tau, the spread of the draws the labelling page showed and the
// judges read (1, the scenario's own, by default), so that the model trains and is scored
// on the variety that was labelled (at the reference's τ = 0.01 the judges confirmed none of
// 1,024 Fashion-MNIST draws, at 1 about a third: docs/benchmarks.md). A run that recorded
// no show_tau gives its tau. StateError if it recorded neither.
double scenario_tau(const StageRecord& distill);

DistillResult distill_scenarios(Vae& vae, Classifier& classifier, const FailureSet& failures,
                                const at::Tensor& train_codes, const at::Tensor& train_images,
                                const at::Tensor& train_labels, const DistillOptions& options,
                                JudgePanel* judges = nullptr);

// Writes the thumbnails of `result` (PNG, atomically) under scenarios/run-<run_id>/ in the
// workspace and returns the scenario set to store with write_scenarios, ids 1..n in rank
// order. `train_images` uint8 [N, C, H, W] are the training images the neighbours index.
ScenarioSet save_scenario_thumbnails(Workspace& workspace, int64_t run_id, const DistillResult& result,
                                     const at::Tensor& train_images, const std::vector<std::string>& class_names,
                                     const FailureSet& failures);

}  // namespace defuse
