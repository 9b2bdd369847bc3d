// Decoding latent codes into the images a stage stores and classifying them: the one path
// every stage takes from a code to a prediction (decode → round to the 8-bit grid the data
// is stored in → classify), so that a prediction recorded by one stage is the prediction a
// later stage gets when it reloads the stored image.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <cstdint>

namespace defuse {

class Vae;
class Classifier;

struct Decoded {
  at::Tensor images;       // uint8 [N, C, H, W], CPU (empty unless asked for)
  at::Tensor predicted;    // int64 [N], CPU: the classifier's argmax
  at::Tensor probability;  // float32 [N, K], CPU: its softmax (empty unless asked for)
};

struct DecodeOptions {
  int64_t batch_size = 256;         // codes per forward pass
  bool keep_images = true;          // return the decoded uint8 images
  bool keep_probabilities = false;  // return the classifier's softmax
};

// `n` codes [n, Z] float32 drawn from N(mean, τ·cov) — a failure scenario's Gaussian
// (DESIGN §3, "Distillation"), the one sampler distill, correct and evaluate share. `mean` [Z]
// and `cov` [Z, Z] of any float type; the Cholesky factor is taken in float64, with a jitter
// that only matters for singular covariances. Deterministic for the generator's state.
at::Tensor scenario_codes(const at::Tensor& mean, const at::Tensor& cov, double tau, int64_t n, at::Generator& gen);

// Decodes `codes` [N, Z] (float32, any device) with `vae`, rounds to uint8, classifies with
// `classifier` (if not null), in eval mode, without gradients, in batches on `device`.
Decoded decode_and_classify(Vae& vae, Classifier* classifier, const at::Tensor& codes, c10::Device device,
                            const DecodeOptions& options = {});

// The VAE's reconstructions of uint8 images [N, C, H, W] (CPU): the decoded latent means μ,
// rounded to uint8, and the classifier's predictions on them (the generator's fidelity: what
// identify's seeds look like before any perturbation).
Decoded reconstruct_and_classify(Vae& vae, Classifier* classifier, const at::Tensor& images_u8, c10::Device device,
                                 const DecodeOptions& options = {});

}  // namespace defuse
