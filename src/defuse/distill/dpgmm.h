// Variational Dirichlet-process Gaussian mixture (truncated stick-breaking, coordinate
// ascent): the clustering behind the distillation stage (DESIGN §3 "Distillation").
//
// The model and its updates follow Blei & Jordan (2006), "Variational inference for
// Dirichlet process mixtures", and Bishop, PRML §10.2, in the exact parameterisation of
// scikit-learn's BayesianGaussianMixture (sklearn/mixture/_bayesian_mixture.py, 1.2), so
// that the same data, initial responsibilities and priors give the same weights, means and
// lower bound (docs/dpgmm.md states the tolerance; tests/distill/dpgmm_test.cpp checks it).
// Beyond scikit-learn: sample weights, pruning of dead components while fitting, a
// float32 E-step option, sparse responsibilities in the M-step, threads, and a device hook
// (dpgmm_torch.h) for CUDA.
//
// Torch-free. Matrices are row-major std::vector<double> (or pointers) with their shapes in
// the trailing comments. Inputs are validated here (ConfigError for bad options, DataError
// for NaN/Inf or a covariance that is not positive definite even after reg_covar).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace defuse {

// Shape of the component covariances (scikit-learn's covariance_type).
enum class CovarianceType {
  kFull,       // each component its own D×D covariance
  kDiag,       // each component its own diagonal
  kSpherical,  // each component one variance
  kTied,       // one D×D covariance shared by all components
};

// Prior on the mixture weights (scikit-learn's weight_concentration_prior_type).
enum class WeightPriorType {
  kDirichletProcess,       // truncated stick-breaking, Beta(1, α) sticks (the default)
  kDirichletDistribution,  // finite symmetric Dirichlet(α, …, α)
};

// How the responsibilities that start each fit are chosen (scikit-learn's init_params).
enum class DpgmmInit {
  kKmeans,          // labels of our own k-means (k-means++ seeding, then Lloyd)
  kKmeansPlusPlus,  // one-hot on K points chosen by k-means++ seeding (no Lloyd)
  kRandomFromData,  // one-hot on K distinct random points
  kRandom,          // uniform random responsibilities, normalised per point
  kGiven,           // DpgmmOptions::init_responsibilities or init_labels (parity checks)
};

// Arithmetic of the E-step's N×K log-probability products. Statistics, parameters and the
// lower bound are always float64. With full or tied covariances and a positive
// responsibility_floor the CPU engine screens the pairs with these products and then
// evaluates every pair that can matter again, exactly, in float64 (docs/dpgmm.md): the
// screen's precision then changes the speed, not the result.
enum class DpgmmPrecision {
  kAuto,     // float32 screen where results stay float64-exact (full/tied), float64 elsewhere
  kFloat64,  // float64 everywhere
  kFloat32,  // float32 products everywhere (diag/spherical results then carry float32 error)
};

// How the screened E-step (full/tied covariances, positive responsibility_floor) finds the
// pairs (point, component) that can matter before evaluating them exactly in float64. Either
// way every pair within −ln(floor) + 5 nats of its point's best is kept and the rest are
// dropped, so the screens give the same results, bit for bit (docs/dpgmm.md).
enum class DpgmmScreen {
  kAuto,     // bounds while they leave few candidates per point, the product otherwise
  kBounds,   // certified bounds: log ρ_nk ≤ c_k − ½λ_min(E[Λ_k])‖x_n − m_k‖² (one D-wide product)
  kProduct,  // the expanded product F·W of every pair (D(D+1)/2 + D wide), in the E-step precision
};

// Parsing and printing for the option values above ("full", "dirichlet_process",
// "kmeans", "k-means++", "random_from_data", "random", "given", "auto", "float64", "float32",
// "bounds", "product").
// Parsers throw ConfigError naming the accepted values.
CovarianceType parse_covariance_type(const std::string& name);
WeightPriorType parse_weight_prior_type(const std::string& name);
DpgmmInit parse_dpgmm_init(const std::string& name);
DpgmmPrecision parse_dpgmm_precision(const std::string& name);
DpgmmScreen parse_dpgmm_screen(const std::string& name);
std::string to_string(CovarianceType type);
std::string to_string(WeightPriorType type);
std::string to_string(DpgmmInit init);
std::string to_string(DpgmmPrecision precision);
std::string to_string(DpgmmScreen screen);

// One coordinate-ascent iteration, reported through DpgmmOptions::on_iteration.
struct DpgmmIteration {
  int init = 0;            // which of the n_init fits (0-based)
  int iteration = 0;       // 1-based, as scikit-learn's n_iter_
  double lower_bound = 0;  // after this iteration's M-step
  double change = 0;       // lower_bound minus the previous one (inf on the first)
  int64_t components = 0;  // components still in the model (fewer after pruning)
  double seconds = 0;      // since this fit started
};

