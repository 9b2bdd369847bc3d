// The DP-GMM driver: priors, initialisation, the coordinate-ascent loop, the parameter
// updates (M-step) and the lower bound. The O(N·K) E-step and statistics run in an engine
// (dpgmm_engine.h); everything here is O(K·D³) per iteration.
//
// Notation (Bishop PRML §10.2, Blei & Jordan 2006): K components, D dimensions, priors
// α (weights), β0 and m0 (means), ν0 and Ψ0 (the Wishart on precisions, Ψ0 being the
// prior covariance, i.e. W0⁻¹). Posterior: Beta(a_k, b_k) sticks (or Dirichlet(a)),
// N(m_k, (β_k Λ_k)⁻¹) means and Wishart(W_k, ν_k) precisions. As in scikit-learn, the
// stored "covariance" is C_k = W_k⁻¹/ν_k = E[Λ_k]⁻¹ and its Cholesky-based precision factor.
#include "defuse/distill/dpgmm.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "defuse/base/error.h"
#include "defuse/base/random.h"
#include "defuse/base/timing.h"
#include "defuse/distill/dpgmm_engine.h"
#include "defuse/distill/kmeans.h"

namespace defuse {

// Lower Cholesky factor of the symmetric D×D matrix `a` into `l`; false if it is not
// positive definite (a pivot ≤ 0 or not finite).
bool dpgmm_cholesky(const double* a, int64_t d, double* l) {
  std::fill(l, l + d * d, 0.0);
  for (int64_t j = 0; j < d; ++j) {
    double s = a[j * d + j];
    for (int64_t p = 0; p < j; ++p) s -= l[j * d + p] * l[j * d + p];
    if (!(s > 0) || !std::isfinite(s)) return false;
    const double pivot = std::sqrt(s);
    l[j * d + j] = pivot;
    for (int64_t i = j + 1; i < d; ++i) {
      double v = a[i * d + j];
      for (int64_t p = 0; p < j; ++p) v -= l[i * d + p] * l[j * d + p];
      l[i * d + j] = v / pivot;
    }
  }
  return true;
}

namespace {

constexpr double kCountEpsilon = 10 * std::numeric_limits<double>::epsilon();  // scikit-learn: N_k + 10ε
constexpr double kLog2Pi = 1.8378770664093454836;
constexpr double kLog2 = 0.69314718055994530942;

using Clock = std::chrono::steady_clock;

// ψ(x) for x > 0: recurrence up to x ≥ 10, then the asymptotic series (error < 1e-15).
double digamma(double x) {
  double result = 0;
  while (x < 10) {
    result -= 1 / x;
    x += 1;
  }
  const double f = 1 / (x * x);
  const double series =
      f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760))))));
  return result + std::log(x) - 0.5 / x - series;
}

double betaln(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

bool is_full(CovarianceType t) { return t == CovarianceType::kFull || t == CovarianceType::kTied; }

// Size of a covariance-shaped array for K components.
int64_t covariance_size(CovarianceType t, int64_t k, int64_t d) {
  switch (t) {
    case CovarianceType::kFull:
      return k * d * d;
    case CovarianceType::kTied:
      return d * d;
    case CovarianceType::kDiag:
      return k * d;
    case CovarianceType::kSpherical:
      return k;
  }
  return 0;
}

// U = (L⁻¹)ᵀ, upper triangular, so that U·Uᵀ = (L·Lᵀ)⁻¹ (scikit-learn's precisions_cholesky_).
// Returns Σ log U_ii = −Σ log L_ii.
double precision_factor(const double* l, int64_t d, double* u) {
  // Solve L·Y = I column by column (forward substitution); U = Yᵀ.
  std::vector<double> y(d * d, 0.0);
  for (int64_t c = 0; c < d; ++c) {
    for (int64_t i = c; i < d; ++i) {
      double v = i == c ? 1.0 : 0.0;
      for (int64_t p = c; p < i; ++p) v -= l[i * d + p] * y[p * d + c];
      y[i * d + c] = v / l[i * d + i];
    }
  }
  double log_det = 0;
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) u[i * d + j] = y[j * d + i];
    log_det -= std::log(l[i * d + i]);
  }
  return log_det;
}

// The resolved priors, in centred coordinates (m0 relative to the shift).
struct Priors {
  double alpha = 0, beta0 = 0, nu0 = 0;
  std::vector<double> m0;   // [D]
  std::vector<double> psi;  // Ψ0, shaped by covariance type ([D,D], [D] or [1])
};

// The variational posterior while fitting (centred coordinates).
struct Params {
  int64_t k = 0, d = 0;
  std::vector<double> a, b;          // [K] weight concentration (b empty for Dirichlet)
  std::vector<double> beta, nu;      // [K]
  std::vector<double> means;         // [K, D]
  std::vector<double> cov;           // C_k by covariance type
  std::vector<double> prec_chol;     // U_k by covariance type
  std::vector<double> log_det_chol;  // [K] Σ log U_k,ii (tied: the same K times)
  std::vector<int64_t> index;        // [K] original component index
};

