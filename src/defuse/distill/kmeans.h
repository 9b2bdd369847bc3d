// k-means (Lloyd's algorithm with greedy k-means++ seeding), weighted, threaded: the
// default initialisation of the DP-GMM (scikit-learn initialises BayesianGaussianMixture
// with KMeans(n_init=1) labels; this is our own implementation of the same recipe).
// Torch-free; points are row-major [n, d].
#pragma once

#include <cstdint>
#include <vector>

namespace defuse {

struct KMeansOptions {
  int64_t clusters = 8;
  // Lloyd iterations at most, and convergence when the summed squared centre shift falls to
  // tol × the mean per-feature variance of the data (scikit-learn's KMeans defaults).
  int max_iter = 300;
  double tol = 1e-4;
  uint64_t seed = 0;
  int threads = 0;  // 0 = OpenMP's default
  // Candidates tried per new centre by greedy k-means++; 0 = 2 + ⌊ln k⌋ (scikit-learn).
  int local_trials = 0;
  // k-means++ picks its seeds among a random subset of this many points (a larger one
  // costs time and barely changes the seeds; Lloyd then uses every point). 0 = every
  // point; the default (−1) = every point, as scikit-learn.
  int64_t seeding_sample = -1;
};

struct KMeansResult {
  std::vector<double> centers;  // [k, d]
  std::vector<int32_t> labels;  // [n] nearest centre of each point
  double inertia = 0;           // Σ w ‖x − c(x)‖²
  int iterations = 0;
  bool converged = false;
  // Seeds k-means++ could place: fewer than k when the data have fewer distinct points;
  // the clusters beyond it stay empty (centred on the last seed, no points).
  int64_t distinct_seeds = 0;
};

// Indices of `k` seeds chosen by greedy k-means++ (D² sampling, the best of `local_trials`
// candidates each time) among the points with positive weight; fewer when fewer distinct
// points exist. `weight` [n] may be null (all 1).
std::vector<int64_t> kmeans_plusplus(const double* points, int64_t n, int64_t d, const double* weight, int64_t k,
                                     uint64_t seed, int local_trials = 0, int threads = 0, int64_t seeding_sample = -1);

// Lloyd's algorithm from k-means++ seeds. Empty clusters are moved to the points farthest
// from their centres, as scikit-learn does. Throws ConfigError for k < 1 or n < 1.
KMeansResult kmeans(const double* points, int64_t n, int64_t d, const KMeansOptions& options,
                    const double* weight = nullptr);

// Index of the nearest of `k` centres [k, d] for every point [n, d] (ties: the lowest index).
std::vector<int32_t> nearest_centers(const double* points, int64_t n, int64_t d, const std::vector<double>& centers,
                                     int64_t k, int threads = 0);

// Random numbers shared by the initialisations: splitmix64-mixed seeds into mt19937_64
// (fully specified by the C++ standard, so a seed gives the same numbers everywhere).
uint64_t mix_seed(uint64_t seed, uint64_t stream);

// The indices of the points with positive weight, in order (every point when `weight` is null):
// the candidates that k-means++ seeding and the DP-GMM's random initialisations draw from.
std::vector<int64_t> weighted_points(const double* weight, int64_t n);

}  // namespace defuse