class DpgmmEngine;
// Makes the engine that runs E-steps over the points: given the points [N, D], the sample
// weights [N] (nullptr = all 1) and the options. Empty = the built-in CPU engine
// (BLAS + OpenMP). dpgmm_torch.h provides one for LibTorch devices (CUDA).
using DpgmmEngineFactory = std::function<std::unique_ptr<DpgmmEngine>(
    const double* points, int64_t n, int64_t d, const double* sample_weight, const struct DpgmmOptions& options)>;

struct DpgmmOptions {
  // Truncation level K of the stick-breaking process: the most components the fit can use.
  int64_t components = 100;
  CovarianceType covariance_type = CovarianceType::kFull;
  // Stop when the lower bound changes by less than this between iterations (absolute, on
  // scikit-learn's unnormalised bound).
  double tol = 1e-3;
  // Added to the diagonal of each component's empirical covariance (scikit-learn's
  // reg_covar), keeps them positive definite.
  double reg_covar = 1e-6;
  // Coordinate-ascent iterations per fit at most (scikit-learn's default 100; the Defuse
  // reference uses 10,000).
  int max_iter = 100;
  // Fits from different initialisations; the one with the highest lower bound is kept.
  int n_init = 1;
  DpgmmInit init = DpgmmInit::kKmeans;
  WeightPriorType weight_prior_type = WeightPriorType::kDirichletProcess;
  // α, the concentration of the weight prior (must be > 0); unset = 1/K (scikit-learn).
  std::optional<double> weight_concentration_prior;
  // β0, the precision of the prior on the means (> 0); unset = 1 (scikit-learn).
  std::optional<double> mean_precision_prior;
  // m0 [D], the prior mean of the means; empty = the (weighted) mean of the data.
  std::vector<double> mean_prior;
  // ν0, the Wishart degrees of freedom (> D − 1); unset = D (scikit-learn).
  std::optional<double> degrees_of_freedom_prior;
  // Ψ0, the prior covariance: [D, D] for full/tied, [D] for diag, [1] for spherical;
  // empty = the (weighted, ddof 1) covariance of the data, as scikit-learn. When that is
  // not positive definite (duplicate points, a constant feature) the fit still runs, as
  // scikit-learn's does; with one point (no covariance) it is the identity.
  std::vector<double> covariance_prior;
  // Initial responsibilities [N, K] (rows need not sum to 1) or labels [N] in [0, K), for
  // DpgmmInit::kGiven; exactly one of the two.
  std::vector<double> init_responsibilities;
  std::vector<int32_t> init_labels;
  // Seeds k-means, k-means++ and the random initialisations; the same seed, data and
  // thread count give the same fit (and any thread count gives the same up to rounding).
  uint64_t seed = 0;
  // While fitting, drop components whose expected weight falls below this (0 = never).
  // Dropped components cost nothing in later iterations; the lower bound restarts its
  // convergence test after a drop. Off by default (scikit-learn keeps all K).
  double prune_below = 0;
  // Responsibilities at or below this are left out of the M-step statistics, and with
  // full or tied covariances the E-step leaves out the pairs more than −ln(floor) + 5 nats
  // below their point's most probable component (r < floor·e⁻⁵ ≈ 7e-15 by default: they
  // count as 0 in the normalisation and the entropy too), found without evaluating them
  // (DpgmmScreen). 0 keeps every non-zero responsibility and the dense E-step:
  // scikit-learn's computation. The default moves results by < 1e-9 relative (tested) and
  // makes the E-step many times faster.
  double responsibility_floor = 1e-12;
  DpgmmPrecision precision = DpgmmPrecision::kAuto;
  // How the built-in engine's screened E-step finds its candidates; changes the speed only.
  DpgmmScreen screen = DpgmmScreen::kAuto;
  // CPU threads (0 = OpenMP's default, i.e. every core or OMP_NUM_THREADS).
  int threads = 0;
  // The built-in k-means: Lloyd iterations at most, and its tolerance on the squared
  // centre shift relative to the mean feature variance (scikit-learn's KMeans defaults).
  int kmeans_max_iter = 300;
  double kmeans_tol = 1e-4;
  // The k-means initialisation runs on a random subset of at most this many points and then
  // labels every point by its nearest centre (0 = every point). 2^17 leaves the 20k and 100k
  // benchmarks on every point and makes 1M points' initialisation ~8× cheaper.
  int64_t kmeans_sample_size = int64_t{1} << 17;
  // Called after every iteration of every fit (progress, logging); may be empty.
  std::function<void(const DpgmmIteration&)> on_iteration;
  // Where the E-steps run; empty = built-in CPU engine.
  DpgmmEngineFactory engine;