// M-step: the variational updates of every factor given the statistics
// (Blei & Jordan 2006 §5 for the sticks; Bishop (10.58), (10.60)–(10.63) for the
// Gaussian–Wishart factors, in scikit-learn's normalisation).
Params m_step(const DpgmmStats& s, const Priors& pr, const DpgmmOptions& o, std::vector<int64_t> index) {
  const int64_t k = s.components, d = s.dims;
  const CovarianceType type = o.covariance_type;
  Params p;
  p.k = k;
  p.d = d;
  p.index = std::move(index);
  std::vector<double> nk(k), xk(k * d);
  for (int64_t c = 0; c < k; ++c) {
    nk[c] = s.counts[c] + kCountEpsilon;
    for (int64_t j = 0; j < d; ++j) xk[c * d + j] = s.sums[c * d + j] / nk[c];
  }
  // Weights. Stick-breaking: q(v_k) = Beta(1 + N_k, α + Σ_{j>k} N_j); finite Dirichlet:
  // q(π) = Dir(α + N_k).
  p.a.resize(k);
  if (o.weight_prior_type == WeightPriorType::kDirichletProcess) {
    p.b.resize(k);
    double tail = 0;
    for (int64_t c = k - 1; c >= 0; --c) {
      p.a[c] = 1.0 + nk[c];
      p.b[c] = pr.alpha + tail;
      tail += nk[c];
    }
  } else {
    for (int64_t c = 0; c < k; ++c) p.a[c] = pr.alpha + nk[c];
  }
  // Means: β_k = β0 + N_k, m_k = (β0 m0 + N_k x̄_k)/β_k  (Bishop (10.60)–(10.61)).
  p.beta.resize(k);
  p.means.resize(k * d);
  for (int64_t c = 0; c < k; ++c) {
    p.beta[c] = pr.beta0 + nk[c];
    for (int64_t j = 0; j < d; ++j) p.means[c * d + j] = (pr.beta0 * pr.m0[j] + nk[c] * xk[c * d + j]) / p.beta[c];
  }
  // Precisions: ν_k = ν0 + N_k and W_k⁻¹ = Ψ0 + N_k S_k + (β0 N_k/β_k)(x̄_k − m0)(x̄_k − m0)ᵀ
  // (Bishop (10.62)–(10.63)), where S_k is the weighted covariance plus reg_covar·I;
  // stored as C_k = W_k⁻¹/ν_k.
  p.nu.resize(k);
  p.cov.assign(covariance_size(type, k, d), 0.0);
  switch (type) {
    case CovarianceType::kFull:
      for (int64_t c = 0; c < k; ++c) {
        p.nu[c] = pr.nu0 + nk[c];
        const double shrink = nk[c] * pr.beta0 / p.beta[c];
        double* cov = p.cov.data() + c * d * d;
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = 0; j < d; ++j) {
            const double sk = s.scatter[c * d * d + i * d + j] / nk[c] + (i == j ? o.reg_covar : 0.0);
            const double di = xk[c * d + i] - pr.m0[i], dj = xk[c * d + j] - pr.m0[j];
            cov[i * d + j] = (pr.psi[i * d + j] + nk[c] * sk + shrink * di * dj) / p.nu[c];
          }
      }
      break;
    case CovarianceType::kTied: {
      // One Wishart shared by all components: ν = ν0 + N/K and
      // W⁻¹ = Ψ0 + (N/K) S + (β0/K) Σ_k (N_k/β_k)(x̄_k − m0)(x̄_k − m0)ᵀ, S = Σ_k N_k S_k / N.
      const double total = std::accumulate(nk.begin(), nk.end(), 0.0);
      const double nu = pr.nu0 + total / static_cast<double>(k);
      std::fill(p.nu.begin(), p.nu.end(), nu);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j) {
          double scatter = 0, spread = 0;
          for (int64_t c = 0; c < k; ++c) {
            scatter += s.scatter[c * d * d + i * d + j];
            spread += nk[c] / p.beta[c] * (xk[c * d + i] - pr.m0[i]) * (xk[c * d + j] - pr.m0[j]);
          }
          const double sk = scatter / total + (i == j ? o.reg_covar : 0.0);
          p.cov[i * d + j] =
              (pr.psi[i * d + j] + sk * total / static_cast<double>(k) + pr.beta0 / static_cast<double>(k) * spread) /
              nu;
        }
      break;
    }
    case CovarianceType::kDiag:
      for (int64_t c = 0; c < k; ++c) {
        p.nu[c] = pr.nu0 + nk[c];
        for (int64_t j = 0; j < d; ++j) {
          const double sk = s.scatter[c * d + j] / nk[c] + o.reg_covar;
          const double diff = xk[c * d + j] - pr.m0[j];
          p.cov[c * d + j] = (pr.psi[j] + nk[c] * (sk + pr.beta0 / p.beta[c] * diff * diff)) / p.nu[c];
        }
      }
      break;
    case CovarianceType::kSpherical:
      for (int64_t c = 0; c < k; ++c) {
        p.nu[c] = pr.nu0 + nk[c];
        double sk = 0, spread = 0;
        for (int64_t j = 0; j < d; ++j) {
          sk += s.scatter[c * d + j] / nk[c] + o.reg_covar;
          const double diff = xk[c * d + j] - pr.m0[j];
          spread += diff * diff;
        }
        sk /= static_cast<double>(d);
        spread /= static_cast<double>(d);
        p.cov[c] = (pr.psi[0] + nk[c] * (sk + pr.beta0 / p.beta[c] * spread)) / p.nu[c];
      }
      break;
  }
  // Precision factors U_k (Cholesky of C_k, inverted) and Σ log U_k,ii.
  p.prec_chol.resize(p.cov.size());
  p.log_det_chol.resize(k);
  auto fail = [&](int64_t c) {
    throw DataError(
        fmt::format("dpgmm: the covariance of component {} is not positive definite even with reg_covar = {:g} "
                    "(collapsed or badly scaled data): increase reg_covar or scale the features",
                    c < 0 ? 0 : p.index[c], o.reg_covar));
  };
  if (is_full(type)) {
    std::vector<double> l(d * d);
    const int64_t count = type == CovarianceType::kTied ? 1 : k;
    for (int64_t c = 0; c < count; ++c) {
      if (!dpgmm_cholesky(p.cov.data() + c * d * d, d, l.data())) fail(type == CovarianceType::kTied ? -1 : c);
      p.log_det_chol[c] = precision_factor(l.data(), d, p.prec_chol.data() + c * d * d);
    }
    if (type == CovarianceType::kTied) std::fill(p.log_det_chol.begin(), p.log_det_chol.end(), p.log_det_chol[0]);
  } else {
    for (size_t q = 0; q < p.cov.size(); ++q) {
      if (!(p.cov[q] > 0) || !std::isfinite(p.cov[q])) fail(type == CovarianceType::kDiag ? q / d : q);
      p.prec_chol[q] = 1.0 / std::sqrt(p.cov[q]);
    }
    for (int64_t c = 0; c < k; ++c) {
      if (type == CovarianceType::kDiag) {
        double s = 0;
        for (int64_t j = 0; j < d; ++j) s += std::log(p.prec_chol[c * d + j]);
        p.log_det_chol[c] = s;
      } else {
        p.log_det_chol[c] = static_cast<double>(d) * std::log(p.prec_chol[c]);
      }
    }
  }
  return p;
}

