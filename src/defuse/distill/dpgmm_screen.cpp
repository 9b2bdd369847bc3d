// The bound screen of the CPU engine's E-step (dpgmm_screen.h).
#include "defuse/distill/dpgmm_screen.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "defuse/base/simd.h"
#include "defuse/distill/dpgmm_kernels.h"
#include "defuse/distill/dpgmm_precision_bound.h"

namespace defuse::dpgmm_cpu {
namespace {

// The bound screen's row (BoundScreen::prepare has the per-component terms): for each
// component k, with y = x̃ − m_k, ‖y‖² from g_k = x̃·m_k and t = v_k·y from h_k = x̃·v_k,
// both from float32 products and loosened by their rounding (d² down, |t| up; `slack`
// relative to ‖x̃‖² + ‖m_k‖² and ‖x̃‖ + ‖m_k‖),
//   q_k ≥ max(flat_k·d², λ_k·d² − (λ_k − flat_k)·t²)  and  u_k = c_k − ½q_k ≥ log ρ_k,
// into u [K]; returns the first k with the largest u_k.
DEFUSE_CLONES int64_t bound_row(const float* g, const float* h, double x_norm2, double x_norm, const double* mean_norm2,
                                const double* mean_norm, const double* mean_dot, const double* half_lambda,
                                const double* half_excess, const double* constant, int64_t k_count, double slack,
                                double* u) {
  double best = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : best)
  for (int64_t k = 0; k < k_count; ++k) {
    double d2 = x_norm2 - 2.0 * static_cast<double>(g[k]) + mean_norm2[k] - slack * (x_norm2 + mean_norm2[k]);
    d2 = d2 > 0.0 ? d2 : 0.0;
    const double t = std::fabs(static_cast<double>(h[k]) - mean_dot[k]) + slack * (x_norm + mean_norm[k]);
    const double flat = (half_lambda[k] - half_excess[k]) * d2;
    double half_q = half_lambda[k] * d2 - half_excess[k] * (t * t);
    half_q = half_q > flat ? half_q : flat;
    const double v = constant[k] - half_q;
    u[k] = v;
    best = v > best ? v : best;
  }
  int64_t at = 0;
  while (at < k_count - 1 && !(u[at] == best)) ++at;
  return at;
}

}  // namespace

void BoundScreen::prepare(const DpgmmTerms& terms, int64_t d, int threads) {
  const bool tied = terms.covariance_type == CovarianceType::kTied;
  const int64_t k_count = terms.components, factor_count = tied ? 1 : k_count;
  if (static_cast<int64_t>(eigen_guess_.size()) != factor_count * 2 * d) eigen_guess_.assign(factor_count * 2 * d, 0.0);
  std::vector<DpgmmPrecisionBound> found(factor_count);
  const int team = static_cast<int>(std::clamp<int64_t>(factor_count / 8, 1, threads));
#pragma omp parallel for schedule(static) num_threads(team)
  for (int64_t f = 0; f < factor_count; ++f)
    found[f] = dpgmm_precision_bound(terms.factors.data() + f * d * d, d, eigen_guess_.data() + f * 2 * d);
  mean_norm2_.resize(k_count);
  mean_norm_.resize(k_count);
  mean_dot_.resize(k_count);
  half_lambda_.resize(k_count);
  half_excess_.resize(k_count);
  bound_matrix_.resize(2 * k_count * d);
  for (int64_t k = 0; k < k_count; ++k) {
    const DpgmmPrecisionBound& pb = found[tied ? 0 : k];
    const double* m = terms.means.data() + k * d;
    mean_norm2_[k] = std::inner_product(m, m + d, m, 0.0);
    mean_norm_[k] = std::sqrt(mean_norm2_[k]);
    mean_dot_[k] = std::inner_product(m, m + d, pb.direction.begin(), 0.0);
    half_lambda_[k] = 0.5 * pb.lambda;
    half_excess_[k] = 0.5 * (pb.lambda - pb.flat);
    std::copy(m, m + d, bound_matrix_.begin() + k * d);
    std::copy(pb.direction.begin(), pb.direction.end(), bound_matrix_.begin() + (k_count + k) * d);
  }
}

