// The precision bound of the bound screen (dpgmm_precision_bound.h): power iterations on
// P⁻¹ for the two flattest directions, then certificates by Cholesky factorisation.
#include "defuse/distill/dpgmm_precision_bound.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "defuse/distill/dpgmm_engine.h"

namespace defuse {
namespace {

// Power iteration for the largest eigenvalue of C = (UUᵀ)⁻¹ = U⁻ᵀU⁻¹ (two triangular
// solves per step), restricted to the complement of the unit vector `exclude` when given.
// v [d]: the start (normalised here; a fixed vector if it is 0) and the result. Returns the
// Rayleigh quotient, which approaches the eigenvalue from below; 0 on overflow.
double power_iteration(const double* u, int64_t d, const double* exclude, int steps, std::vector<double>& v) {
  std::vector<double> y(d), z(d);
  auto project = [&](std::vector<double>& w) {
    if (!exclude) return;
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += w[i] * exclude[i];
    for (int64_t i = 0; i < d; ++i) w[i] -= dot * exclude[i];
  };
  auto normalise = [&](std::vector<double>& w) {
    double norm = 0;
    for (int64_t i = 0; i < d; ++i) norm += w[i] * w[i];
    if (!(norm > 0) || !std::isfinite(norm)) return false;
    norm = 1.0 / std::sqrt(norm);
    for (int64_t i = 0; i < d; ++i) w[i] *= norm;
    return true;
  };
  project(v);
  if (!normalise(v)) {
    for (int64_t i = 0; i < d; ++i) v[i] = 1.0 + 0.01 * static_cast<double>(i);
    project(v);
    if (!normalise(v)) return 0.0;
  }
  double rho = 0;
  for (int step = 0; step < steps; ++step) {
    for (int64_t i = d - 1; i >= 0; --i) {  // U y = v
      double t = v[i];
      for (int64_t j = i + 1; j < d; ++j) t -= u[i * d + j] * y[j];
      y[i] = t / u[i * d + i];
    }
    const double previous = rho;
    rho = 0;
    for (int64_t i = 0; i < d; ++i) rho += y[i] * y[i];
    for (int64_t i = 0; i < d; ++i) {  // Uᵀ z = y
      double t = y[i];
      for (int64_t j = 0; j < i; ++j) t -= u[j * d + i] * z[j];
      z[i] = t / u[i * d + i];
    }
    project(z);
    if (!std::isfinite(rho) || !normalise(z)) return 0.0;
    v.swap(z);
    // The certificate loosens the estimate by 2 % anyway: 1e-4 is close enough.
    if (step >= 2 && std::fabs(rho - previous) <= 1e-4 * rho) break;
  }
  return rho;
}

}  // namespace

DpgmmPrecisionBound dpgmm_precision_bound(const double* u, int64_t d, double* guess) {
  DpgmmPrecisionBound bound;
  bound.direction.assign(d, 0.0);
  const bool warm = guess != nullptr;
  const int steps = 40;
  // The flattest direction v (largest eigenvalue 1/λ_1 of (UUᵀ)⁻¹), then the next one in
  // v's complement (1/λ_2).
  std::vector<double> v(d, 0.0), w(d, 0.0);
  if (warm) {
    std::copy(guess, guess + d, v.begin());
    std::copy(guess + d, guess + 2 * d, w.begin());
  }
  const double rho1 = power_iteration(u, d, nullptr, steps, v);
  if (!(rho1 > 0)) return bound;
  const double rho2 = d > 1 ? power_iteration(u, d, v.data(), steps, w) : 0.0;
  if (warm) {
    std::copy(v.begin(), v.end(), guess);
    std::copy(w.begin(), w.end(), guess + d);
  }
  std::vector<double> p(d * d), a(d * d), l(d * d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) {
      double t = 0;
      for (int64_t q = j; q < d; ++q) t += u[i * d + q] * u[j * d + q];
      p[i * d + j] = p[j * d + i] = t;
    }
  // The certificates: UUᵀ − λ_1 I, then UUᵀ − λ(I − vvᵀ) − λ_1 vvᵀ, positive definite, each
  // eigenvalue estimate loosened by δ until it is.
  for (double delta : {0.02, 0.1, 0.5, 2.5}) {
    const double flat = 1.0 / (rho1 * (1.0 + delta));
    a = p;
    for (int64_t i = 0; i < d; ++i) a[i * d + i] -= flat;
    if (dpgmm_cholesky(a.data(), d, l.data())) {
      bound.flat = bound.lambda = flat;
      break;
    }
  }
  if (!(bound.flat > 0)) return bound;
  std::copy(v.begin(), v.end(), bound.direction.begin());
  if (rho2 > 0 && 1.0 / rho2 > bound.flat)
    for (double delta : {0.02, 0.1, 0.5}) {
      const double lambda = 1.0 / (rho2 * (1.0 + delta));
      if (!(lambda > bound.flat)) break;
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < d; ++j)
          a[i * d + j] = p[i * d + j] - (i == j ? lambda : 0.0) + (lambda - bound.flat) * v[i] * v[j];
      if (dpgmm_cholesky(a.data(), d, l.data())) {
        bound.lambda = lambda;
        break;
      }
    }
  return bound;
}

}  // namespace defuse