// E[log π_k] under q: stick-breaking ψ(a_k) − ψ(a_k + b_k) + Σ_{j<k} (ψ(b_j) − ψ(a_j + b_j))
// (Blei & Jordan 2006, eq. (13)–(14)); Dirichlet ψ(a_k) − ψ(Σ a).
std::vector<double> expected_log_weights(const std::vector<double>& a, const std::vector<double>& b) {
  const int64_t k = static_cast<int64_t>(a.size());
  std::vector<double> out(k);
  if (!b.empty()) {
    double cumulative = 0;
    for (int64_t c = 0; c < k; ++c) {
      const double both = digamma(a[c] + b[c]);
      out[c] = digamma(a[c]) - both + cumulative;
      cumulative += digamma(b[c]) - both;
    }
  } else {
    const double both = digamma(std::accumulate(a.begin(), a.end(), 0.0));
    for (int64_t c = 0; c < k; ++c) out[c] = digamma(a[c]) - both;
  }
  return out;
}

// E[π_k]: stick-breaking a_k/(a_k+b_k)·Π_{j<k} b_j/(a_j+b_j), renormalised (the truncation
// leaves a little mass past K); Dirichlet a_k/Σa.
std::vector<double> expected_weights(const std::vector<double>& a, const std::vector<double>& b) {
  const int64_t k = static_cast<int64_t>(a.size());
  std::vector<double> w(k);
  if (!b.empty()) {
    double rest = 1;
    for (int64_t c = 0; c < k; ++c) {
      w[c] = a[c] / (a[c] + b[c]) * rest;
      rest *= b[c] / (a[c] + b[c]);
    }
  } else {
    w = a;
  }
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (auto& v : w) v /= total;
  return w;
}

// The E-step of Bishop (10.46)/(10.64)–(10.66) as F(x̃)·W + c (layout in dpgmm_engine.h):
//   log ρ_nk = E[log π_k] + ½ E[log|Λ_k|] − ½ D log 2π − ½ (D/β_k + ν_k (x−m_k)ᵀW_k(x−m_k)),
// with E[log|Λ_k|] = Σ_i ψ((ν_k − i)/2) + D log 2 + log|W_k| and ν_k W_k = U_k U_kᵀ.
DpgmmTerms make_terms(const Params& p, CovarianceType type, const std::vector<double>& shift) {
  const int64_t k = p.k, d = p.d, pc = dpgmm_feature_count(type, d);
  DpgmmTerms t;
  t.covariance_type = type;
  t.components = k;
  t.dims = d;
  t.shift = shift;
  t.matrix.assign(pc * k, 0.0);
  t.offset.assign(k, 0.0);
  const auto log_weights = expected_log_weights(p.a, p.b);
  std::vector<double> prec(d * d), pm(d);
  for (int64_t c = 0; c < k; ++c) {
    const double* m = p.means.data() + c * d;
    double quad_m = 0;  // m_kᵀ P m_k
    switch (type) {
      case CovarianceType::kFull:
      case CovarianceType::kTied: {
        const double* u = p.prec_chol.data() + (type == CovarianceType::kTied ? 0 : c * d * d);
        // P = U·Uᵀ (U upper triangular).
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = i; j < d; ++j) {
            double v = 0;
            for (int64_t q = std::max(i, j); q < d; ++q) v += u[i * d + q] * u[j * d + q];
            prec[i * d + j] = prec[j * d + i] = v;
          }
        for (int64_t i = 0; i < d; ++i) {
          double v = 0;
          for (int64_t j = 0; j < d; ++j) v += prec[i * d + j] * m[j];
          pm[i] = v;
          quad_m += m[i] * v;
        }
        int64_t f = 0;
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = i; j < d; ++j, ++f) t.matrix[f * k + c] = -0.5 * prec[i * d + j] * (i == j ? 1.0 : 2.0);
        for (int64_t i = 0; i < d; ++i) t.matrix[(f + i) * k + c] = pm[i];
        break;
      }
      case CovarianceType::kDiag:
        for (int64_t j = 0; j < d; ++j) {
          const double pj = p.prec_chol[c * d + j] * p.prec_chol[c * d + j];
          t.matrix[j * k + c] = -0.5 * pj;
          t.matrix[(d + j) * k + c] = pj * m[j];
          quad_m += pj * m[j] * m[j];
        }
        break;
      case CovarianceType::kSpherical: {
        const double pc2 = p.prec_chol[c] * p.prec_chol[c];
        t.matrix[c] = -0.5 * pc2;
        for (int64_t j = 0; j < d; ++j) {
          t.matrix[(1 + j) * k + c] = pc2 * m[j];
          quad_m += pc2 * m[j] * m[j];
        }
        break;
      }
    }
    t.means.insert(t.means.end(), m, m + d);
    if (type == CovarianceType::kFull || type == CovarianceType::kTied) {
      if (c == 0 || type == CovarianceType::kFull) {
        const double* u = p.prec_chol.data() + (type == CovarianceType::kTied ? 0 : c * d * d);
        t.factors.insert(t.factors.end(), u, u + d * d);
      }
    }
    double log_lambda = static_cast<double>(d) * kLog2;
    for (int64_t i = 0; i < d; ++i) log_lambda += digamma(0.5 * (p.nu[c] - static_cast<double>(i)));
    t.offset[c] = -0.5 * (static_cast<double>(d) * kLog2Pi + quad_m) + p.log_det_chol[c] -
                  0.5 * static_cast<double>(d) * std::log(p.nu[c]) +
                  0.5 * (log_lambda - static_cast<double>(d) / p.beta[c]) + log_weights[c];
    t.constant.push_back(t.offset[c] + 0.5 * quad_m);
  }
  return t;
}