  // Throws ConfigError("dpgmm: ...") for an option out of range or one that does not fit a
  // fit of n points of d features (n, d ≥ 1; the sizes of the priors and of a given
  // initialisation; a covariance prior that is not symmetric positive definite). fit_dpgmm
  // calls it before it looks at the points.
  void validate(int64_t n, int64_t d) const;
};

// The fitted variational posterior. Shapes use K = components (after pruning) and
// D = dims. All in the coordinates of the input points.
struct DpgmmModel {
  CovarianceType covariance_type = CovarianceType::kFull;
  WeightPriorType weight_prior_type = WeightPriorType::kDirichletProcess;
  int64_t components = 0;
  int64_t dims = 0;
  std::vector<double> weights;  // [K] expected mixture weights E[π_k], summing to 1
  std::vector<double> means;    // [K, D] posterior means m_k of the component means
  // E[Λ_k]⁻¹ = W_k⁻¹/ν_k (scikit-learn's covariances_): full [K, D, D], diag [K, D],
  // spherical [K], tied [D, D].
  std::vector<double> covariances;
  // Cholesky factors of the precisions E[Λ_k], upper triangular U with U·Uᵀ = E[Λ_k]
  // (scikit-learn's precisions_cholesky_), same shapes as covariances.
  std::vector<double> precisions_cholesky;
  // Variational posterior of the weights: Beta(a_k, b_k) sticks for the Dirichlet process,
  // Dirichlet(a) for the finite prior (b empty).
  std::vector<double> weight_concentration_a;  // [K]
  std::vector<double> weight_concentration_b;  // [K] or empty
  std::vector<double> mean_precision;          // [K] β_k
  std::vector<double> degrees_of_freedom;      // [K] ν_k (tied: the same value K times)
  // Index of each component in the initial truncation (differs from 0..K−1 after pruning).
  std::vector<int64_t> original_index;  // [K]
  // The priors that were used (defaults resolved).
  double weight_concentration_prior = 0;
  double mean_precision_prior = 0;
  double degrees_of_freedom_prior = 0;
  std::vector<double> mean_prior;        // [D]
  std::vector<double> covariance_prior;  // [D, D], [D] or [1] by covariance type
  // A point near the data (the weighted mean of the training points) around which
  // predictions expand their quadratic forms, for accuracy; empty = the weighted mean of
  // the component means.
  std::vector<double> center;  // [D]

  // Number of components with weight above `min_weight`.
  int64_t components_used(double min_weight = 0.01) const;
};

struct DpgmmResult {
  DpgmmModel model;
  std::vector<double> lower_bounds;       // per iteration of the kept fit
  double lower_bound = 0;                 // the kept fit's final lower bound
  bool converged = false;                 // whether the kept fit met tol before max_iter
  int iterations = 0;                     // iterations of the kept fit
  int best_init = 0;                      // which of the n_init fits was kept
  std::vector<double> init_lower_bounds;  // [n_init] final lower bound of each fit
  // Most probable component of each training point under the kept model, and its
  // responsibility (a final E-step, as scikit-learn's fit_predict).
  std::vector<int32_t> labels;        // [N]
  std::vector<double> probabilities;  // [N]
  double seconds = 0;                 // whole call
  // CPU time of the process during the call, all threads: on a shared machine, where the
  // wall time depends on what else runs, a steadier measure of the work done.
  double cpu_seconds = 0;
  double init_seconds = 0;            // k-means and other initialisation, all fits
  std::vector<std::string> warnings;  // e.g. fewer distinct points than components
};

// Fits the mixture to `points` [n, d] (row-major), optionally with non-negative sample
// weights [n] (a weight of 2 counts a point twice; nullptr = all 1). Throws ConfigError for
// invalid options, DataError for NaN/Inf input or a covariance that stays singular.
DpgmmResult fit_dpgmm(const double* points, int64_t n, int64_t d, const DpgmmOptions& options,
                      const double* sample_weight = nullptr);

// Most probable component of each point [n, d] under `model`.
std::vector<int32_t> dpgmm_predict(const DpgmmModel& model, const double* points, int64_t n, int threads = 0);
// Responsibilities [n, K] of each component for each point; rows sum to 1.
std::vector<double> dpgmm_predict_proba(const DpgmmModel& model, const double* points, int64_t n, int threads = 0);
// Labels and the probability of the label, in one pass (no N×K output).
void dpgmm_predict_labels(const DpgmmModel& model, const double* points, int64_t n, int32_t* labels,
                          double* probabilities, int threads = 0);

}  // namespace defuse
