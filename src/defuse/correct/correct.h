// Stage: correct the classifier on its labelled failure scenarios (DESIGN §3, "Correction").
//
// Fine-tunes copies of the *trained* classifier (never from scratch) with, per step,
//   CE(training batch) + λ · CE(batch of labelled scenario samples),
// for every λ of a sweep, and a baseline that fine-tunes on the labelled failures alone
// (the paper's comparison). Scenario samples are codes drawn from each labelled scenario's
// Gaussian N(mean, τ·cov), decoded by the VAE and rounded to the 8-bit grid the data is
// stored in; each carries its scenario's resolved label. Rejected, tied and unlabelled
// scenarios are left out. The scenario batches come from an endless stream that is
// balanced over classes, then over the scenarios of a class, and reshuffled on every pass
// (the reference rebuilds its loader every step to the same effect).
//
// Random streams (all derived from CorrectOptions::seed / EvaluateOptions::seed with
// derive_seed, so runs are reproducible and the streams never overlap):
//   kTrainSampleStream  the scenario samples fine-tuning sees (defuse correct)
//   kHeldOutStream      the held-out scenario samples of the evaluation (defuse evaluate)
//   kOrderStream        batch order, scenario stream order (per model)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace defuse {

class Classifier;
class JudgePanel;
class Vae;
struct VerdictRule;
struct ScenarioSet;
struct ResolvedScenario;

inline constexpr const char* kCorrectStage = "correct";
inline constexpr uint64_t kTrainSampleStream = 1;
inline constexpr uint64_t kHeldOutStream = 2;
inline constexpr uint64_t kOrderStream = 3;

// A seed for stream `stream` of a run seeded with `seed` (SplitMix64 of both): streams of one
// seed are independent, and the same (seed, stream) always gives the same numbers.
uint64_t derive_seed(uint64_t seed, uint64_t stream);

// A scenario that takes part in correction: labelled by its annotators.
struct LabelledScenario {
  int64_t id = 0;                        // scenario id (rank) in its distill run
  int64_t label = -1;                    // the resolved label
  at::Tensor mean;                       // [Z] float32
  at::Tensor covariance;                 // [Z, Z] float32 (the component's, before τ)
  std::vector<int64_t> member_failures;  // indices into identify's failure set
  std::string verdict;                   // the judges' verdict on the scenario ("" = not judged)
  bool genuine() const { return verdict == "genuine"; }
};

// The labelled scenarios of `scenarios` under `resolved` (resolve_annotations' output, in
// scenario order). Throws StateError with the reason when none is labelled: nothing
// annotated yet, every scenario rejected, or only ties.
std::vector<LabelledScenario> labelled_scenarios(const ScenarioSet& scenarios,
                                                 const std::vector<ResolvedScenario>& resolved);