// scikit-learn's lower bound (_compute_lower_bound): the ELBO up to constants, evaluated
// after the M-step, where the expected log-likelihood terms cancel against the KL terms
// and what remains is −Σ r log r minus the log normalisers of q(π), q(Λ) and the β_k terms.
double lower_bound(const Params& p, double entropy) {
  const int64_t k = p.k, d = p.d;
  double log_wishart = 0;
  for (int64_t c = 0; c < k; ++c) {
    const double nu = p.nu[c];
    const double log_det_prec_chol = p.log_det_chol[c] - 0.5 * static_cast<double>(d) * std::log(nu);
    double gammas = 0;
    for (int64_t i = 0; i < d; ++i) gammas += std::lgamma(0.5 * (nu - static_cast<double>(i)));
    // _log_wishart_norm (log π term dropped, as scikit-learn); tied: K times the same.
    log_wishart -= nu * log_det_prec_chol + nu * static_cast<double>(d) * 0.5 * kLog2 + gammas;
  }
  double log_norm_weight = 0;
  if (!p.b.empty()) {
    for (int64_t c = 0; c < k; ++c) log_norm_weight -= betaln(p.a[c], p.b[c]);
  } else {
    double sum = 0, gammas = 0;
    for (double v : p.a) sum += v, gammas += std::lgamma(v);
    log_norm_weight = std::lgamma(sum) - gammas;
  }
  double log_beta = 0;
  for (double v : p.beta) log_beta += std::log(v);
  return -entropy - log_wishart - log_norm_weight - 0.5 * static_cast<double>(d) * log_beta;
}

// The model in the caller's coordinates.
DpgmmModel to_model(const Params& p, const Priors& pr, const DpgmmOptions& o, const std::vector<double>& shift) {
  DpgmmModel m;
  m.covariance_type = o.covariance_type;
  m.weight_prior_type = o.weight_prior_type;
  m.components = p.k;
  m.dims = p.d;
  m.weights = expected_weights(p.a, p.b);
  m.means = p.means;
  for (int64_t c = 0; c < p.k; ++c)
    for (int64_t j = 0; j < p.d; ++j) m.means[c * p.d + j] += shift[j];
  m.covariances = p.cov;
  m.precisions_cholesky = p.prec_chol;
  m.weight_concentration_a = p.a;
  m.weight_concentration_b = p.b;
  m.mean_precision = p.beta;
  m.degrees_of_freedom = p.nu;
  m.original_index = p.index;
  m.weight_concentration_prior = pr.alpha;
  m.mean_precision_prior = pr.beta0;
  m.degrees_of_freedom_prior = pr.nu0;
  m.mean_prior = pr.m0;
  for (int64_t j = 0; j < p.d; ++j) m.mean_prior[j] += shift[j];
  m.covariance_prior = pr.psi;
  m.center = shift;
  return m;
}

// Rebuilds the fitting parameters from a model, centred on `shift`.
Params from_model(const DpgmmModel& m, const std::vector<double>& shift) {
  Params p;
  p.k = m.components;
  p.d = m.dims;
  p.a = m.weight_concentration_a;
  p.b = m.weight_concentration_b;
  p.beta = m.mean_precision;
  p.nu = m.degrees_of_freedom;
  p.means = m.means;
  for (int64_t c = 0; c < p.k; ++c)
    for (int64_t j = 0; j < p.d; ++j) p.means[c * p.d + j] -= shift[j];
  p.cov = m.covariances;
  p.prec_chol = m.precisions_cholesky;
  p.index = m.original_index;
  p.log_det_chol.resize(p.k);
  const int64_t d = p.d;
  for (int64_t c = 0; c < p.k; ++c) {
    double s = 0;
    switch (m.covariance_type) {
      case CovarianceType::kFull:
        for (int64_t i = 0; i < d; ++i) s += std::log(p.prec_chol[c * d * d + i * d + i]);
        break;
      case CovarianceType::kTied:
        for (int64_t i = 0; i < d; ++i) s += std::log(p.prec_chol[i * d + i]);
        break;
      case CovarianceType::kDiag:
        for (int64_t i = 0; i < d; ++i) s += std::log(p.prec_chol[c * d + i]);
        break;
      case CovarianceType::kSpherical:
        s = static_cast<double>(d) * std::log(p.prec_chol[c]);
        break;
    }
    p.log_det_chol[c] = s;
  }
  return p;
}

void check_model(const DpgmmModel& m, const char* what) {
  const int64_t k = m.components, d = m.dims;
  const bool ok = k >= 1 && d >= 1 && static_cast<int64_t>(m.means.size()) == k * d &&
                  static_cast<int64_t>(m.weight_concentration_a.size()) == k &&
                  (m.weight_concentration_b.empty() || static_cast<int64_t>(m.weight_concentration_b.size()) == k) &&
                  static_cast<int64_t>(m.mean_precision.size()) == k &&
                  static_cast<int64_t>(m.degrees_of_freedom.size()) == k &&
                  static_cast<int64_t>(m.precisions_cholesky.size()) == covariance_size(m.covariance_type, k, d);
  if (!ok) throw ConfigError(std::string("dpgmm: ") + what + ": the model's arrays do not match its shape");
}

