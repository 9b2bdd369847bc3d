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
#include "defuse/model/classifier.h"

namespace defuse {

struct VaeProgress {
  int epoch = 0, epochs = 0;       // 1-based epoch
  int64_t batch = 0, batches = 0;  // 1-based batch within the epoch
  double reconstruction = 0;       // running mean per-image reconstruction loss of this epoch
  double kl = 0;                   // running mean per-image KL of this epoch, nats
  double kl_weight = 0;            // β · annealing at this step
};

struct TrainVaeOptions {
  int64_t latent = 0;                // latent dimensions Z; 0: by the data's shape (default_vae_shape): the
                                     // reference's 10 blurs MNIST enough that the classifier misreads 6.8% of the
                                     // reconstructions (docs/benchmarks.md, "Validity")
  int64_t filters = 0;               // channels of every hidden convolution; 0: by the data's shape (64 grey,
                                     // the reference's)
  std::string decoder = "subpixel";  // upsampling: subpixel (fastest here) or transposed (the reference's)
  std::string loss = "auto";         // reconstruction: bce, mse or ssim (the reference's); auto: by the data's
                                     // shape (effective_loss): bce on grey images, ssim on colour (GTSRB, 6
                                     // epochs: fidelity 0.828 against 0.578 with bce; docs/benchmarks.md,
                                     // "Time to result: GTSRB")
  double beta = 0;                   // KL weight β; 0: by the data's shape (effective_beta): 1, the plain VAE, on
                                     // grey images (the reference's 4 blurs: fidelity 0.937 on MNIST against 0.977
                                     // at β = 1 with 16 dimensions), 0.1 on colour (GTSRB 0.558 against 0.408 at
                                     // β = 1 with 64 dimensions; docs/benchmarks.md, "Validity")
  int64_t anneal_steps = 0;          // KL warm-up steps, linear from 0 to β; 0: half of all steps
                                     // (the reference's 50,000 is more steps than we train)
  int epochs = 0;                    // passes over the training split; 0: by the data's shape (effective_epochs):
                                     // 6 on grey images (~22 s each for 60k 28x28 on 2 cores; the loss has
                                     // flattened by then), 18 on colour, where fidelity still rises
                                     // with every epoch (docs/benchmarks.md, "Time to result: GTSRB")
  int64_t batch_size = 128;          // training batch size
  double lr = 1e-3;                  // Adam learning rate (the reference's)
  double weight_decay = 1e-5;        // Adam L2 weight decay (the reference's)
  uint64_t seed = 0;                 // seeds initialisation, shuffling and the reparameterisation noise
  std::string device = "cpu";        // cpu or cuda[:N]
  std::string precision = "auto";    // auto: bf16 where the CPU has AVX512-BF16 (AMX), else fp32; bf16: the training
                                     // steps in bfloat16 autocast (Fashion-MNIST: 2 min 40 s against 5 min 11 s,
                                     // fidelity 0.796 against 0.794; docs/benchmarks.md, "Time to result"); fp32.
                                     // Losses, evaluation, encoding and the stored model stay fp32
  int64_t eval_batch_size = 500;     // batch size for evaluation and encoding
  bool encode_splits = true;         // also return the latent means of both splits
  std::function<void(const VaeProgress&)> on_progress;  // called after every batch

  void validate() const;  // throws ConfigError
  // The latent size, filters and β actually used for images of this shape.
  int64_t effective_latent(int64_t channels, int64_t height, int64_t width) const;
  int64_t effective_filters(int64_t channels, int64_t height, int64_t width) const;
  double effective_beta(int64_t channels) const;
  int effective_epochs(int64_t channels) const;
  std::string effective_loss(int64_t channels) const;
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
  double seconds = 0;       // training time, evaluation and encoding excluded
  int ranks = 1;            // processes that trained it together (DESIGN §6)
  double comm_seconds = 0;  // of which spent in gradient allreduces (this rank)
  int64_t comm_bytes = 0;   // bytes allreduced (this rank's share of each collective)
  at::Tensor train_codes;   // [N_train, Z] float32 latent means (empty unless encode_splits)
  at::Tensor test_codes;    // [N_test, Z]
};

// Trains data-parallel over the current world's ranks when there is one (dist/world.h);
// then only rank 0 scores and encodes (`test` and the codes are empty elsewhere).
TrainVaeResult train_vae(const Dataset& dataset, const TrainVaeOptions& options);

// The generator's fidelity (DESIGN §3, "Validity"): how often the classifier still reads the
// VAE's reconstruction of a test image (its decoded latent mean, rounded to 8 bits) as the
// image's label, beside how often it reads the image itself right. A failure found around a
// seed whose plain reconstruction is already misread is the generator's, not the classifier's.
struct Fidelity {
  int64_t images = 0;
  double reconstruction_accuracy = 0;  // classifier accuracy on the reconstructions
  double test_accuracy = 0;            // classifier accuracy on the images themselves
  // reconstruction_accuracy / test_accuracy (1 = the reconstructions are read as well as the
  // real images; 0 with no images).
  double ratio() const { return test_accuracy > 0 ? reconstruction_accuracy / test_accuracy : 0.0; }
};

// Measures Fidelity on uint8 images [N, C, H, W] with int64 labels [N] (CPU).
Fidelity measure_fidelity(Vae& vae, Classifier& classifier, const at::Tensor& images_u8, const at::Tensor& labels,
                          c10::Device device, int64_t batch_size = 500);

// Reconstruction, KL and ELBO of `vae` on uint8 images [N, C, H, W] (CPU), one sample of z
// per image drawn with `seed`.
VaeEvaluation evaluate_vae(Vae& vae, const at::Tensor& images_u8, const std::string& loss, double beta,
                           int64_t batch_size, uint64_t seed);

}  // namespace defuse