// Images with labels and, for each, the index of its scenario in the labelled list.
struct LabelledImages {
  at::Tensor images;    // uint8 [N, C, H, W], CPU
  at::Tensor labels;    // int64 [N]
  at::Tensor scenario;  // int64 [N], index into the labelled scenarios
  at::Tensor codes;     // float32 [N, Z], the latent codes decoded (sample_scenarios; undefined otherwise)
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// `per_scenario` codes from each scenario's N(mean, τ·cov), decoded and rounded to 8 bits.
// Deterministic for (seed, stream); independent of batch_size and of the device's batching.
LabelledImages sample_scenarios(Vae& vae, const std::vector<LabelledScenario>& scenarios, int64_t per_scenario,
                                double tau, uint64_t seed, uint64_t stream, const std::string& device,
                                int64_t batch_size);

// The draws whose scenario label the judges confirm (DESIGN §3, "Validity"): each draw is
// read by `judges`, and kept when their sure reading (`rule`) is its label. A draw that crossed
// into another class is not a sample of the failure its scenario was labelled for, and
// training on it teaches the classifier a wrong label. `kept` (if not null) receives, per
// labelled scenario (`scenarios` of them), how many of its draws were kept.
LabelledImages keep_confirmed_draws(const LabelledImages& draws, JudgePanel& judges, const VerdictRule& rule,
                                    int64_t scenarios, const std::string& device, std::vector<int64_t>* kept = nullptr);

// The identified failures that belong to labelled scenarios (their member_failures), with
// their scenario's label: the baseline's training data and one of the evaluation sets.
// `failure_images` uint8 [F, C, H, W]. Throws StateError when an index is out of range.
LabelledImages labelled_failures(const std::vector<LabelledScenario>& scenarios, const at::Tensor& failure_images);

// An endless stream of indices into a labelled set, balanced over labels and then over the
// scenarios of a label: each draw picks the next label of a shuffled cycle of labels, the
// next scenario of that label's shuffled cycle, and the next image of that scenario's
// shuffled cycle; every cycle is reshuffled when it wraps. Deterministic for `seed`.
class BalancedStream {
 public:
  BalancedStream(const at::Tensor& labels, const at::Tensor& scenario, uint64_t seed);
  ~BalancedStream();
  BalancedStream(BalancedStream&&) noexcept;
  BalancedStream& operator=(BalancedStream&&) noexcept;
  // The next n indices, int64 [n].
  at::Tensor next(int64_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CorrectProgress {
  int model = 0, models = 0;    // 1-based index of the model being trained, and how many
  std::string name;             // "lambda=0.1" or "baseline"
  int64_t step = 0, steps = 0;  // 1-based optimiser step
  double loss = 0;              // running mean of this model's total loss
};

struct CorrectOptions {
  std::vector<double> lambdas{0.01, 0.03, 0.1, 0.3, 1.0};  // the sweep: log-spaced, from the reference's
                                                           // 0.01 to an equal weight of both terms
  bool baseline = true;                // also fine-tune on the labelled failures alone (the paper's baseline)
  int epochs = 1;                      // passes over the training split per model, at most
  int64_t patience = 3;                // stop a model once neither its accuracy nor its loss on the held-out
                                       // scenario samples has improved for this many checks in a row (0: train
                                       // every epoch through)
  int64_t check_every = 50;            // steps between those checks
  double min_improvement = 0.01;       // a check improves the loss when it is this much (relative) below the best
                                       // (counted only while some check sample is wrong)
  int64_t holdout = 8;                 // every holdout-th sample of each scenario is held out of training for
                                       // the checks (only when patience > 0)
  std::string precision = "auto";      // auto: bf16 where the CPU has AVX512-BF16 (AMX), else fp32; bf16: the
                                       // forward passes in bfloat16 autocast (losses, optimiser, models fp32)
  int64_t batch_size = 64;             // training images per step (the reference's 64)
  int64_t scenario_batch_size = 64;    // scenario samples per step (the reference's 64)
  std::string optimizer = "sgd";       // sgd (with momentum, the reference) or adam
  double lr = 1e-4;                    // learning rate: a tenth of the reference's SGD 0.001, at which fine-tuning
                                       // alone (λ = 0) cost Fashion-MNIST 0.33 points (+0.07 at 1e-4;
                                       // docs/benchmarks.md, "Validity")
  double momentum = 0.9;               // SGD momentum (the reference's)
  double weight_decay = 0;             // L2 weight decay
  bool freeze_batch_norm = true;       // keep batch norm's running statistics as trained: the decoded scenario
                                       // images in every batch would shift them (docs/benchmarks.md, "Correction")
  int64_t samples_per_scenario = 512;  // scenario samples drawn for training, per labelled scenario
  std::optional<double> tau;           // scenario samples come from N(mean, τ·cov); unset: distill's τ
  uint64_t seed = 0;                   // scenario samples, batch order, dropout
  std::string device = "cpu";          // cpu or cuda[:N]
  int64_t sample_batch_size = 256;     // decodes per forward pass when drawing samples
  std::function<void(const CorrectProgress&)> on_progress;  // called after every step

  void validate() const;  // throws ConfigError
};

struct CorrectedModel {
  std::string name;                   // "lambda=<λ>" or "baseline"
  double lambda = -1;                 // λ; -1 for the baseline
  std::unique_ptr<Classifier> model;  // on the CPU
  int64_t steps = 0;                  // optimiser steps taken (fewer than the epochs' when it stopped early)
  double check_accuracy = -1;         // accuracy on the held-out scenario samples at the last check (-1: none)
  double train_loss = 0;              // mean CE on training batches (0 for the baseline)
  double scenario_loss = 0;           // mean CE on scenario batches (the failures for the baseline)
  double seconds = 0;
};

struct CorrectResult {
  std::vector<CorrectedModel> models;  // the λ sweep in the given order, then the baseline
  int64_t scenarios = 0;               // labelled scenarios used
  int64_t scenario_samples = 0;        // training samples drawn from them
  int64_t baseline_failures = 0;       // labelled failures the baseline trained on
  double seconds = 0;
};

// The model name for a λ ("lambda=0.01"); λ printed with up to 6 significant digits.
std::string lambda_name(double lambda);

// Fine-tunes copies of `original` (left unchanged) as described above. `train_images`
// uint8 [N, C, H, W] and `train_labels` int64 [N] are the classifier's training split;
// `scenario_samples` come from sample_scenarios(kTrainSampleStream), `failures` from
// labelled_failures (needed only when options.baseline; an empty set then is a DataError).
// With a current world of several ranks (dist/world.h), model m trains on rank m mod size and
// every rank ends with every model.
CorrectResult correct_classifier(Classifier& original, const at::Tensor& train_images, const at::Tensor& train_labels,
                                 const LabelledImages& scenario_samples, const LabelledImages& failures,
                                 const CorrectOptions& options);

}  // namespace defuse
