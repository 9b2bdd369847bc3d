// The LibTorch DP-GMM engine (dpgmm_torch.h): the same E-step as the CPU engine
// (dpgmm_engine.h: log ρ = F(x̃)·W + c), as dense tensor operations on any device.
// Statistics are uncentred second moments accumulated in float64, centred at the end:
// Σ r (x − x̄)(x − x̄)ᵀ = Σ r x xᵀ − x̄ sᵀ − s x̄ᵀ + N_k x̄ x̄ᵀ with s = Σ r x (points are
// already centred on the shift, which keeps the cancellation small).
#include <torch/torch.h>

#include <limits>

#include "defuse/base/error.h"
#include "defuse/distill/dpgmm_engine.h"
#include "defuse/distill/dpgmm_torch.h"
#include "defuse/model/device.h"

namespace defuse {
namespace {

constexpr double kCountEpsilon = 10 * std::numeric_limits<double>::epsilon();

class TorchEngine final : public DpgmmEngine {
 public:
  TorchEngine(const double* x, int64_t n, int64_t d, const double* weight, const DpgmmOptions& options,
              c10::Device device)
      : n_(n), d_(d), device_(device), precision_(options.precision) {
    auto cpu = torch::from_blob(const_cast<double*>(x), {n, d}, torch::kFloat64);
    x_ = cpu.to(device_, /*non_blocking=*/false, /*copy=*/true);
    if (weight) w_ = torch::from_blob(const_cast<double*>(weight), {n}, torch::kFloat64).to(device_, false, true);
  }

  void expectation(const DpgmmTerms& terms, DpgmmStats& stats) override {
    torch::NoGradGuard no_grad;
    prepare(terms);
    const int64_t k = terms.components, d = d_;
    const bool full = terms.covariance_type == CovarianceType::kFull || terms.covariance_type == CovarianceType::kTied;
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
    auto counts = torch::zeros({k}, opts);
    auto sums = torch::zeros({k, d}, opts);
    auto second = torch::zeros({k, full ? pairs_i_.size(0) : d}, opts);
    auto entropy = torch::zeros({}, opts), likelihood = torch::zeros({}, opts);
    for (int64_t r0 = 0; r0 < n_; r0 += chunk_) {
      const int64_t rows = std::min(chunk_, n_ - r0);
      auto xc = xc_.narrow(0, r0, rows);
      auto [log_rho, quad] = log_rho_of(xc, terms);
      auto lse = torch::logsumexp(log_rho, 1, /*keepdim=*/true);
      auto log_r = log_rho - lse;
      auto r = log_r.exp();
      auto row_entropy = (r * log_r).sum(1);
      if (w_.defined()) {
        auto w = w_.narrow(0, r0, rows);
        entropy += (w * row_entropy).sum();
        likelihood += (w * lse.squeeze(1)).sum();
        r = r * w.unsqueeze(1);
      } else {
        entropy += row_entropy.sum();
        likelihood += lse.sum();
      }
      counts += r.sum(0);
      sums += r.t().mm(xc);
      second += r.t().mm(quad);  // Σ r x_i x_j (full, i ≤ j) or Σ r x_j² (diag, spherical)
    }
    auto counts_cpu = counts.cpu(), sums_cpu = sums.cpu(), second_cpu = second.cpu();
    stats.components = k;
    stats.dims = d;
    stats.counts.assign(counts_cpu.data_ptr<double>(), counts_cpu.data_ptr<double>() + k);
    stats.sums.assign(sums_cpu.data_ptr<double>(), sums_cpu.data_ptr<double>() + k * d);
    stats.entropy = entropy.item<double>();
    stats.log_likelihood = likelihood.item<double>();
    // Centre the second moments on x̄_k = s_k / (N_k + 10ε).
    const double* sec = second_cpu.data_ptr<double>();
    const int64_t width = second_cpu.size(1);
    stats.scatter.assign(k * (full ? d * d : d), 0.0);
    for (int64_t c = 0; c < k; ++c) {
      const double nk = stats.counts[c];
      const double* s = stats.sums.data() + c * d;
      std::vector<double> mean(d);
      for (int64_t j = 0; j < d; ++j) mean[j] = s[j] / (nk + kCountEpsilon);
      if (full) {
        double* out = stats.scatter.data() + c * d * d;
        int64_t f = 0;
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = i; j < d; ++j, ++f)
            out[i * d + j] = out[j * d + i] =
                sec[c * width + f] - mean[i] * s[j] - s[i] * mean[j] + nk * mean[i] * mean[j];
      } else {
        double* out = stats.scatter.data() + c * d;
        for (int64_t j = 0; j < d; ++j) out[j] = sec[c * width + j] - 2 * mean[j] * s[j] + nk * mean[j] * mean[j];
      }
    }
  }

