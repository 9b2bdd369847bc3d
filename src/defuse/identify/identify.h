// Stage: the latent-perturbation search for misclassified decodes (DESIGN §3,
// "Identification"). For each seed image: encode to μ, draw Q perturbations, decode,
// classify, keep the decodes whose prediction differs from the seed's true label; keep at
// most M per seed, smallest perturbation (L2 norm of the noise, in latent units) first.
//
// Batched across seeds: the perturbations of many seeds go through the decoder and the
// classifier together, in channels-last batches, with no per-image loop.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "defuse/base/choice.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/vae.h"

namespace defuse {

inline constexpr const char* kIdentifyStage = "identify";

// Which failing decodes may be kept (DESIGN §3, "Validity"): genuine ones only (the judges
// read the seed's label), plausible ones (all but label changes), or every one (the
// reference's behaviour; the only choice without judges).
enum class Gate { kGenuine, kPlausible, kNone };
const ChoiceNames<Gate>& gate_names();

struct IdentifyProgress {
  int64_t seeds_done = 0, seeds = 0;  // seeds searched so far, of all seeds
  int64_t decodes = 0;                // decodes made so far
  int64_t failures = 0;               // failures kept so far
};

struct IdentifyOptions {
  int64_t samples = 100;            // Q: perturbations per seed (the reference's)
  int64_t keep = 5;                 // M: failures kept per seed, smallest perturbation first (the reference's)
  std::string noise = "gaussian";   // gaussian: zero mean, σ relative to each latent dimension's spread
                                    // over the training codes; beta: the reference's Beta(a, b) per coordinate
                                    // (mean a/(a+b) = 0.5: a shift of +0.5 on every coordinate; parity mode)
  double sigma = 0.25;              // gaussian: noise σ as a multiple of each dimension's spread. 0.5 moves a
                                    // code about as far as the reference's +0.5 shift (latents ~N(0, 1)), but
                                    // on MNIST most such failures are simply another digit; 0.25 keeps them
                                    // near the seed (docs/benchmarks.md, "Identify")
  double beta_a = 50, beta_b = 50;  // beta: shape parameters (the reference: 50 for MNIST and GTSRB, 75 SVHN)
  std::string search = "fixed";     // fixed: Q draws per seed at σ; growing: Q draws per seed at σ·levels[0],
                                    // then at the next level for the seeds without a kept failure, and so on,
                                    // so the kept failures are the nearest ones (Zhao et al. 2018)
  std::vector<double> levels{0.25, 0.5, 1.0};  // growing: radii as multiples of σ, increasing
  bool only_correct = true;                    // seed only from images the classifier gets right (the paper's rule)
  bool check_reconstruction = true;            // and only from seeds whose plain reconstruction (decoded μ) the
                                               // classifier reads right too: around the others every decode fails
                                               // because of the generator's blur, not the classifier (DESIGN §3)
  int64_t max_seeds = 2000;          // cap on seeds, drawn at random (with `seed`) from the eligible ones; 0: all
  uint64_t seed = 0;                 // seeds the seed subset and the noise
  std::string device = "cpu";        // cpu or cuda[:N]
  int64_t batch_size = 128;          // decodes per forward pass (128 channels-last ran fastest here)
  std::string precision = "auto";    // fp32; bf16: screen in bfloat16 (autocast), then re-decode and
                                     // re-classify in fp32 every screened decode (failing, or within
                                     // screen_margin of failing), so the kept failures are the fp32 ones;
                                     // auto: bf16 on CPUs with AVX512-BF16 (AMX), else fp32. On the main
                                     // job's search the screen at margin 1 found exactly fp32's failures in
                                     // 45 s against 54 s (docs/benchmarks.md, "Time to result")
  double screen_margin = 1.0;        // bf16: decodes whose label logit leads by less than this are checked in
                                     // fp32 too, not only those the bf16 reading gets wrong
  std::string gate = "auto";         // genuine, plausible or none (see Gate; genuine and plausible need judges);
                                     // auto: genuine with judges, none without. genuine, because the kept
                                     // failures are then the ones a reader gives the seed's label
                                     // (docs/benchmarks.md, "Validity")
  VerdictRule verdict;               // when the judges' reading counts as sure
  int64_t neighbours = 10;           // nearest training codes whose labels each kept failure's validity shows
  int64_t realism_reference = 2000;  // training codes whose re-encoding error scales the realism score
  int64_t rejected_examples = 64;    // label changes the gate left out, kept as examples (one per seed)
  std::function<void(const IdentifyProgress&)> on_progress;  // called after every block of seeds

  void validate() const;  // throws ConfigError
};

struct IdentifySummary {
  int64_t seed_pool = 0;                 // images offered as seeds (the split)
  int64_t seeds_checked = 0;             // seeds whose classification was checked (only_correct; stops at the cap)
  int64_t seeds_bad_reconstruction = 0;  // of those, skipped because the classifier misreads their reconstruction
  double seed_accuracy = 0;              // share of the checked seeds that the classifier gets right
  int64_t seeds = 0;                     // seeds searched (correct ones when only_correct, capped at max_seeds)
  int64_t seeds_with_failures = 0;
  std::vector<int64_t> level_seeds;  // seeds that kept their first failure at each radius level
  int64_t decodes = 0;               // seeds · Q
  int64_t failing_decodes = 0;       // decodes classified differently from their seed's label
  int64_t failures = 0;              // kept: at most M per seed
  int64_t judges = 0;                // judges that read the failing decodes (0: none, validity unknown)
  std::string gate;                  // the gate applied: "genuine", "plausible" or "none"
  int64_t failing_genuine = 0;       // failing decodes the judges read as their seed's label
  int64_t failing_label_change = 0;  // ... read as the classifier did (the classifier is right there)
  int64_t failing_ambiguous = 0;     // ... neither, or not sure
  int64_t kept_genuine = 0, kept_label_change = 0, kept_ambiguous = 0;  // verdicts of the kept failures
  std::string precision;                                                // the precision used: "fp32" or "bf16"
  int64_t confirmed_decodes = 0;            // bf16: screened failures re-decoded and re-classified in fp32
  double seconds = 0;                       // whole search, seed encoding included
  double search_seconds = 0;                // decode + classify + select loop
  std::vector<std::vector<int64_t>> pairs;  // [seed label][predicted label] counts of kept failures

