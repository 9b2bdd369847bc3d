// Stage: evaluate the original and the corrected classifiers (DESIGN §3, "Correction"), and
// choose λ.
//
// Every model is scored on
//   - the original test split (accuracy);
//   - held-out scenario data: fresh draws from each labelled scenario's Gaussian, from a
//     random stream (kHeldOutStream) disjoint from the one fine-tuning drew from
//     (kTrainSampleStream), each with its scenario's label: overall and per scenario;
//   - the identified failures of the labelled scenarios, with their scenario's label (the
//     baseline trained on exactly these, so its figure there is a training accuracy).
// The choice rule (choose_model): among the λ models whose test accuracy is at most
// `max_test_drop` below the original's, those whose accuracy on the genuine scenarios (on all
// labelled scenarios when none is genuine or none was judged) reaches `enough` are fixes, and
// the fix with the highest test accuracy is chosen (the cheapest fix); when no model reaches
// `enough` (or the original already does), the one with the highest scenario score (ties: the
// smaller λ, the gentler change). With judges, the held-out draws are those whose label the
// judges confirm (keep_confirmed_draws). When no λ stays within the budget, the one with the
// smallest drop, and the result says the budget was not met.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "defuse/correct/correct.h"

namespace defuse {

inline constexpr const char* kEvaluateStage = "evaluate";

struct EvaluateOptions {
  int64_t samples_per_scenario = 256;  // held-out draws per labelled scenario
  std::optional<double> tau;           // draws come from N(mean, τ·cov); unset: distill's τ
  double max_test_drop = 0.002;        // choice rule: largest test accuracy drop allowed (0.2 points)
  double tie = 0.005;                  // choice rule: scores within this of the best are ties, which go to the
                                       // smaller λ: MNIST's λ = 1 beat λ = 0.1 by 0.26 points of genuine-scenario
                                       // accuracy (393 draws: ±1 point of noise) for 0.11 points of test accuracy
                                       // (docs/benchmarks.md, "Validity", 2026-12-02 Intel)
  double enough = 0.9;                 // choice rule: a genuine-scenario accuracy that counts as fixed; among the
                                       // models that reach it, the highest test accuracy wins (0: always the best
                                       // score). MNIST: λ = 0.03 reached 95.6% at -0.04 points, λ = 0.3 100% at
                                       // -0.17 (docs/benchmarks.md, "Validity")
  uint64_t seed = 0;                   // the held-out draws (a stream disjoint from correct's)
  std::string device = "cpu";          // cpu or cuda[:N]
  int64_t batch_size = 1000;           // images per forward pass

  void validate() const;  // throws ConfigError
};

struct ModelScores {
  std::string name;                       // "original", "lambda=<λ>" or "baseline"
  double lambda = -1;                     // λ for the sweep's models, -1 otherwise
  double test_accuracy = 0;               // on the original test split
  double scenario_accuracy = 0;           // on all held-out scenario draws
  std::vector<double> per_scenario;       // [labelled scenarios] accuracy on each one's draws
  double failure_accuracy = -1;           // on the labelled failures; -1 when there are none
  double genuine_scenario_accuracy = -1;  // on the held-out draws of the genuine scenarios (the judges' verdict);
                                          // -1 when no labelled scenario is genuine or none was judged
  double heldout_failure_accuracy = -1;   // on the held-out draws the original misreads (score_heldout_failures):
                                          // fresh failures no model trained on; -1 when there are none
  bool is_sweep() const { return name.rfind("lambda=", 0) == 0; }
};

struct EvaluationResult {
  std::vector<ModelScores> models;             // the original first, then as given
  std::vector<int64_t> scenario_ids;           // the labelled scenarios, in per_scenario order
  std::vector<int64_t> scenario_labels;        // their labels
  std::vector<std::string> scenario_verdicts;  // their verdicts ("" = not judged)
  std::vector<int64_t> scenario_draws;         // held-out draws scored per scenario (after the judges' check)
  int64_t test_images = 0, scenario_images = 0, failure_images = 0;
  size_t chosen = 0;             // index into models of the chosen one
  bool within_budget = false;    // whether the chosen model keeps the test drop within budget
  bool by_genuine = false;       // whether the rule used genuine-scenario accuracy (else all scenarios)
  int64_t draws_drawn = 0;       // held-out draws made, before the judges' check (0: no check)
  int64_t heldout_failures = 0;  // held-out draws the original misreads (of the genuine scenarios, if any)
  std::string rule;              // the rule, in words, with the budget

  const ModelScores& original() const { return models.front(); }
  const ModelScores& chosen_model() const { return models.at(chosen); }
};

// Scores one model. `held_out` from sample_scenarios(kHeldOutStream), `failures` from
// labelled_failures (may be empty); `scenarios` is the number of labelled scenarios.
// `genuine` [labelled scenarios] says which ones count for genuine_scenario_accuracy (empty:
// none).
ModelScores score_model(Classifier& model, const std::string& name, double lambda, const at::Tensor& test_images,
                        const at::Tensor& test_labels, const LabelledImages& held_out, const LabelledImages& failures,
                        int64_t scenarios, const EvaluateOptions& options, const std::vector<bool>& genuine = {},
                        at::Tensor* predictions = nullptr);

// The held-out draws that the original misreads, of the genuine scenarios when some labelled
// scenario is genuine (else of all): fresh failures of the original, confirmed by the judges
// where there are judges, that neither correct nor the baseline trained on. Fills each model's
// heldout_failure_accuracy from `predictions` (per model of result.models, on `held_out`) and
// result.heldout_failures. Unlike scenario accuracy, which counts the many draws every model
// gets right, this is what a correction fixed: the original scores 0 on it by construction.
void score_heldout_failures(EvaluationResult& result, const std::vector<at::Tensor>& predictions,
                            const LabelledImages& held_out, const std::vector<bool>& genuine);

// Applies the choice rule to `result.models` (original first) with options' max_test_drop, tie
// and enough, filling chosen, within_budget, by_genuine and rule. Within the budget, the models
// whose score reaches `enough` compete on test accuracy (equal: the smaller λ); when none does,
// scores within `tie` of the best count as tied and the tie goes to the smallest λ. The score is
// genuine-scenario accuracy when the original has one (some labelled scenario is genuine), else
// scenario accuracy.
void choose_model(EvaluationResult& result, const EvaluateOptions& options);

// The result as JSON: {"models": [{name, lambda, test_accuracy, test_drop, scenario_accuracy,
// failure_accuracy, per_scenario: {id: accuracy}}], "chosen": name, "lambda": λ or null,
// "within_budget", "rule", "scenario_ids", "scenario_labels", "test_images",
// "scenario_images", "failure_images"}.
nlohmann::json evaluation_json(const EvaluationResult& result);
// Its inverse: an evaluation read back from evaluate's stored result (the stage's metrics or
// results.json). A missing or mistyped key is a StateError naming it, never a 0.
EvaluationResult evaluation_from_json(const nlohmann::json& j);
// One CSV row per model: name,lambda,test_accuracy,test_drop,scenario_accuracy,
// failure_accuracy,chosen,scenario_<id>... (RFC 4180; numbers with 6 decimals).
std::string evaluation_csv(const EvaluationResult& result);

}  // namespace defuse