void check_points(const double* x, int64_t n, int64_t d, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      if (!std::isfinite(x[i * d + j]))
        throw DataError(
            fmt::format("dpgmm: {}: point {} has a non-finite value ({}) in feature {}", what, i, x[i * d + j], j));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Names of option values.

CovarianceType parse_covariance_type(const std::string& name) {
  if (name == "full") return CovarianceType::kFull;
  if (name == "diag") return CovarianceType::kDiag;
  if (name == "spherical") return CovarianceType::kSpherical;
  if (name == "tied") return CovarianceType::kTied;
  throw ConfigError("dpgmm: unknown covariance type '" + name + "' (full, diag, spherical, tied)");
}
WeightPriorType parse_weight_prior_type(const std::string& name) {
  if (name == "dirichlet_process") return WeightPriorType::kDirichletProcess;
  if (name == "dirichlet_distribution") return WeightPriorType::kDirichletDistribution;
  throw ConfigError("dpgmm: unknown weight prior '" + name + "' (dirichlet_process, dirichlet_distribution)");
}
DpgmmInit parse_dpgmm_init(const std::string& name) {
  if (name == "kmeans") return DpgmmInit::kKmeans;
  if (name == "k-means++") return DpgmmInit::kKmeansPlusPlus;
  if (name == "random_from_data") return DpgmmInit::kRandomFromData;
  if (name == "random") return DpgmmInit::kRandom;
  if (name == "given") return DpgmmInit::kGiven;
  throw ConfigError("dpgmm: unknown initialisation '" + name + "' (kmeans, k-means++, random_from_data, random)");
}
DpgmmPrecision parse_dpgmm_precision(const std::string& name) {
  if (name == "auto") return DpgmmPrecision::kAuto;
  if (name == "float64") return DpgmmPrecision::kFloat64;
  if (name == "float32") return DpgmmPrecision::kFloat32;
  throw ConfigError("dpgmm: unknown precision '" + name + "' (auto, float64, float32)");
}
std::string to_string(CovarianceType t) {
  switch (t) {
    case CovarianceType::kFull:
      return "full";
    case CovarianceType::kDiag:
      return "diag";
    case CovarianceType::kSpherical:
      return "spherical";
    case CovarianceType::kTied:
      return "tied";
  }
  return "?";
}
std::string to_string(WeightPriorType t) {
  return t == WeightPriorType::kDirichletProcess ? "dirichlet_process" : "dirichlet_distribution";
}
std::string to_string(DpgmmInit i) {
  switch (i) {
    case DpgmmInit::kKmeans:
      return "kmeans";
    case DpgmmInit::kKmeansPlusPlus:
      return "k-means++";
    case DpgmmInit::kRandomFromData:
      return "random_from_data";
    case DpgmmInit::kRandom:
      return "random";
    case DpgmmInit::kGiven:
      return "given";
  }
  return "?";
}
DpgmmScreen parse_dpgmm_screen(const std::string& name) {
  if (name == "auto") return DpgmmScreen::kAuto;
  if (name == "bounds") return DpgmmScreen::kBounds;
  if (name == "product") return DpgmmScreen::kProduct;
  throw ConfigError("dpgmm: unknown screen '" + name + "' (auto, bounds, product)");
}
std::string to_string(DpgmmScreen s) {
  return s == DpgmmScreen::kAuto ? "auto" : s == DpgmmScreen::kBounds ? "bounds" : "product";
}
std::string to_string(DpgmmPrecision p) {
  return p == DpgmmPrecision::kAuto ? "auto" : p == DpgmmPrecision::kFloat32 ? "float32" : "float64";
}

int64_t DpgmmModel::components_used(double min_weight) const {
  return std::count_if(weights.begin(), weights.end(), [&](double w) { return w > min_weight; });
}

// ---------------------------------------------------------------------------------------
// Options.

void DpgmmOptions::validate(int64_t n, int64_t d) const {
  const int64_t k0 = components;
  check_option(n >= 1, "dpgmm", "no points to fit");
  check_option(d >= 1, "dpgmm", "points must have at least one feature");
  check_option(k0 >= 1, "dpgmm", "the number of components must be at least 1");
  check_option(tol >= 0 && std::isfinite(tol), "dpgmm", "tol must be a non-negative number");
  check_option(reg_covar >= 0 && std::isfinite(reg_covar), "dpgmm", "reg_covar must be a non-negative number");
  check_option(max_iter >= 0, "dpgmm", "max_iter must be non-negative");
  check_option(n_init >= 1, "dpgmm", "n_init must be at least 1");
  check_option(prune_below >= 0 && prune_below < 1, "dpgmm", "prune_below must be in [0, 1)");
  check_option(responsibility_floor >= 0 && responsibility_floor < 1, "dpgmm",
               "responsibility_floor must be in [0, 1)");
  check_option(threads >= 0, "dpgmm", "threads must be non-negative");
  check_option(kmeans_sample_size >= 0, "dpgmm", "kmeans_sample_size must be non-negative");
  check_option(!weight_concentration_prior || *weight_concentration_prior > 0, "dpgmm",
               "the weight concentration prior must be > 0");
  check_option(!mean_precision_prior || *mean_precision_prior > 0, "dpgmm", "the mean precision prior must be > 0");
  check_option(!degrees_of_freedom_prior || *degrees_of_freedom_prior > static_cast<double>(d) - 1, "dpgmm",
               fmt::format("the degrees of freedom prior must be > D − 1 = {}", d - 1));
  check_option(mean_prior.empty() || static_cast<int64_t>(mean_prior.size()) == d, "dpgmm",
               fmt::format("the mean prior must have {} values", d));
  for (double v : mean_prior) check_option(std::isfinite(v), "dpgmm", "the mean prior must be finite");
  if (init == DpgmmInit::kGiven) {
    const bool has_resp = !init_responsibilities.empty(), has_labels = !init_labels.empty();
    check_option(has_resp != has_labels, "dpgmm",
                 "initialisation 'given' needs exactly one of initial responsibilities and initial labels");
    if (has_resp) {
      check_option(static_cast<int64_t>(init_responsibilities.size()) == n * k0, "dpgmm",
                   fmt::format("initial responsibilities must be {}×{}", n, k0));
      for (double v : init_responsibilities)
        check_option(v >= 0 && std::isfinite(v), "dpgmm", "initial responsibilities must be finite and ≥ 0");
    } else {
      check_option(static_cast<int64_t>(init_labels.size()) == n, "dpgmm",
                   fmt::format("initial labels must have {} values", n));
      for (int32_t v : init_labels)
        check_option(v >= 0 && v < k0, "dpgmm", fmt::format("initial labels must be in [0, {})", k0));
    }
  }
  if (!covariance_prior.empty()) {
    const int64_t psi_size = is_full(covariance_type) ? d * d : covariance_type == CovarianceType::kDiag ? d : 1;
    check_option(static_cast<int64_t>(covariance_prior.size()) == psi_size, "dpgmm",
                 fmt::format("the covariance prior must have {} values for covariance type {}", psi_size,
                             to_string(covariance_type)));
    const std::vector<double>& psi = covariance_prior;
    for (double v : psi) check_option(std::isfinite(v), "dpgmm", "the covariance prior must be finite");
    if (is_full(covariance_type)) {
      std::vector<double> l(d * d);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < i; ++j)
          check_option(std::fabs(psi[i * d + j] - psi[j * d + i]) <=
                           1e-10 * (std::fabs(psi[i * d + j]) + std::fabs(psi[j * d + i])),
                       "dpgmm", "the covariance prior must be symmetric");
      check_option(dpgmm_cholesky(psi.data(), d, l.data()), "dpgmm", "the covariance prior must be positive definite");
    } else {
      for (double v : psi) check_option(v > 0, "dpgmm", "the covariance prior must be positive");
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fitting.

namespace {

// The sum of the sample weights (n without them), after checking that they are finite,
// non-negative and not all zero (DataError).
double total_weight(const double* weight, int64_t n) {
  double total = static_cast<double>(n);
  if (weight) {
    total = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!(weight[i] >= 0) || !std::isfinite(weight[i]))
        throw DataError(fmt::format("dpgmm: sample weight {} is {} (weights must be finite and ≥ 0)", i, weight[i]));
      total += weight[i];
    }
    if (!(total > 0)) throw DataError("dpgmm: every sample weight is zero");
  }
  return total;
}

// The weighted mean of the points: the shift every quadratic form is expanded around, and
// m0's default.
std::vector<double> weighted_mean(const double* x, int64_t n, int64_t d, const double* weight, double total_weight) {
  std::vector<double> shift(d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight ? weight[i] : 1.0;
    for (int64_t j = 0; j < d; ++j) shift[j] += w * x[i * d + j];
  }
  for (auto& v : shift) v /= total_weight;
  return shift;
}

// Ψ0's default, shaped by covariance type: the weighted covariance of the points around
// `shift` (frequency weights with ddof 1, like np.cov), reg_covar·I added when it is
// singular; what was assumed goes to `warnings`.
std::vector<double> data_covariance_prior(const double* x, int64_t n, int64_t d, const double* weight,
                                          double total_weight, const std::vector<double>& shift, CovarianceType type,
                                          double reg_covar, std::vector<std::string>& warnings) {
  std::vector<double> cov(d * d, 0.0);
  if (total_weight > 1) {
    for (int64_t i = 0; i < n; ++i) {
      const double w = weight ? weight[i] : 1.0;
      if (w == 0) continue;
      for (int64_t a = 0; a < d; ++a) {
        const double da = x[i * d + a] - shift[a];
        for (int64_t b = a; b < d; ++b) cov[a * d + b] += w * da * (x[i * d + b] - shift[b]);
      }
    }
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = a; b < d; ++b) cov[b * d + a] = cov[a * d + b] /= (total_weight - 1);
  } else {
    // One point (or total weight ≤ 1): no covariance to estimate; np.cov would give NaN.
    for (int64_t a = 0; a < d; ++a) cov[a * d + a] = 1.0;
    warnings.push_back("a single point: the covariance prior is the identity");
  }
  // Rank-deficient data (duplicates, a constant feature, collinear points) make the
  // data covariance singular, and with it the covariance of every component that
  // holds no points: add reg_covar·I to it, as the components' own covariances get.
  {
    double largest = 0;
    for (int64_t a = 0; a < d; ++a) largest = std::max(largest, cov[a * d + a]);
    std::vector<double> l(d * d);
    bool singular = !dpgmm_cholesky(cov.data(), d, l.data());
    for (int64_t a = 0; a < d && !singular; ++a) singular = l[a * d + a] * l[a * d + a] <= 1e-10 * largest;
    if (singular) {
      for (int64_t a = 0; a < d; ++a) cov[a * d + a] += reg_covar;
      warnings.push_back(
          fmt::format("the data covariance is singular (duplicate points, a constant feature or collinear points): "
                      "reg_covar = {:g} is added to its diagonal for the covariance prior",
                      reg_covar));
    }
  }
  if (is_full(type)) return cov;
  std::vector<double> psi(d, 0.0);
  for (int64_t j = 0; j < d; ++j) psi[j] = cov[j * d + j];
  if (type == CovarianceType::kSpherical) psi = {std::accumulate(psi.begin(), psi.end(), 0.0) / static_cast<double>(d)};
  return psi;
}

// The priors with their defaults resolved, in centred coordinates (m0 relative to `shift`).
Priors resolve_priors(const DpgmmOptions& o, const double* x, int64_t n, int64_t d, const double* weight,
                      double total_weight, const std::vector<double>& shift, std::vector<std::string>& warnings) {
  Priors pr;
  pr.alpha = o.weight_concentration_prior.value_or(1.0 / static_cast<double>(o.components));
  pr.beta0 = o.mean_precision_prior.value_or(1.0);
  pr.nu0 = o.degrees_of_freedom_prior.value_or(static_cast<double>(d));
  pr.m0.assign(d, 0.0);
  if (!o.mean_prior.empty())
    for (int64_t j = 0; j < d; ++j) pr.m0[j] = o.mean_prior[j] - shift[j];
  pr.psi = o.covariance_prior.empty()
               ? data_covariance_prior(x, n, d, weight, total_weight, shift, o.covariance_type, o.reg_covar, warnings)
               : o.covariance_prior;
  return pr;
}

// The labels (−1: no component) or the responsibilities [N, K] that start fit `init`, from
// `seed` (scikit-learn's _initialize_parameters); for DpgmmInit::kGiven both stay empty (the
// options hold them). What was assumed goes to `warnings`.
void initial_assignment(const double* x, int64_t n, int64_t d, const double* weight, const DpgmmOptions& o, int init,
                        uint64_t seed, std::vector<std::string>& warnings, std::vector<int32_t>& labels,
                        std::vector<double>& resp) {
  const int64_t k0 = o.components;
  switch (o.init) {
    case DpgmmInit::kKmeans: {
      KMeansOptions ko;
      ko.clusters = k0;
      ko.max_iter = o.kmeans_max_iter;
      ko.tol = o.kmeans_tol;
      ko.seed = seed;
      ko.threads = o.threads;
      if (o.kmeans_sample_size > 0 && n > o.kmeans_sample_size) {
        // k-means on a uniform random subset (of the points with weight), then every point
        // to its nearest centre.
        std::mt19937_64 rng(mix_seed(seed, 0x73616d70));
        std::vector<int64_t> pool = random_subset(weighted_points(weight, n), o.kmeans_sample_size, rng);
        std::sort(pool.begin(), pool.end());
        const auto m = static_cast<int64_t>(pool.size());
        std::vector<double> sample(m * d), sample_weight(weight ? m : 0);
        for (int64_t i = 0; i < m; ++i) {
          std::copy(x + pool[i] * d, x + (pool[i] + 1) * d, sample.begin() + i * d);
          if (weight) sample_weight[i] = weight[pool[i]];
        }
        auto km = kmeans(sample.data(), m, d, ko, weight ? sample_weight.data() : nullptr);
        labels = nearest_centers(x, n, d, km.centers, std::min<int64_t>(k0, km.distinct_seeds), o.threads);
      } else {
        auto km = kmeans(x, n, d, ko, weight);
        if (km.distinct_seeds < k0 && init == 0)
          warnings.push_back(
              fmt::format("k-means found only {} distinct points for {} components", km.distinct_seeds, k0));
        labels = std::move(km.labels);
      }
      break;
    }
    case DpgmmInit::kKmeansPlusPlus: {
      auto seeds = kmeans_plusplus(x, n, d, weight, k0, seed, 0, o.threads);
      labels.assign(n, -1);
      for (size_t c = 0; c < seeds.size(); ++c) labels[seeds[c]] = static_cast<int32_t>(c);
      break;
    }
    case DpgmmInit::kRandomFromData: {
      // K distinct points with positive weight, uniformly.
      std::mt19937_64 rng(seed);
      const std::vector<int64_t> chosen = random_subset(weighted_points(weight, n), k0, rng);
      labels.assign(n, -1);
      for (size_t c = 0; c < chosen.size(); ++c) labels[chosen[c]] = static_cast<int32_t>(c);
      break;
    }
    case DpgmmInit::kRandom: {
      std::mt19937_64 rng(seed);
      resp.resize(n * k0);
      for (int64_t i = 0; i < n; ++i) {
        double total = 0;
        for (int64_t c = 0; c < k0; ++c) total += resp[i * k0 + c] = uniform01(rng);
        for (int64_t c = 0; c < k0; ++c) resp[i * k0 + c] /= total;
      }
      break;
    }
    case DpgmmInit::kGiven:
      break;
  }
}

// The parameters fit `init` starts from: the M-step from the statistics (into `stats`) of
// its initial assignment.
Params initial_params(const double* x, int64_t n, int64_t d, const double* weight, const std::vector<double>& shift,
                      const Priors& pr, const DpgmmOptions& o, int init, uint64_t seed,
                      std::vector<std::string>& warnings, DpgmmStats& stats) {
  const int64_t k0 = o.components;
  std::vector<int32_t> labels;
  std::vector<double> resp;
  initial_assignment(x, n, d, weight, o, init, seed, warnings, labels, resp);
  const double* init_resp = o.init == DpgmmInit::kGiven && !o.init_responsibilities.empty()
                                ? o.init_responsibilities.data()
                            : resp.empty() ? nullptr
                                           : resp.data();
  const int32_t* init_labels = o.init == DpgmmInit::kGiven ? (o.init_labels.empty() ? nullptr : o.init_labels.data())
                               : labels.empty()            ? nullptr
                                                           : labels.data();
  dpgmm_statistics(x, n, d, weight, shift, o.covariance_type, k0, init_resp, init_labels, o.threads, stats);
  std::vector<int64_t> index(k0);
  std::iota(index.begin(), index.end(), 0);
  return m_step(stats, pr, o, index);
}

// Drops the components whose expected weight fell below o.prune_below (keeping at least
// the heaviest) and re-estimates the rest from the same statistics (the sticks depend on
// which remain); returns whether any was dropped.
bool prune_components(Params& params, DpgmmStats& stats, const Priors& pr, const DpgmmOptions& o, int64_t d) {
  const auto w = expected_weights(params.a, params.b);
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < params.k; ++c)
    if (w[c] >= o.prune_below) keep.push_back(c);
  if (keep.empty()) keep.push_back(std::max_element(w.begin(), w.end()) - w.begin());
  if (static_cast<int64_t>(keep.size()) == params.k) return false;
  const bool full = is_full(o.covariance_type);
  const int64_t cs = full ? d * d : d;
  DpgmmStats kept;
  kept.components = static_cast<int64_t>(keep.size());
  kept.dims = d;
  kept.entropy = stats.entropy;
  kept.log_likelihood = stats.log_likelihood;
  std::vector<int64_t> kept_index;
  for (int64_t c : keep) {
    kept.counts.push_back(stats.counts[c]);
    kept.sums.insert(kept.sums.end(), stats.sums.begin() + c * d, stats.sums.begin() + (c + 1) * d);
    kept.scatter.insert(kept.scatter.end(), stats.scatter.begin() + c * cs, stats.scatter.begin() + (c + 1) * cs);
    kept_index.push_back(params.index[c]);
  }
  stats = std::move(kept);
  params = m_step(stats, pr, o, kept_index);
  return true;
}