  void responsibilities(const DpgmmTerms& terms, int32_t* labels, double* max_probability, double* all) override {
    torch::NoGradGuard no_grad;
    prepare(terms);
    const int64_t k = terms.components;
    for (int64_t r0 = 0; r0 < n_; r0 += chunk_) {
      const int64_t rows = std::min(chunk_, n_ - r0);
      auto log_rho = log_rho_of(xc_.narrow(0, r0, rows), terms).first;
      auto r = (log_rho - torch::logsumexp(log_rho, 1, true)).exp();
      auto [best, arg] = r.max(1);
      auto arg_cpu = arg.to(torch::kInt32).cpu().contiguous();
      auto best_cpu = best.cpu().contiguous();
      if (labels) std::copy(arg_cpu.data_ptr<int32_t>(), arg_cpu.data_ptr<int32_t>() + rows, labels + r0);
      if (max_probability)
        std::copy(best_cpu.data_ptr<double>(), best_cpu.data_ptr<double>() + rows, max_probability + r0);
      if (all) {
        auto r_cpu = r.cpu().contiguous();
        std::copy(r_cpu.data_ptr<double>(), r_cpu.data_ptr<double>() + rows * k, all + r0 * k);
      }
    }
  }

 private:
  // Centres the points on the terms' shift (once per fit) and uploads W and c.
  void prepare(const DpgmmTerms& terms) {
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
    if (terms.shift != shift_) {
      shift_ = terms.shift;
      auto shift = torch::from_blob(shift_.data(), {d_}, torch::kFloat64).to(device_, false, true);
      xc_ = x_ - shift;
    }
    if (terms.covariance_type != type_ || !pairs_i_.defined()) {
      type_ = terms.covariance_type;
      std::vector<int64_t> ii, jj;
      for (int64_t i = 0; i < d_; ++i)
        for (int64_t j = i; j < d_; ++j) ii.push_back(i), jj.push_back(j);
      pairs_i_ = torch::tensor(ii, torch::kInt64).to(device_);
      pairs_j_ = torch::tensor(jj, torch::kInt64).to(device_);
    }
    const int64_t p = dpgmm_feature_count(terms.covariance_type, d_);
    const auto dtype = precision_ == DpgmmPrecision::kFloat32 ? torch::kFloat32 : torch::kFloat64;
    matrix_ = torch::from_blob(const_cast<double*>(terms.matrix.data()), {p, terms.components}, torch::kFloat64)
                  .to(opts.dtype(dtype), false, true);
    offset_ = torch::from_blob(const_cast<double*>(terms.offset.data()), {terms.components}, torch::kFloat64)
                  .to(device_, false, true);
    // Chunks of about 2^24 feature and responsibility values.
    chunk_ = std::max<int64_t>(1024, (int64_t{1} << 24) / (p + terms.components));
  }

  // log ρ [rows, K] in float64, and the quadratic features [rows, P_q] in float64.
  std::pair<torch::Tensor, torch::Tensor> log_rho_of(const torch::Tensor& xc, const DpgmmTerms& terms) const {
    torch::Tensor quad;
    switch (terms.covariance_type) {
      case CovarianceType::kFull:
      case CovarianceType::kTied:
        quad = xc.index_select(1, pairs_i_) * xc.index_select(1, pairs_j_);
        break;
      case CovarianceType::kDiag:
        quad = xc * xc;
        break;
      case CovarianceType::kSpherical:
        quad = xc * xc;
        break;
    }
    auto head = terms.covariance_type == CovarianceType::kSpherical ? quad.sum(1, true) : quad;
    auto features = torch::cat({head, xc}, 1).to(matrix_.scalar_type());
    auto log_rho = features.mm(matrix_).to(torch::kFloat64) + offset_;
    return {log_rho, quad};
  }

  int64_t n_, d_;
  c10::Device device_;
  DpgmmPrecision precision_;
  torch::Tensor x_, w_, xc_, matrix_, offset_, pairs_i_, pairs_j_;
  std::vector<double> shift_;
  CovarianceType type_ = CovarianceType::kFull;
  int64_t chunk_ = 4096;
};

}  // namespace

DpgmmEngineFactory torch_dpgmm_engine(const std::string& device_name) {
  return [device_name](const double* x, int64_t n, int64_t d, const double* weight,
                       const DpgmmOptions& options) -> std::unique_ptr<DpgmmEngine> {
    const c10::Device device = parse_device(device_name, "dpgmm");
    return std::make_unique<TorchEngine>(x, n, d, weight, options, device);
  };
}

}  // namespace defuse
