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

#include "defuse/model/classifier.h"
#include "defuse/model/vae.h"

namespace defuse {

inline constexpr const char* kIdentifyStage = "identify";

struct IdentifyProgress {
  int64_t seeds_done = 0, seeds = 0;  // seeds searched so far, of all seeds
  int64_t decodes = 0;                // decodes made so far
  int64_t failures = 0;               // failures kept so far
};

struct IdentifyOptions {
  int64_t samples = 100;          // Q: perturbations per seed (the reference's)
  int64_t keep = 5;               // M: failures kept per seed, smallest perturbation first (the reference's)
  std::string noise = "gaussian"; // gaussian: zero mean, σ relative to each latent dimension's spread
                                  // over the training codes; beta: the reference's Beta(a, b) per coordinate
                                  // (mean a/(a+b) = 0.5: a shift of +0.5 on every coordinate; parity mode)
  double sigma = 0.25;            // gaussian: noise σ as a multiple of each dimension's spread. 0.5 moves a
                                  // code about as far as the reference's +0.5 shift (latents ~N(0, 1)), but
                                  // on MNIST most such failures are simply another digit; 0.25 keeps them
                                  // near the seed (docs/benchmarks.md, "Identify")
  double beta_a = 50, beta_b = 50;  // beta: shape parameters (the reference: 50 for MNIST and GTSRB, 75 SVHN)
  bool only_correct = true;       // seed only from images the classifier gets right (the paper's rule)
  int64_t max_seeds = 2000;       // cap on seeds, drawn at random (with `seed`) from the eligible ones; 0: all
  uint64_t seed = 0;              // seeds the seed subset and the noise
  std::string device = "cpu";     // cpu or cuda[:N]
  int64_t batch_size = 128;       // decodes per forward pass (128 channels-last ran fastest here)
  std::string precision = "fp32"; // fp32; bf16: screen in bfloat16 (autocast), then confirm every
                                  // screened failure in fp32 (kept failures are fp32 failures, but the
                                  // screen may miss some); auto: bf16 on CPUs with AVX512-BF16, else
                                  // fp32. fp32 by default: the same seed then finds the same failures
                                  // on every CPU, and bf16 was not faster in the whole search here
                                  // (1,008 vs 1,747 decodes/s on MNIST, docs/benchmarks.md)
  std::function<void(const IdentifyProgress&)> on_progress;  // called after every block of seeds

  void validate() const;  // throws ConfigError
};

struct IdentifySummary {
  int64_t seed_pool = 0;          // images offered as seeds (the split)
  int64_t seeds_checked = 0;      // seeds whose classification was checked (only_correct; stops at the cap)
  double seed_accuracy = 0;       // share of the checked seeds that the classifier gets right
  int64_t seeds = 0;              // seeds searched (correct ones when only_correct, capped at max_seeds)
  int64_t seeds_with_failures = 0;
  int64_t decodes = 0;            // seeds · Q
  int64_t failing_decodes = 0;    // decodes classified differently from their seed's label
  int64_t failures = 0;           // kept: at most M per seed
  std::string precision;          // the precision used: "fp32" or "bf16"
  int64_t confirmed_decodes = 0;  // bf16: screened failures re-decoded and re-classified in fp32
  double seconds = 0;             // whole search, seed encoding included
  double search_seconds = 0;      // decode + classify + select loop
  std::vector<std::vector<int64_t>> pairs;  // [seed label][predicted label] counts of kept failures

  double failure_rate() const { return decodes ? double(failing_decodes) / double(decodes) : 0.0; }
  double decodes_per_failure() const { return failures ? double(decodes) / double(failures) : 0.0; }
  double decodes_per_second() const { return search_seconds > 0 ? double(decodes) / search_seconds : 0.0; }
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

  int64_t size() const { return latent.defined() ? latent.size(0) : 0; }
};

// Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16).
bool cpu_has_fast_bf16();
// "fp32" or "bf16" for an IdentifyOptions::precision on `device`.
std::string resolve_precision(const std::string& precision, c10::Device device);

// Searches the latent space around the seeds (uint8 [N, C, H, W] images and int64 [N]
// labels, CPU). `code_spread` [Z] is the standard deviation of each latent dimension over
// the training codes (gaussian noise; ignored for beta). Throws ConfigError for bad
// options, ModelError when the models do not fit the images or the labels, DataError when
// there are no seeds, and ModelError when the classifier gets none of them right.
FailureSet search_latent(Vae& vae, Classifier& classifier, const at::Tensor& seed_images,
                         const at::Tensor& seed_labels, const at::Tensor& code_spread,
                         const IdentifyOptions& options);

}  // namespace defuse