// One fit from its initial parameters.
struct Fit {
  Params params;
  std::vector<double> bounds;  // the lower bound after each iteration
  bool converged = false;      // met tol before max_iter
  int iterations = 0;
};

// Coordinate ascent (scikit-learn's fit loop) from `params`: E-step under the current
// factors, M-step, lower bound; stop when it changes by less than tol. `stats` holds the
// initial statistics and is the E-steps' scratch.
Fit coordinate_ascent(DpgmmEngine& engine, Params params, DpgmmStats& stats, const std::vector<double>& shift,
                      const Priors& pr, const DpgmmOptions& o, int64_t d, int init, Clock::time_point fit_start) {
  Fit fit;
  double bound = -std::numeric_limits<double>::infinity();
  for (int it = 1; it <= o.max_iter; ++it) {
    const double previous = bound;
    engine.expectation(make_terms(params, o.covariance_type, shift), stats);
    params = m_step(stats, pr, o, params.index);
    const bool pruned = o.prune_below > 0 && params.k > 1 && prune_components(params, stats, pr, o, d);
    const double value = lower_bound(params, stats.entropy);
    fit.bounds.push_back(value);
    fit.iterations = it;
    const double change = value - previous;
    if (o.on_iteration) o.on_iteration({init, it, value, change, params.k, seconds_since(fit_start)});
    // After pruning, the bound of the smaller model is not comparable with the last one:
    // the convergence test starts again.
    bound = pruned ? -std::numeric_limits<double>::infinity() : value;
    if (!pruned && std::fabs(change) < o.tol) {
      fit.converged = true;
      break;
    }
  }
  fit.params = std::move(params);
  return fit;
}

}  // namespace

