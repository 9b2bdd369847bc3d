// The part of the DP-GMM fit that touches every point: the E-step and the M-step's
// sufficient statistics. fit_dpgmm (dpgmm.cpp) owns the small K-sized maths (priors,
// parameter updates, lower bound) and asks an engine for the O(N·K) work, so that the same
// driver runs on the CPU engine (dpgmm_cpu.cpp: BLAS + OpenMP, sparse M-step) or on a
// LibTorch device (dpgmm_torch.cpp). Internal to the distill module and its tests.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "defuse/distill/dpgmm.h"

namespace defuse {

// The E-step in a form every engine can evaluate with one matrix product per block of
// points: with x̃ = x − shift and the feature vector F(x̃),
//   log ρ_nk = F(x̃_n) · W[:, k] + c_k  (Bishop (10.46): E[log π_k] + ½E[log|Λ_k|]
//                                        − ½D log 2π − ½E[(x−μ_k)ᵀΛ_k(x−μ_k)]),
// where the quadratic form is expanded around the shift. Features by covariance type:
//   full, tied: x̃_i·x̃_j for i ≤ j (row by row), then x̃_i   P = D(D+1)/2 + D
//   diag:       x̃_i², then x̃_i                             P = 2D
//   spherical:  Σ_i x̃_i², then x̃_i                         P = D + 1
struct DpgmmTerms {
  CovarianceType covariance_type = CovarianceType::kFull;
  int64_t components = 0;      // K
  int64_t dims = 0;            // D
  std::vector<double> shift;   // [D]
  std::vector<double> matrix;  // [P, K] W
  std::vector<double> offset;  // [K] c
  // The same in centred form, for exact re-evaluation of single pairs (full and tied):
  //   log ρ_nk = constant_k − ½ ‖U_kᵀ (x̃_n − m_k)‖²,
  // with U_k the precision factor (U_k U_kᵀ = E[Λ_k]). Engines may ignore these; the CPU
  // engine also centres its M-step sums on the means (every covariance type).
  std::vector<double> means;     // [K, D] m_k relative to the shift
  std::vector<double> factors;   // [K, D, D] U_k, upper triangular (tied: [D, D]); empty for diag/spherical
  std::vector<double> constant;  // [K]
};

// Lower Cholesky factor of the symmetric matrix a [d, d] into l [d, d]; false if a is not
// positive definite (a pivot ≤ 0 or not finite).
bool dpgmm_cholesky(const double* a, int64_t d, double* l);

// Number of features P for a covariance type and dimension.
int64_t dpgmm_feature_count(CovarianceType type, int64_t dims);

// Weighted sufficient statistics of a set of responsibilities r_nk (sample weights w_n):
// the inputs of the M-step (Bishop (10.51)–(10.53)).
struct DpgmmStats {
  int64_t components = 0;
  int64_t dims = 0;
  std::vector<double> counts;  // [K] N_k = Σ_n w_n r_nk
  std::vector<double> sums;    // [K, D] Σ_n w_n r_nk (x_n − shift)
  // Σ_n w_n r_nk (x_n − x̄_k)(x_n − x̄_k)ᵀ with x̄_k = sums_k / (N_k + 10ε) (scikit-learn's
  // centring): full and tied [K, D, D]; diag and spherical its diagonal [K, D].
  std::vector<double> scatter;
  double entropy = 0;         // Σ_n w_n Σ_k r_nk log r_nk (E-steps only)
  double log_likelihood = 0;  // Σ_n w_n log Σ_k ρ_nk (E-steps only)
};

// An engine evaluates E-steps over the points it was made with.
class DpgmmEngine {
 public:
  virtual ~DpgmmEngine() = default;
  // E-step under `terms` (responsibilities r_nk = ρ_nk / Σ_j ρ_nj, Bishop (10.49)) and the
  // sufficient statistics of those responsibilities.
  virtual void expectation(const DpgmmTerms& terms, DpgmmStats& stats) = 0;
  // Per point, the most probable component and its responsibility; with `all` non-null
  // also every responsibility [N, K].
  virtual void responsibilities(const DpgmmTerms& terms, int32_t* labels, double* max_probability, double* all) = 0;
};

// The built-in CPU engine. `points` [n, d] and `sample_weight` [n] (nullable) must outlive
// it.
std::unique_ptr<DpgmmEngine> make_cpu_dpgmm_engine(const double* points, int64_t n, int64_t d,
                                                   const double* sample_weight, const DpgmmOptions& options);

// Sufficient statistics (entropy and log-likelihood left 0) of given responsibilities:
// either `responsibilities` [n, K] (entries ≤ 0 are skipped) or `labels` [n] (one-hot;
// a label < 0 leaves the point out). Used for the initial M-step.
void dpgmm_statistics(const double* points, int64_t n, int64_t d, const double* sample_weight,
                      const std::vector<double>& shift, CovarianceType type, int64_t components,
                      const double* responsibilities, const int32_t* labels, int threads, DpgmmStats& stats);

}  // namespace defuse
