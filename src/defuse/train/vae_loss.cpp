#include "defuse/train/vae_loss.h"

#include "defuse/base/error.h"

namespace defuse {

ReconstructionLoss parse_reconstruction_loss(const std::string& name, const std::string& stage) {
  if (name == "bce") return ReconstructionLoss::kBce;
  if (name == "mse") return ReconstructionLoss::kMse;
  if (name == "ssim") return ReconstructionLoss::kSsim;
  throw ConfigError(stage + ": unknown reconstruction loss '" + name + "' (expected bce, mse or ssim)");
}

std::string reconstruction_loss_name(ReconstructionLoss loss) {
  switch (loss) {
    case ReconstructionLoss::kBce:
      return "bce";
    case ReconstructionLoss::kMse:
      return "mse";
    case ReconstructionLoss::kSsim:
      return "ssim";
  }
  return "?";
}

at::Tensor reconstruction_loss(const at::Tensor& logits, const at::Tensor& target, ReconstructionLoss loss) {
  switch (loss) {
    case ReconstructionLoss::kBce:
      return torch::binary_cross_entropy_with_logits(logits, target, {}, {}, at::Reduction::None).flatten(1).sum(1);
    case ReconstructionLoss::kMse:
      return (torch::sigmoid(logits) - target).square().flatten(1).sum(1);
    case ReconstructionLoss::kSsim:
      return (1.0 - ssim_map(torch::sigmoid(logits), target)).flatten(1).sum(1);
  }
  return {};
}

at::Tensor gaussian_kl(const at::Tensor& mu, const at::Tensor& logvar) {
  return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(1);
}

at::Tensor ssim_map(const at::Tensor& x, const at::Tensor& y, int64_t window, double sigma) {
  const int64_t channels = x.size(1);
  auto coords = torch::arange(window, x.options().dtype(torch::kFloat64)) - static_cast<double>(window / 2);
  auto g = torch::exp(-coords.square() / (2.0 * sigma * sigma));
  g = (g / g.sum()).to(x.scalar_type());
  // The five local statistics in one grouped convolution (one pass instead of five), and the
  // Gaussian window as two 1-D passes (2w multiplications a pixel instead of w²; with zero
  // padding the result is the 2-D window's, exactly in real arithmetic).
  auto stacked = torch::cat({x, y, x * x, y * y, x * y}, 1);
  const int64_t groups = 5 * channels;
  auto column = g.view({1, 1, window, 1}).expand({groups, 1, window, 1}).contiguous();
  auto row = g.view({1, 1, 1, window}).expand({groups, 1, 1, window}).contiguous();
  const std::vector<int64_t> one{1, 1}, pad_rows{window / 2, 0}, pad_cols{0, window / 2};
  auto vertical = at::conv2d(stacked, column, {}, one, pad_rows, one, groups);
  auto filtered = at::conv2d(vertical, row, {}, one, pad_cols, one, groups).chunk(5, 1);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const auto &mu_x = filtered[0], &mu_y = filtered[1];
  auto mu_xx = mu_x.square(), mu_yy = mu_y.square(), mu_xy = mu_x * mu_y;
  auto sigma_xx = filtered[2] - mu_xx;
  auto sigma_yy = filtered[3] - mu_yy;
  auto sigma_xy = filtered[4] - mu_xy;
  return ((2.0 * mu_xy + c1) * (2.0 * sigma_xy + c2)) / ((mu_xx + mu_yy + c1) * (sigma_xx + sigma_yy + c2));
}

at::Tensor ssim(const at::Tensor& x, const at::Tensor& y, int64_t window, double sigma) {
  return ssim_map(x, y, window, sigma).flatten(1).mean(1);
}

double kl_annealing(int64_t step, int64_t anneal_steps) {
  if (anneal_steps <= 0) return 1.0;
  return std::min(1.0, static_cast<double>(step) / static_cast<double>(anneal_steps));
}

}  // namespace defuse