DpgmmResult fit_dpgmm(const double* x, int64_t n, int64_t d, const DpgmmOptions& o, const double* weight) {
  const auto start = Clock::now();
  const std::clock_t cpu_start = std::clock();
  const int64_t k0 = o.components;
  const CovarianceType type = o.covariance_type;
  // Options (ConfigError), then data (DataError).
  o.validate(n, d);
  check_points(x, n, d, "input");
  const double total = total_weight(weight, n);
  DpgmmResult result;
  if (n < k0) result.warnings.push_back(fmt::format("{} points for {} components: some components stay empty", n, k0));
  const std::vector<double> shift = weighted_mean(x, n, d, weight, total);
  const Priors pr = resolve_priors(o, x, n, d, weight, total, shift, result.warnings);

  std::unique_ptr<DpgmmEngine> engine =
      o.engine ? o.engine(x, n, d, weight, o) : make_cpu_dpgmm_engine(x, n, d, weight, o);

  double best_bound = -std::numeric_limits<double>::infinity();
  Params best;
  bool have_best = false;
  for (int init = 0; init < o.n_init; ++init) {
    const auto fit_start = Clock::now();
    const uint64_t seed = mix_seed(o.seed, static_cast<uint64_t>(init));
    DpgmmStats stats;
    Params params = initial_params(x, n, d, weight, shift, pr, o, init, seed, result.warnings, stats);
    result.init_seconds += seconds_since(fit_start);
    Fit fit = coordinate_ascent(*engine, std::move(params), stats, shift, pr, o, d, init, fit_start);
    const double final_bound = fit.bounds.empty() ? -std::numeric_limits<double>::infinity() : fit.bounds.back();
    result.init_lower_bounds.push_back(final_bound);
    // Keep the fit with the highest final bound (the first on ties, as scikit-learn).
    if (!have_best || final_bound > best_bound) {
      have_best = true;
      best_bound = final_bound;
      best = std::move(fit.params);
      result.lower_bounds = std::move(fit.bounds);
      result.converged = fit.converged;
      result.iterations = fit.iterations;
      result.best_init = init;
    }
  }
  result.lower_bound = best_bound;
  result.model = to_model(best, pr, o, shift);

  // A final E-step for the training labels (scikit-learn's fit_predict).
  result.labels.resize(n);
  result.probabilities.resize(n);
  engine->responsibilities(make_terms(best, type, shift), result.labels.data(), result.probabilities.data(), nullptr);
  result.seconds = seconds_since(start);
  result.cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  return result;
}

