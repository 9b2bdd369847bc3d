// The LibTorch DP-GMM engine (src/defuse/distill/dpgmm_torch.h) against the built-in CPU
// engine: the same fit on the CPU, and on CUDA when this LibTorch has a GPU.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "defuse/base/error.h"
#include "defuse/distill/dpgmm.h"
#include "defuse/distill/dpgmm_torch.h"

namespace defuse {
namespace {

std::vector<double> blobs(int64_t n, int64_t d, int64_t clusters) {
  std::vector<double> x(n * d);
  uint64_t state = 99;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      state = 6364136223846793005ULL * state + 1442695040888963407ULL;
      const double u = static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5;
      x[i * d + j] = 6.0 * static_cast<double>((i % clusters) * (j % 2 ? 1 : -1)) + u;
    }
  return x;
}

void expect_same_fit(const DpgmmResult& a, const DpgmmResult& b, double tol) {
  ASSERT_EQ(a.lower_bounds.size(), b.lower_bounds.size());
  for (size_t i = 0; i < a.lower_bounds.size(); ++i)
    EXPECT_NEAR(a.lower_bounds[i], b.lower_bounds[i], tol * std::fabs(b.lower_bounds[i])) << "iteration " << i + 1;
  for (size_t i = 0; i < a.model.weights.size(); ++i) EXPECT_NEAR(a.model.weights[i], b.model.weights[i], tol);
  for (size_t i = 0; i < a.model.means.size(); ++i)
    EXPECT_NEAR(a.model.means[i], b.model.means[i], tol * (1 + std::fabs(b.model.means[i])));
  EXPECT_EQ(a.labels, b.labels);
}

void check_engine(const std::string& device) {
  const auto x = blobs(3000, 5, 4);
  for (auto type : {CovarianceType::kFull, CovarianceType::kDiag, CovarianceType::kSpherical, CovarianceType::kTied}) {
    DpgmmOptions o;
    o.components = 10;
    o.covariance_type = type;
    o.max_iter = 25;
    o.tol = 0;
    o.responsibility_floor = 0;
    o.precision = DpgmmPrecision::kFloat64;
    auto builtin = fit_dpgmm(x.data(), 3000, 5, o);
    o.engine = torch_dpgmm_engine(device);
    auto torch_fit = fit_dpgmm(x.data(), 3000, 5, o);
    SCOPED_TRACE(device + " " + to_string(type));
    expect_same_fit(torch_fit, builtin, 1e-9);
    // Sample weights go through the engine too.
    std::vector<double> w(3000);
    for (int i = 0; i < 3000; ++i) w[i] = 0.5 + (i % 3);
    o.engine = nullptr;
    auto builtin_w = fit_dpgmm(x.data(), 3000, 5, o, w.data());
    o.engine = torch_dpgmm_engine(device);
    auto torch_w = fit_dpgmm(x.data(), 3000, 5, o, w.data());
    expect_same_fit(torch_w, builtin_w, 1e-9);
  }
}

TEST(DpgmmTorchEngine, MatchesTheBuiltInEngineOnCpu) { check_engine("cpu"); }

TEST(DpgmmTorchEngine, MatchesTheBuiltInEngineOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA in this LibTorch or no GPU";
  check_engine("cuda");
}

TEST(DpgmmTorchEngine, Float32IsCloseAndBadDevicesAreConfigErrors) {
  const auto x = blobs(2000, 4, 3);
  DpgmmOptions o;
  o.components = 6;
  o.max_iter = 20;
  o.tol = 0;
  o.precision = DpgmmPrecision::kFloat64;
  o.engine = torch_dpgmm_engine("cpu");
  auto f64 = fit_dpgmm(x.data(), 2000, 4, o);
  o.precision = DpgmmPrecision::kFloat32;
  auto f32 = fit_dpgmm(x.data(), 2000, 4, o);
  EXPECT_NEAR(f32.lower_bound, f64.lower_bound, 1e-4 * std::fabs(f64.lower_bound));  // float32 products
  EXPECT_EQ(f32.labels, f64.labels);
  o.engine = torch_dpgmm_engine("tpu");
  EXPECT_THROW(fit_dpgmm(x.data(), 2000, 4, o), ConfigError);
}

}  // namespace
}  // namespace defuse