  double failure_rate() const { return decodes ? double(failing_decodes) / double(decodes) : 0.0; }
  double decodes_per_failure() const { return failures ? double(decodes) / double(failures) : 0.0; }
  double decodes_per_second() const { return search_seconds > 0 ? double(decodes) / search_seconds : 0.0; }
};

// What tells a genuine failure from a false alarm, for each kept failure (DESIGN §3,
// "Validity"). Tensors on the CPU; undefined when not measured (no judges, or a failure set
// stored before validity was).
struct FailureValidity {
  at::Tensor judge_label;          // int64 [F]: the judges' consensus class
  at::Tensor judge_agreement;      // float32 [F]: share of the judges that pick it
  at::Tensor judge_confidence;     // float32 [F]: its mean probability over the judges
  at::Tensor verdict;              // int8 [F]: Verdict
  at::Tensor knn_label;            // int64 [F]: most common label of the nearest training codes
  at::Tensor knn_seed_share;       // float32 [F]: share of those neighbours with the seed's label
  at::Tensor knn_predicted_share;  // float32 [F]: share with the classifier's prediction
  at::Tensor realism;              // float32 [F]: share of training codes whose re-encoding error
                                   //   ||μ(decode(z)) - z|| (in units of the codes' spread) is at least the
                                   //   decode's: 1 as faithful as the most typical image, 0 worse than all
  bool judged() const { return verdict.defined() && verdict.numel() > 0; }
  bool has_neighbours() const { return knn_label.defined(); }
};

// Examples of failing decodes the gate left out (label changes: the judges read them as the
// classifier did), one per seed at most, smallest perturbation first.
struct RejectedExamples {
  at::Tensor images;       // uint8 [R, C, H, W]
  at::Tensor seed_index;   // int64 [R]
  at::Tensor seed_label;   // int64 [R]
  at::Tensor predicted;    // int64 [R]
  at::Tensor judge_label;  // int64 [R]
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// The kept failures, ordered by seed, then by perturbation size. Tensors on the CPU.
struct FailureSet {
  at::Tensor latent;       // [F, Z] float32: μ(seed) + noise, the code that was decoded
  at::Tensor noise;        // [F, Z] float32: the perturbation
  at::Tensor images;       // [F, C, H, W] uint8: the decodes, as classified
  at::Tensor seed_index;   // [F] int64: index of the seed image within its split
  at::Tensor seed_label;   // [F] int64: the seed's true label
  at::Tensor predicted;    // [F] int64: the classifier's prediction for the decode
  at::Tensor probability;  // [F] float32: softmax probability of that prediction
  std::string seed_split;  // "train" or "test" (set by the caller; provenance)
  int64_t num_classes = 0;
  IdentifySummary summary;
  FailureValidity validity;
  RejectedExamples rejected;

  int64_t size() const { return latent.defined() ? latent.size(0) : 0; }
};

// Searches the latent space around the seeds (uint8 [N, C, H, W] images and int64 [N]
// labels, CPU). `code_spread` [Z] is the standard deviation of each latent dimension over
// the training codes (gaussian noise; ignored for beta). Throws ConfigError for bad
// options, ModelError when the models do not fit the images or the labels, DataError when
// there are no seeds, and ModelError when the classifier gets none of them right.
FailureSet search_latent(Vae& vae, Classifier& classifier, const at::Tensor& seed_images, const at::Tensor& seed_labels,
                         const at::Tensor& code_spread, const IdentifyOptions& options);

// The latent codes of the training images, for the validity signals: the labels of a
// failure's nearest training codes, and the scale of the realism score.
struct LatentReference {
  at::Tensor codes;   // float32 [N, Z]: the training images' latent means
  at::Tensor labels;  // int64 [N]
};

// As above, with `judges` (may be null or empty: then the gate must be "none" and the
// verdicts stay unknown) reading every failing decode before the gate and the M-per-seed
// cut, and the validity signals of every kept failure measured against `reference` (no
// neighbours or realism when its codes are undefined).
FailureSet search_latent(Vae& vae, Classifier& classifier, JudgePanel* judges, const at::Tensor& seed_images,
                         const at::Tensor& seed_labels, const at::Tensor& code_spread, const LatentReference& reference,
                         const IdentifyOptions& options);

// The nearest-neighbour and realism signals of codes [F, Z] whose decodes are `images`
// uint8 [F, C, H, W], with seed labels and predictions [F]: fills validity's knn_* and
// realism. Deterministic for `seed`.
void measure_neighbourhood(Vae& vae, const at::Tensor& codes, const at::Tensor& images, const at::Tensor& seed_label,
                           const at::Tensor& predicted, const at::Tensor& code_spread, const LatentReference& reference,
                           int64_t neighbours, int64_t realism_reference, uint64_t seed, c10::Device device,
                           FailureValidity& validity);

}  // namespace defuse
