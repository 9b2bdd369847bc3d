// The β-VAE objective (DESIGN §3, "VAE"): reconstruction + β · annealing · KL.
//
// Every term is per image ([N] tensors, summed over pixels or latent dimensions) so that
// the reconstruction and the KL are on the same scale whatever the image size; callers
// average over the batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace defuse {

enum class ReconstructionLoss {
  kBce,   // binary cross-entropy with the decoder's logits (Bernoulli likelihood; the ELBO in nats)
  kMse,   // squared error
  kSsim,  // 1 - SSIM, the reference's choice (11x11 Gaussian window, σ = 1.5)
};

// "bce", "mse" or "ssim"; throws ConfigError("<stage>: ...") otherwise.
ReconstructionLoss parse_reconstruction_loss(const std::string& name, const std::string& stage);
std::string reconstruction_loss_name(ReconstructionLoss loss);

// Per-image reconstruction loss [N] of `target` (float [N, C, H, W] in [0, 1]) from the
// decoder's logits (same shape; the image is sigmoid(logits)). Summed over C·H·W:
//   bce:  Σ BCE(sigmoid(logits), target), computed from the logits for stability
//   mse:  Σ (sigmoid(logits) - target)²
//   ssim: Σ (1 - SSIM map); the reference averages 1 - SSIM over pixels, but then β = 4
//         times a KL in nats swamps a term below 2 and the posterior collapses; summing
//         puts it on the per-pixel scale of BCE and MSE.
at::Tensor reconstruction_loss(const at::Tensor& logits, const at::Tensor& target, ReconstructionLoss loss);

// Analytic KL(N(μ, σ²) ‖ N(0, I)) per image [N]: -½ Σ (1 + log σ² - μ² - σ²). Unlike the
// reference's sampled KLDivLoss it passes gradients to μ and log σ².
at::Tensor gaussian_kl(const at::Tensor& mu, const at::Tensor& logvar);

// The SSIM map of Wang et al. (2004) between images in [0, 1] ([N, C, H, W] each), per
// channel with a `window`x`window` Gaussian of standard deviation `sigma`, zero padding
// (as pytorch-ssim, which the reference uses), C1 = 0.01², C2 = 0.03². Same shape as x.
at::Tensor ssim_map(const at::Tensor& x, const at::Tensor& y, int64_t window = 11, double sigma = 1.5);
// Mean SSIM per image [N].
at::Tensor ssim(const at::Tensor& x, const at::Tensor& y, int64_t window = 11, double sigma = 1.5);

// The KL annealing factor at `step` (0-based): rises linearly from 0 to 1 over
// `anneal_steps` steps, then stays at 1; 1 throughout when anneal_steps <= 0.
double kl_annealing(int64_t step, int64_t anneal_steps);

}  // namespace defuse