int64_t BoundScreen::screen_block(const double* x, int64_t n, int64_t d, int64_t b, const DpgmmTerms& terms,
                                  const double* padded, double margin, BlockScratch& s, BlockEntries& entries,
                                  std::atomic<int64_t>& bad_row) const {
  const bool tied = terms.covariance_type == CovarianceType::kTied;
  const int64_t k_count = terms.components, stride = s.stride;
  const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n - r0);
  // Rounding of the float32 products x̃·m_k (inputs rounded to float32, sums of d terms):
  // at most (d + 2)·2^-24·‖x̃‖‖m_k‖ each; doubled for safety, relative to ‖x̃‖² + ‖m_k‖²
  // (for d²) and to ‖x̃‖ + ‖m_k‖ (for t, ‖v_k‖ = 1).
  const double slack = 0x1.0p-23 * static_cast<double>(d + 4);
  int64_t count = 0;
  for (int64_t i0 = 0; i0 < rows; i0 += kBoundRows) {
    const int64_t m = std::min(kBoundRows, rows - i0);
    centre_rows(x + (r0 + i0) * d, m, d, terms.shift.data(), s.centred.data(), s.norms.data());
    // [x̃·m_k | x̃·v_k] for the sub-block's rows.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(2 * k_count),
                static_cast<int>(d), 1.0f, s.centred.data(), static_cast<int>(d), bound_matrix_.data(),
                static_cast<int>(d), 0.0f, s.dots.data(), static_cast<int>(2 * k_count));
    // Each row's bounds and best-bounded component, rows counted by that component.
    std::fill(s.by_best.begin(), s.by_best.end(), 0);
    for (int64_t i = 0; i < m; ++i) {
      const float* g = s.dots.data() + i * 2 * k_count;
      s.best[i] =
          static_cast<int32_t>(bound_row(g, g + k_count, s.norms[i], std::sqrt(s.norms[i]), mean_norm2_.data(),
                                         mean_norm_.data(), mean_dot_.data(), half_lambda_.data(), half_excess_.data(),
                                         terms.constant.data(), k_count, slack, s.bound.data() + i * k_count));
      ++s.by_best[s.best[i] + 1];
    }
    // ℓ* of every row: the rows grouped by best component, eight at a time through the
    // same kernel as the candidates (each factor loaded once per group).
    for (int64_t k = 0; k < k_count; ++k) s.by_best[k + 1] += s.by_best[k];
    for (int64_t i = 0; i < m; ++i) s.order[s.by_best[s.best[i]]++] = static_cast<int32_t>(i);
    double q[8];
    for (int64_t g0 = 0; g0 < m;) {
      // A group: up to 8 consecutive rows of the order with the same best component.
      const int32_t k = s.best[s.order[g0]];
      int64_t group = 1;
      while (group < 8 && g0 + group < m && s.best[s.order[g0 + group]] == k) ++group;
      const double* mean = terms.means.data() + k * d;
      for (int64_t j = 0; j < d; ++j) s.offset[j] = terms.shift[j] + mean[j];
      for (int64_t r = 0; r < 8; ++r) {
        double* a = s.rows8.data() + r * stride;
        if (r < group)
          subtract(x + (r0 + i0 + s.order[g0 + r]) * d, s.offset.data(), d, a);
        else
          std::fill(a, a + d, 0.0);
      }
      upper_quadratic8(padded + (tied ? 0 : k * d * stride), s.rows8.data(), d, stride, nullptr, q);
      for (int64_t r = 0; r < group; ++r) s.exact[s.order[g0 + r]] = terms.constant[k] - 0.5 * q[r];
      g0 += group;
    }
    for (int64_t i = 0; i < m; ++i) {
      const double* u = s.bound.data() + i * k_count;
      const double exact = s.exact[i];
      if (!std::isfinite(exact)) note_bad_row(bad_row, r0 + i0 + i);
      const double cut = std::nextafter(exact - margin, -std::numeric_limits<double>::infinity());
      s.cut[i0 + i] = cut;
      count += select_candidates(u, k_count, cut, static_cast<int32_t>((i0 + i) * k_count), s.pairs.data() + count,
                                 s.values.data() + count);
    }
  }
  sort_pairs(s.pairs.data(), count, k_count, entries, [&](int64_t j) { return s.values[j]; });
  return count;
}

}  // namespace defuse::dpgmm_cpu
