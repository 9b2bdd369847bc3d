#include "defuse/train/vae_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "defuse/base/error.h"

namespace defuse {
namespace {

// The deterministic 16x16 test images of the SSIM reference below.
std::pair<torch::Tensor, torch::Tensor> ssim_pair() {
  auto i = torch::arange(16, torch::kFloat64).view({16, 1});
  auto j = torch::arange(16, torch::kFloat64).view({1, 16});
  auto x = (torch::fmod(i * 7 + j * 3, 11) / 10).to(torch::kFloat32).view({1, 1, 16, 16});
  auto y = (torch::fmod(i * 5 + j * 2, 13) / 12).to(torch::kFloat32).view({1, 1, 16, 16});
  return {x, y};
}

TEST(VaeLoss, AnalyticKlMatchesTheClosedForm) {
  // KL(N(μ, σ²) || N(0, 1)) = ½ (σ² + μ² - 1 - ln σ²), summed over dimensions.
  auto mu = torch::tensor({{0.0f, 1.0f, -2.0f}, {0.5f, 0.0f, 0.0f}});
  auto logvar = torch::tensor({{0.0f, std::log(4.0f), std::log(0.25f)}, {0.0f, 0.0f, 0.0f}});
  auto kl = gaussian_kl(mu, logvar);
  ASSERT_EQ(kl.sizes(), (std::vector<int64_t>{2}));
  const double row0 = 0.0 + 0.5 * (4 + 1 - 1 - std::log(4.0)) + 0.5 * (0.25 + 4 - 1 - std::log(0.25));
  EXPECT_NEAR(kl[0].item<double>(), row0, 1e-5);
  EXPECT_NEAR(kl[1].item<double>(), 0.125, 1e-6);
  EXPECT_NEAR(gaussian_kl(torch::zeros({1, 5}), torch::zeros({1, 5})).item<double>(), 0.0, 1e-7);
}

TEST(VaeLoss, KlPassesGradientsToMuAndLogvar) {
  // The reference's sampled KLDivLoss passes none; ours must.
  auto mu = torch::tensor({{0.3f, -0.7f}}, torch::requires_grad());
  auto logvar = torch::tensor({{0.2f, -0.4f}}, torch::requires_grad());
  gaussian_kl(mu, logvar).sum().backward();
  // d/dμ = μ, d/dlogvar = ½ (e^logvar - 1)
  EXPECT_TRUE(torch::allclose(mu.grad(), mu.detach()));
  EXPECT_TRUE(torch::allclose(logvar.grad(), 0.5 * (logvar.detach().exp() - 1)));
}

TEST(VaeLoss, SsimOfIdenticalImagesIsOneAndOfDifferentOnesBelow) {
  auto [x, y] = ssim_pair();
  EXPECT_NEAR(ssim(x, x).item<double>(), 1.0, 1e-5);
  EXPECT_LT(ssim(x, y).item<double>(), 0.5);
  EXPECT_LT(ssim(x, x * 0.8 + 0.1).item<double>(), 1.0);
}

TEST(VaeLoss, SsimMatchesPytorchSsimReference) {
  // Values from pytorch-ssim (Po-Hsun-Su; the reference's SSIM), 11x11 window, σ = 1.5,
  // computed with Debian's python3-torch on the same images.
  auto [x, y] = ssim_pair();
  EXPECT_NEAR(ssim(x, y).item<double>(), 0.2230573296546936, 1e-5);
  EXPECT_NEAR(ssim(x, x * 0.8 + 0.1).item<double>(), 0.9811611175537109, 1e-5);
  // Per channel on colour images: three copies give the same mean.
  EXPECT_NEAR(ssim(x.repeat({1, 3, 1, 1}), y.repeat({1, 3, 1, 1})).item<double>(), 0.2230573296546936, 1e-5);
}

TEST(VaeLoss, ReconstructionLossesArePerImageSums) {
  auto target = torch::tensor({0.0f, 1.0f, 0.25f, 0.75f}).view({1, 1, 2, 2}).repeat({2, 1, 1, 1});
  auto logits = torch::zeros({2, 1, 2, 2});  // sigmoid = 0.5 everywhere
  auto bce = reconstruction_loss(logits, target, ReconstructionLoss::kBce);
  ASSERT_EQ(bce.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(bce[0].item<double>(), 4 * std::log(2.0), 1e-5);  // BCE(0.5, t) = ln 2 for any t
  auto mse = reconstruction_loss(logits, target, ReconstructionLoss::kMse);
  EXPECT_NEAR(mse[1].item<double>(), 0.25 + 0.25 + 0.0625 + 0.0625, 1e-6);
  // Perfect reconstruction: ~0 for mse and ssim, and bce reaches its minimum (the entropy).
  auto perfect = torch::logit(target.clamp(1e-4, 1 - 1e-4));
  EXPECT_NEAR(reconstruction_loss(perfect, target, ReconstructionLoss::kMse)[0].item<double>(), 0.0, 1e-6);
  auto [x, y] = ssim_pair();
  auto s = reconstruction_loss(torch::logit(x.clamp(1e-6, 1 - 1e-6)), x, ReconstructionLoss::kSsim);
  EXPECT_NEAR(s[0].item<double>(), 0.0, 1e-2);
  auto d = reconstruction_loss(torch::logit(y.clamp(1e-6, 1 - 1e-6)), x, ReconstructionLoss::kSsim);
  EXPECT_NEAR(d[0].item<double>(), 256 * (1 - 0.2230573296546936), 0.05);
}

TEST(VaeLoss, AnnealingRisesLinearlyThenStays) {
  EXPECT_DOUBLE_EQ(kl_annealing(0, 100), 0.0);
  EXPECT_DOUBLE_EQ(kl_annealing(50, 100), 0.5);
  EXPECT_DOUBLE_EQ(kl_annealing(100, 100), 1.0);
  EXPECT_DOUBLE_EQ(kl_annealing(1000, 100), 1.0);
  EXPECT_DOUBLE_EQ(kl_annealing(3, 0), 1.0);
}

TEST(VaeLoss, ParsesLossNames) {
  EXPECT_EQ(parse_reconstruction_loss("ssim", "train-vae"), ReconstructionLoss::kSsim);
  EXPECT_EQ(reconstruction_loss_name(ReconstructionLoss::kBce), "bce");
  EXPECT_THROW(parse_reconstruction_loss("l1", "train-vae"), ConfigError);
}

}  // namespace
}  // namespace defuse