// ---------------------------------------------------------------------------------------
// Prediction.

namespace {

void predict_impl(const DpgmmModel& model, const double* x, int64_t n, int threads, int32_t* labels, double* max_prob,
                  double* all) {
  check_model(model, "predict");
  check_points(x, n, model.dims, "predict");
  if (n == 0) return;
  std::vector<double> shift = model.center;
  if (static_cast<int64_t>(shift.size()) != model.dims) {
    shift.assign(model.dims, 0.0);
    for (int64_t c = 0; c < model.components; ++c)
      for (int64_t j = 0; j < model.dims; ++j)
        shift[j] +=
            (model.weights.empty() ? 1.0 / model.components : model.weights[c]) * model.means[c * model.dims + j];
  }
  DpgmmOptions o;
  o.threads = threads;
  auto engine = make_cpu_dpgmm_engine(x, n, model.dims, nullptr, o);
  engine->responsibilities(make_terms(from_model(model, shift), model.covariance_type, shift), labels, max_prob, all);
}

}  // namespace

std::vector<int32_t> dpgmm_predict(const DpgmmModel& model, const double* points, int64_t n, int threads) {
  std::vector<int32_t> labels(n);
  predict_impl(model, points, n, threads, labels.data(), nullptr, nullptr);
  return labels;
}

std::vector<double> dpgmm_predict_proba(const DpgmmModel& model, const double* points, int64_t n, int threads) {
  std::vector<double> all(n * model.components);
  predict_impl(model, points, n, threads, nullptr, nullptr, all.data());
  return all;
}

void dpgmm_predict_labels(const DpgmmModel& model, const double* points, int64_t n, int32_t* labels,
                          double* probabilities, int threads) {
  predict_impl(model, points, n, threads, labels, probabilities, nullptr);
}

}  // namespace defuse
