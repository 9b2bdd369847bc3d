// Tests of the DP-GMM's screened E-step (full and tied covariances with a positive
// responsibility floor, src/defuse/distill/dpgmm_cpu.cpp): whatever the screen and its
// precision, the results are those of the exact float64 E-step; the certified precision
// bound behind the bound screen; the float64 fallback on badly scaled data.
#include "defuse/distill/dpgmm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "defuse/distill/dpgmm_precision_bound.h"
#include "distill/cluster_support.h"

namespace defuse {
namespace {

using test::expect_close;
using test::make_anisotropic;
using test::make_blobs;

// The screened E-step (full covariances, floor > 0) gives float64 results whatever the
// precision of its screen: the same as the dense float64 E-step with no floor, within the
// parity tolerance (the floor leaves responsibilities ≤ 1e-12 out of the M-step).
TEST(DpgmmScreening, ResultsAreFloat64ExactWhateverTheScreen) {
  auto b = make_blobs(3000, 8, 4);
  DpgmmOptions o;
  o.components = 20;
  o.max_iter = 40;
  o.tol = 0;
  o.precision = DpgmmPrecision::kFloat64;
  o.responsibility_floor = 0;  // dense, every pair
  auto dense = fit_dpgmm(b.x.data(), 3000, 8, o);
  o.responsibility_floor = 1e-12;
  for (auto precision : {DpgmmPrecision::kAuto, DpgmmPrecision::kFloat64, DpgmmPrecision::kFloat32}) {
    o.precision = precision;
    auto screened = fit_dpgmm(b.x.data(), 3000, 8, o);
    SCOPED_TRACE(to_string(precision));
    expect_close(screened.lower_bounds, dense.lower_bounds, "lower_bounds", 1e-9, 1e-9);
    expect_close(screened.model.weights, dense.model.weights, "weights", 1e-9, 1e-13);
    expect_close(screened.model.means, dense.model.means, "means", 1e-9, 1e-11);
    EXPECT_EQ(screened.labels, dense.labels);
    auto p_dense = dpgmm_predict_proba(dense.model, b.x.data(), 200);
    auto p_screened = dpgmm_predict_proba(screened.model, b.x.data(), 200);
    expect_close(p_screened, p_dense, "predict_proba", 1e-8, 1e-12);
  }
}

// Both screens keep exactly the pairs within −ln(floor) + 5 nats of each point's best, so the
// certified bounds (which evaluate a few pairs per point) and the expanded product (every
// pair) give the same fit to the last bit; a pair wrongly screened out by a bound would
// change the sums. Also against the dense float64 E-step with no floor.
TEST(DpgmmScreening, BoundsAndProductGiveTheSameFitBitForBit) {
  const int64_t n = 4000, d = 7;
  const auto x = make_anisotropic(n, d, 6, 11);
  for (auto type : {CovarianceType::kFull, CovarianceType::kTied}) {
    SCOPED_TRACE(to_string(type));
    DpgmmOptions o;
    o.components = 25;
    o.covariance_type = type;
    o.max_iter = 60;
    o.tol = 0;
    o.screen = DpgmmScreen::kProduct;
    o.precision = DpgmmPrecision::kFloat64;
    auto product = fit_dpgmm(x.data(), n, d, o);
    o.screen = DpgmmScreen::kBounds;
    auto bounds = fit_dpgmm(x.data(), n, d, o);
    o.screen = DpgmmScreen::kAuto;
    o.precision = DpgmmPrecision::kAuto;
    auto automatic = fit_dpgmm(x.data(), n, d, o);
    for (const auto* r : {&bounds, &automatic}) {
      EXPECT_EQ(r->lower_bounds, product.lower_bounds);
      EXPECT_EQ(r->model.weights, product.model.weights);
      EXPECT_EQ(r->model.means, product.model.means);
      EXPECT_EQ(r->model.covariances, product.model.covariances);
      EXPECT_EQ(r->labels, product.labels);
      EXPECT_EQ(r->probabilities, product.probabilities);
    }
    o.responsibility_floor = 0;
    o.precision = DpgmmPrecision::kFloat64;
    auto dense = fit_dpgmm(x.data(), n, d, o);
    expect_close(bounds.lower_bounds, dense.lower_bounds, "lower_bounds", 1e-9, 1e-9);
    expect_close(bounds.model.weights, dense.model.weights, "weights", 1e-9, 1e-13);
    expect_close(bounds.model.means, dense.model.means, "means", 1e-9, 1e-11);
  }
}

// The bound behind the screen, on precisions with known eigenvalues: it must hold for every
// y (certified: flat ≤ λ_min, and the rank-one correction never overshoots), and be tight
// enough to be useful (within the loosening the search allows).
TEST(DpgmmScreening, PrecisionBoundIsCertifiedAndTight) {
  const int64_t d = 9;
  uint64_t state = 5;
  auto uniform = [&] {
    state = 6364136223846793005ULL * state + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  for (int trial = 0; trial < 20; ++trial) {
    // P = Q·diag(e)·Qᵀ, Q a product of random Householder reflections, eigenvalues e from
    // 1e-3 to 1e3 (the two smallest far apart from trial to trial).
    std::vector<double> e(d);
    for (int64_t i = 0; i < d; ++i) e[i] = std::pow(10.0, -3.0 + 6.0 * uniform());
    std::sort(e.begin(), e.end());
    std::vector<double> q(d * d, 0.0), p(d * d, 0.0);
    for (int64_t i = 0; i < d; ++i) q[i * d + i] = 1;
    for (int h = 0; h < 3; ++h) {
      std::vector<double> w(d);
      double norm = 0;
      for (auto& v : w) norm += (v = uniform() - 0.5) * v;
      for (auto& v : w) v /= std::sqrt(norm);
      for (int64_t r = 0; r < d; ++r) {  // Q ← Q(I − 2wwᵀ)
        double dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += q[r * d + j] * w[j];
        for (int64_t j = 0; j < d; ++j) q[r * d + j] -= 2 * dot * w[j];
      }
    }
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        for (int64_t k = 0; k < d; ++k) p[i * d + j] += q[i * d + k] * e[k] * q[j * d + k];
    // U upper triangular with UUᵀ = P: the Cholesky factor of P with rows and columns
    // reversed, reversed back.
    std::vector<double> l(d * d, 0.0), u(d * d, 0.0);
    for (int64_t j = 0; j < d; ++j) {
      double t = p[(d - 1 - j) * d + (d - 1 - j)];
      for (int64_t k = 0; k < j; ++k) t -= l[j * d + k] * l[j * d + k];
      l[j * d + j] = std::sqrt(t);
      for (int64_t i = j + 1; i < d; ++i) {
        double v = p[(d - 1 - i) * d + (d - 1 - j)];
        for (int64_t k = 0; k < j; ++k) v -= l[i * d + k] * l[j * d + k];
        l[i * d + j] = v / l[j * d + j];
      }
    }
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) u[(d - 1 - i) * d + (d - 1 - j)] = l[i * d + j];
    auto bound = dpgmm_precision_bound(u.data(), d);
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_LE(bound.flat, e[0]);
    EXPECT_GE(bound.flat, e[0] / 1.5);
    EXPECT_LE(bound.lambda, e[1] * (1 + 1e-9));
    EXPECT_GE(bound.lambda, std::min(e[1] / 1.5, bound.flat));  // λ = flat when λ_2 is not found
    EXPECT_GE(bound.lambda, bound.flat);
    // yᵀPy ≥ λ‖y‖² − (λ − flat)(v·y)² for random y, the eigenvectors, and v itself.
    std::vector<std::vector<double>> ys;
    for (int64_t k = 0; k < d; ++k) {
      std::vector<double> y(d);
      for (int64_t j = 0; j < d; ++j) y[j] = q[j * d + k];
      ys.push_back(y);
    }
    ys.push_back(bound.direction);
    for (int r = 0; r < 200; ++r) {
      std::vector<double> y(d);
      for (auto& v : y) v = uniform() - 0.5;
      ys.push_back(y);
    }
    for (const auto& y : ys) {
      double quad = 0, norm = 0, along = 0;
      for (int64_t i = 0; i < d; ++i) {
        norm += y[i] * y[i];
        along += y[i] * bound.direction[i];
        for (int64_t j = 0; j < d; ++j) quad += y[i] * p[i * d + j] * y[j];
      }
      EXPECT_GE(quad * (1 + 1e-12), bound.lambda * norm - (bound.lambda - bound.flat) * along * along);
    }
  }
}

TEST(DpgmmScreening, BadlyScaledDataFallBackToAFloat64Screen) {
  // Two tight clusters 10^4 apart: relative to their spread (10^-2) the quadratic forms
  // reach 10^12, far beyond float32; the screen must notice and redo itself in float64.
  std::vector<double> x;
  uint64_t state = 3;
  for (int i = 0; i < 400; ++i)
    for (int j = 0; j < 3; ++j) {
      state = 6364136223846793005ULL * state + 1442695040888963407ULL;
      x.push_back((i % 2) * 1e4 + 1e-2 * ((static_cast<double>(state >> 11) / 9007199254740992.0) - 0.5));
    }
  DpgmmOptions o;
  o.components = 4;
  o.max_iter = 30;
  o.tol = 0;
  o.precision = DpgmmPrecision::kFloat64;
  auto reference = fit_dpgmm(x.data(), 400, 3, o);
  o.precision = DpgmmPrecision::kFloat32;
  auto screened = fit_dpgmm(x.data(), 400, 3, o);
  expect_close(screened.lower_bounds, reference.lower_bounds, "lower_bounds", 1e-10, 1e-9);
  expect_close(screened.model.means, reference.model.means, "means", 1e-10, 1e-9);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(screened.labels[i] == screened.labels[0], i % 2 == 0);
}

}  // namespace
}  // namespace defuse
