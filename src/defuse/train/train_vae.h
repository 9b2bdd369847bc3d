// Stage: train the β-VAE on a dataset's training split (DESIGN §3, "VAE"), evaluate it on
// the test split, and encode both splits (the latent means feed identify's noise scale,
// the latent map and nearest-neighbour lookups).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "defuse/data/dataset.h"
#include "defuse/model/vae.h"

namespace defuse {

struct VaeProgress {
  int epoch = 0, epochs = 0;       // 1-based epoch
  int64_t batch = 0, batches = 0;  // 1-based batch within the epoch
  double reconstruction = 0;       // running mean per-image reconstruction loss of this epoch
  double kl = 0;                   // running mean per-image KL of this epoch, nats
  double kl_weight = 0;            // β · annealing at this step
};

struct TrainVaeOptions {
  int64_t latent = 10;               // latent dimensions Z (the reference's MNIST setting)
  int64_t filters = 64;              // channels of every hidden convolution (the reference's)
  std::string decoder = "subpixel";  // upsampling: subpixel (fastest here) or transposed (the reference's)
  std::string loss = "bce";          // reconstruction: bce, mse or ssim (the reference's)
  double beta = 4.0;                 // KL weight β (the reference's)
  int64_t anneal_steps = 0;          // KL warm-up steps, linear from 0 to β; 0: half of all steps
                                     // (the reference's 50,000 is more steps than we train)
  int epochs = 6;                    // passes over the training split: ~25 s each for 60k 28x28 on 2 cores;
                                     // the loss has flattened by then (docs/benchmarks.md)
  int64_t batch_size = 128;          // training batch size
  double lr = 1e-3;                  // Adam learning rate (the reference's)
  double weight_decay = 1e-5;        // Adam L2 weight decay (the reference's)
  uint64_t seed = 0;                 // seeds initialisation, shuffling and the reparameterisation noise
  std::string device = "cpu";        // cpu or cuda[:N]
  int64_t eval_batch_size = 500;     // batch size for evaluation and encoding
  bool encode_splits = true;         // also return the latent means of both splits
  std::function<void(const VaeProgress&)> on_progress;  // called after every batch

  void validate() const;  // throws ConfigError
  // The warm-up length actually used for `total_steps` training steps.
  int64_t effective_anneal_steps(int64_t total_steps) const;
};

struct VaeEpochStats {
  int epoch = 0;
  double reconstruction = 0, kl = 0;  // per image, means over the epoch
  double loss = 0;                    // reconstruction + weight · KL, mean over the epoch
  double kl_weight = 0;               // β · annealing at the epoch's last step
  double seconds = 0;
};

// Per-image means over a split, with one reparameterised sample per image.
struct VaeEvaluation {
  double reconstruction = 0;  // the training reconstruction loss
  double kl = 0;              // nats
  double elbo = 0;            // -(reconstruction + KL): a lower bound on log p(x) in nats for bce
  double loss = 0;            // reconstruction + β · KL (the annealed objective at its end)
};

struct TrainVaeResult {
  std::unique_ptr<Vae> model;  // on the CPU, eval mode
  std::vector<VaeEpochStats> epochs;
  VaeEvaluation test;
  int64_t steps = 0, anneal_steps = 0;
  double seconds = 0;      // training time, evaluation and encoding excluded
  at::Tensor train_codes;  // [N_train, Z] float32 latent means (empty unless encode_splits)
  at::Tensor test_codes;   // [N_test, Z]
};

TrainVaeResult train_vae(const Dataset& dataset, const TrainVaeOptions& options);

// Reconstruction, KL and ELBO of `vae` on uint8 images [N, C, H, W] (CPU), one sample of z
// per image drawn with `seed`.
VaeEvaluation evaluate_vae(Vae& vae, const at::Tensor& images_u8, const std::string& loss, double beta,
                           int64_t batch_size, uint64_t seed);

}  // namespace defuse
