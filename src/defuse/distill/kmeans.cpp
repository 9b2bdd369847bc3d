#include "defuse/distill/kmeans.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "defuse/base/error.h"
#include "defuse/base/random.h"
#include "defuse/base/simd.h"
#include "defuse/base/threads.h"

namespace defuse {
namespace {

constexpr int64_t kAssignRows = 512;      // points per assignment block (one GEMM each)
constexpr int64_t kChunkRows = 8192;      // points per partial sum of the centre update
constexpr int64_t kSeedChunkRows = 4096;  // k-means++: points per chunk of a candidate's potential (at least)

// Index of the smallest of v[c] + offset[c] over c < k (the first on ties), and that value:
// vectorised minima of 16-wide chunks, then a scan of the first chunk holding the minimum.
DEFUSE_CLONES int64_t argmin(const float* v, const float* offset, int64_t k, float* value) {
  constexpr int64_t kChunk = 16;
  float best = std::numeric_limits<float>::infinity();
  int64_t best_chunk = 0;
  int64_t c0 = 0;
  for (; c0 + kChunk <= k; c0 += kChunk) {
    float m = std::numeric_limits<float>::infinity();
#pragma omp simd reduction(min : m)
    for (int64_t c = c0; c < c0 + kChunk; ++c) {
      const float t = v[c] + offset[c];
      m = t < m ? t : m;
    }
    if (m < best) best = m, best_chunk = c0;
  }
  for (int64_t c = c0; c < k; ++c) {
    const float t = v[c] + offset[c];
    if (t < best) best = t, best_chunk = c;  // a tail element: its own "chunk"
  }
  int64_t at = best_chunk;
  while (at < k - 1 && !(v[at] + offset[at] == best)) ++at;
  *value = best;
  return at;
}

// The smallest of v[c] + offset[c] over c < k other than v[except] (+∞ when k = 1).
DEFUSE_CLONES float min_except(const float* v, const float* offset, int64_t k, int64_t except) {
  float m = std::numeric_limits<float>::infinity();
#pragma omp simd reduction(min : m)
  for (int64_t c = 0; c < k; ++c) {
    const float t = c == except ? std::numeric_limits<float>::infinity() : v[c] + offset[c];
    m = t < m ? t : m;
  }
  return m;
}

// C [m, n] = alpha·A [m, k]·B [n, k]ᵀ + beta·C on the calling thread only (OpenBLAS would
// otherwise start its own threads for a product this small; see dpgmm_cpu.cpp).
void gemm_nt(int64_t m, int64_t n, int64_t k, double alpha, const double* a, const double* b, double beta, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, a, static_cast<int>(k), b, static_cast<int>(k), beta, c, static_cast<int>(n));
}

double squared_distance(const double* a, const double* b, int64_t d) {
  double s = 0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = a[j] - b[j];
    s += diff * diff;
  }
  return s;
}

// Rows [count, d] minus `mean`, in single precision, into `out`, and their squared norms
// (from the float64 differences); returns the largest squared norm.
double centre_to_float(const double* rows, int64_t count, int64_t d, const std::vector<double>& mean, float* out,
                       float* norms) {
  double largest = 0;
  for (int64_t i = 0; i < count; ++i) {
    double sq = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double v = rows[i * d + j] - mean[j];
      out[i * d + j] = static_cast<float>(v);
      sq += v * v;
    }
    norms[i] = static_cast<float>(sq);
    largest = std::max(largest, sq);
  }
  return largest;
}

// Nearest centre of every point: ‖x‖² − 2x·c + ‖c‖² with the products from single-precision
// BLAS (points and centres centred on the data mean, which keeps the cancellation small;
// an assignment only needs to be right up to near-ties). One block of points per task.
// Fills labels and squared distances; returns the weighted inertia.
double assign(const float* x, int64_t n, int64_t d, const double* weight, const std::vector<float>& norms,
              const std::vector<float>& centers, int64_t k, int threads, std::vector<int32_t>& labels,
              std::vector<double>& distances) {
  std::vector<float> center_norms(k);
  for (int64_t c = 0; c < k; ++c)
    center_norms[c] = std::inner_product(&centers[c * d], &centers[c * d] + d, &centers[c * d], 0.0f);
  const int64_t blocks = (n + kAssignRows - 1) / kAssignRows;
  std::vector<double> partial(blocks);
#pragma omp parallel num_threads(static_cast <int>(std::clamp <int64_t>(blocks, 1, threads)))
  {
    blas_on_this_thread();
    std::vector<float> dots(kAssignRows * k);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kAssignRows, rows = std::min(kAssignRows, n - r0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(k),
                  static_cast<int>(d), -2.0f, x + r0 * d, static_cast<int>(d), centers.data(), static_cast<int>(d),
                  0.0f, dots.data(), static_cast<int>(k));
      double sum = 0;
      for (int64_t i = 0; i < rows; ++i) {
        float best_value;
        const int64_t best = argmin(dots.data() + i * k, center_norms.data(), k, &best_value);
        const double dist = std::max(0.0, static_cast<double>(best_value) + norms[r0 + i]);
        labels[r0 + i] = static_cast<int32_t>(best);
        distances[r0 + i] = dist;
        sum += (weight ? weight[r0 + i] : 1.0) * dist;
      }
      partial[b] = sum;
    }
  }
  return std::accumulate(partial.begin(), partial.end(), 0.0);
}

// Lloyd's assignments with Hamerly's bounds (Hamerly 2010, "Making k-means even faster"):
// per point an upper bound on the distance to its centre and a lower bound on the distance
// to every other centre, moved by the centre shifts after each update; a point is only
// looked at again when they no longer prove its centre the nearest, first by its exact
// distance to its own centre (float64), then by a full search (float32 products, as
// assign). Full searches give the same labels as assign (near-ties aside: bounds carry
// the products' rounding, widened by `slack`).
class HamerlyAssigner {
 public:
  HamerlyAssigner(const double* x, const float* xf, const std::vector<float>& norms, int64_t n, int64_t d,
                  const std::vector<double>& mean, int threads)
      : x_(x), xf_(xf), norms_(norms), n_(n), d_(d), mean_(mean), threads_(threads), upper_(n), lower_(n) {}

  // Labels of every point for `centers` [k, d] (data coordinates); `first` searches every
  // point. Returns how many points had a full search.
  int64_t assign(const std::vector<double>& centers, int64_t k, std::vector<int32_t>& labels, bool first) {
    const int64_t d = d_;
    centers_f_.resize(k * d);
    center_norms_.resize(k);
    const double largest = centre_to_float(centers.data(), k, d, mean_, centers_f_.data(), center_norms_.data());
    if (!first) move_bounds(centers, k, labels);
    previous_ = centers;
    // Half the distance from each centre to its nearest other centre: a point closer to
    // its centre than that keeps it.
    std::vector<double> half(k, std::numeric_limits<double>::infinity());
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = a + 1; b < k; ++b) {
        const double v = 0.5 * std::sqrt(squared_distance(&centers[a * d], &centers[b * d], d));
        half[a] = std::min(half[a], v);
        half[b] = std::min(half[b], v);
      }
    // Rounding of the float32 squared distances: ≤ (d + 2)·2^-24·(‖x‖² + ‖c‖²) each, doubled.
    const double rounding = 0x1.0p-23 * static_cast<double>(d + 2);
    // The points whose bounds fail, per fixed chunk of points in parallel, then in order.
    const int64_t chunks = std::clamp<int64_t>(n_ / kChunkRows, 1, 64);
    std::vector<std::vector<int64_t>> failed(chunks);
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(std::clamp <int64_t>(chunks, 1, threads_)))
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t i = n_ * c / chunks; i < n_ * (c + 1) / chunks; ++i) {
        if (!first) {
          const double bound = std::max(half[labels[i]], lower_[i]);
          if (upper_[i] <= bound) continue;
          upper_[i] = std::sqrt(squared_distance(x_ + i * d, &centers[labels[i] * d], d)) * (1 + 1e-12);
          if (upper_[i] <= bound) continue;
        }
        failed[c].push_back(i);
      }
    }
    std::vector<int64_t> search;
    for (const auto& f : failed) search.insert(search.end(), f.begin(), f.end());
    const int64_t count = static_cast<int64_t>(search.size());
    const int64_t blocks = (count + kAssignRows - 1) / kAssignRows;
#pragma omp parallel num_threads(static_cast <int>(std::clamp <int64_t>(blocks, 1, threads_)))
    {
      blas_on_this_thread();
      std::vector<float> rows(kAssignRows * d), dots(kAssignRows * k);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t r0 = b * kAssignRows, m = std::min(kAssignRows, count - r0);
        for (int64_t r = 0; r < m; ++r)
          std::copy(xf_ + search[r0 + r] * d, xf_ + (search[r0 + r] + 1) * d, &rows[r * d]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(k),
                    static_cast<int>(d), -2.0f, rows.data(), static_cast<int>(d), centers_f_.data(),
                    static_cast<int>(d), 0.0f, dots.data(), static_cast<int>(k));
        for (int64_t r = 0; r < m; ++r) {
          const int64_t i = search[r0 + r];
          float best_value;
          const int64_t best = argmin(&dots[r * k], center_norms_.data(), k, &best_value);
          const float second = min_except(&dots[r * k], center_norms_.data(), k, best);
          const double slack = rounding * (norms_[i] + largest);
          labels[i] = static_cast<int32_t>(best);
          upper_[i] = std::sqrt(std::max(0.0, static_cast<double>(best_value) + norms_[i] + slack));
          lower_[i] = std::sqrt(std::max(0.0, static_cast<double>(second) + norms_[i] - slack));
        }
      }
    }
    return count;
  }

 private:
  // After the centres moved from previous_ to `centers`: each upper bound grows by its
  // centre's shift, each lower bound shrinks by the largest shift of another centre.
  void move_bounds(const std::vector<double>& centers, int64_t k, const std::vector<int32_t>& labels) {
    std::vector<double> shift(k);
    int64_t top = 0;
    for (int64_t c = 0; c < k; ++c) {
      shift[c] = std::sqrt(squared_distance(&centers[c * d_], &previous_[c * d_], d_)) * (1 + 1e-12);
      if (shift[c] > shift[top]) top = c;
    }
    double runner = 0;
    for (int64_t c = 0; c < k; ++c)
      if (c != top) runner = std::max(runner, shift[c]);
    for (int64_t i = 0; i < n_; ++i) {
      const int32_t a = labels[i];
      upper_[i] += shift[a];
      lower_[i] -= a == top ? runner : shift[top];
    }
  }

 private:
  const double* x_;
  const float* xf_;
  const std::vector<float>& norms_;
  int64_t n_, d_;
  const std::vector<double>& mean_;
  int threads_;
  std::vector<double> upper_, lower_, previous_;
  std::vector<float> centers_f_, center_norms_;
};

}  // namespace

std::vector<int32_t> nearest_centers(const double* x, int64_t n, int64_t d, const std::vector<double>& centers,
                                     int64_t k, int threads) {
  threads = resolve_threads(threads);
  // Centred on the centres' mean, in single precision, as the Lloyd assignments.
  std::vector<double> mean(d, 0.0);
  for (int64_t c = 0; c < k; ++c)
    for (int64_t j = 0; j < d; ++j) mean[j] += centers[c * d + j] / static_cast<double>(k);
  std::vector<float> xf(n * d), norms(n), cf(k * d), center_norms(k);
  centre_to_float(x, n, d, mean, xf.data(), norms.data());
  centre_to_float(centers.data(), k, d, mean, cf.data(), center_norms.data());
  std::vector<int32_t> labels(n);
  std::vector<double> distances(n);
  assign(xf.data(), n, d, nullptr, norms, cf, k, threads, labels, distances);
  return labels;
}

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  // splitmix64 of seed and stream, so that nearby seeds give unrelated streams.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<int64_t> weighted_points(const double* weight, int64_t n) {
  std::vector<int64_t> points;
  points.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (!weight || weight[i] > 0) points.push_back(i);
  return points;
}

std::vector<int64_t> kmeans_plusplus(const double* x, int64_t n, int64_t d, const double* weight, int64_t k,
                                     uint64_t seed, int local_trials, int threads, int64_t seeding_sample) {
  threads = resolve_threads(threads);
  std::mt19937_64 rng(mix_seed(seed, 0x6b6d2b2b));
  // Candidates: the points with positive weight, or a random subset of them.
  std::vector<int64_t> pool = weighted_points(weight, n);
  if (pool.empty() || k < 1) return {};
  const int64_t limit = seeding_sample < 0 ? 0 : seeding_sample;
  if (limit > 0 && static_cast<int64_t>(pool.size()) > limit) {
    pool = random_subset(std::move(pool), limit, rng);
    std::sort(pool.begin(), pool.end());
  }
  const int64_t m = static_cast<int64_t>(pool.size());
  std::vector<double> w(m);
  for (int64_t i = 0; i < m; ++i) w[i] = weight ? weight[pool[i]] : 1.0;
  const int trials = local_trials > 0 ? local_trials : 2 + static_cast<int>(std::log(static_cast<double>(k)));

  // Samples an index of the pool with probability ∝ mass, given its prefix sums.
  std::vector<double> cumulative(m);
  auto accumulate = [&](const std::vector<double>& mass) {
    double total = 0;
    for (int64_t i = 0; i < m; ++i) cumulative[i] = total += mass[i];
    return total;
  };
  auto sample = [&](const std::vector<double>& mass, double total) {
    const double u = uniform01(rng) * total;
    int64_t at = std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin();
    at = std::min(at, m - 1);
    while (at > 0 && mass[at] <= 0) --at;  // never land on a point with no mass
    return at;
  };

  // The candidates' points, contiguous, and their squared norms.
  std::vector<double> xs(m * d), norms(m);
  for (int64_t i = 0; i < m; ++i) {
    std::copy(x + pool[i] * d, x + (pool[i] + 1) * d, xs.begin() + i * d);
    norms[i] = std::inner_product(xs.begin() + i * d, xs.begin() + (i + 1) * d, xs.begin() + i * d, 0.0);
  }
  std::vector<int64_t> chosen;
  chosen.push_back(sample(w, accumulate(w)));
  std::vector<double> closest(m), mass(m);
  for (int64_t i = 0; i < m; ++i) closest[i] = squared_distance(&xs[i * d], &xs[chosen[0] * d], d);
  std::vector<std::vector<double>> candidate_dist(trials, std::vector<double>(m));
  // The candidates are scored over fixed chunks of the pool in parallel, their partial
  // potentials added in chunk order (the result does not depend on the thread count).
  const int64_t chunks = std::clamp<int64_t>(m / kSeedChunkRows, 1, 16);
  std::vector<double> candidate_pot(trials), chunk_pot(chunks * trials), centres(trials * d), dots(m * trials);
  std::vector<int64_t> candidates(trials);
  while (static_cast<int64_t>(chosen.size()) < k) {
    for (int64_t i = 0; i < m; ++i) mass[i] = w[i] * closest[i];
    const double potential = accumulate(mass);
    if (!(potential > 0)) break;  // every remaining point coincides with a seed
    // Greedy k-means++: draw `trials` candidates by D² sampling, keep the one that lowers
    // the potential most. Distances ‖x‖² + ‖c‖² − 2x·c, the products from BLAS.
    for (int t = 0; t < trials; ++t) {
      candidates[t] = sample(mass, potential);
      std::copy(&xs[candidates[t] * d], &xs[(candidates[t] + 1) * d], centres.begin() + t * d);
    }
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(std::clamp <int64_t>(chunks, 1, threads)))
    for (int64_t c = 0; c < chunks; ++c) {
      blas_on_this_thread();
      const int64_t r0 = m * c / chunks, r1 = m * (c + 1) / chunks;
      gemm_nt(r1 - r0, trials, d, -2.0, xs.data() + r0 * d, centres.data(), 0.0, dots.data() + r0 * trials);
      for (int t = 0; t < trials; ++t) {
        const double cn = norms[candidates[t]];
        double pot = 0;
        double* dist = candidate_dist[t].data();
        for (int64_t i = r0; i < r1; ++i) {
          const double v = std::min(closest[i], std::max(0.0, norms[i] + cn + dots[i * trials + t]));
          dist[i] = v;
          pot += w[i] * v;
        }
        chunk_pot[c * trials + t] = pot;
      }
    }
    for (int t = 0; t < trials; ++t) {
      candidate_pot[t] = 0;
      for (int64_t c = 0; c < chunks; ++c) candidate_pot[t] += chunk_pot[c * trials + t];
    }
    const int best =
        static_cast<int>(std::min_element(candidate_pot.begin(), candidate_pot.end()) - candidate_pot.begin());
    chosen.push_back(candidates[best]);
    closest.swap(candidate_dist[best]);
  }
  std::vector<int64_t> result(chosen.size());
  for (size_t i = 0; i < chosen.size(); ++i) result[i] = pool[chosen[i]];
  return result;
}

KMeansResult kmeans(const double* x, int64_t n, int64_t d, const KMeansOptions& options, const double* weight) {
  check_option(options.clusters >= 1, "kmeans", "the number of clusters must be at least 1");
  check_option(n >= 1 && d >= 1, "kmeans", "no points to cluster");
  check_option(options.max_iter >= 0 && options.tol >= 0, "kmeans", "max_iter and tol must be non-negative");
  const int threads = resolve_threads(options.threads);
  const int64_t k = options.clusters;
  KMeansResult result;

  auto seeds = kmeans_plusplus(x, n, d, weight, k, options.seed, options.local_trials, threads, options.seeding_sample);
  result.distinct_seeds = static_cast<int64_t>(seeds.size());
  if (seeds.empty()) throw ConfigError("kmeans: every sample weight is zero");
  result.centers.assign(k * d, 0.0);
  for (int64_t c = 0; c < k; ++c) {
    const double* s = x + seeds[std::min<int64_t>(c, seeds.size() - 1)] * d;
    std::copy(s, s + d, result.centers.begin() + c * d);
  }
  // Clusters beyond the distinct seeds stay empty: they are excluded from assignment by
  // giving them a centre at infinity.
  const int64_t active = result.distinct_seeds;

  // Tolerance: tol × mean weighted variance of the features.
  double total_weight = 0;
  std::vector<double> mean(d, 0.0), var(d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight ? weight[i] : 1.0;
    total_weight += w;
    for (int64_t j = 0; j < d; ++j) mean[j] += w * x[i * d + j];
  }
  for (auto& v : mean) v /= total_weight;
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight ? weight[i] : 1.0;
    for (int64_t j = 0; j < d; ++j) var[j] += w * (x[i * d + j] - mean[j]) * (x[i * d + j] - mean[j]);
  }
  const double tol = options.tol * std::accumulate(var.begin(), var.end(), 0.0) / total_weight / static_cast<double>(d);

  result.labels.assign(n, 0);
  std::vector<int32_t> previous(n, -1);
  // Single-precision copy of the points, centred on their mean, for the assignments.
  std::vector<float> xf(n * d), norms(n);
  centre_to_float(x, n, d, mean, xf.data(), norms.data());
  HamerlyAssigner assigner(x, xf.data(), norms, n, d, mean, threads);
  std::vector<double> active_centers(result.centers.begin(), result.centers.begin() + active * d);
  // Σ w‖x − c(x)‖² (float64) into `distances`; returns the weighted sum.
  std::vector<double> distances(n);
  auto own_distances = [&] {
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      distances[i] = squared_distance(x + i * d, &active_centers[result.labels[i] * d], d);
      total += (weight ? weight[i] : 1.0) * distances[i];
    }
    return total;
  };

  const int64_t chunks = (n + kChunkRows - 1) / kChunkRows;
  std::vector<double> chunk_sums(chunks * active * d), chunk_weights(chunks * active);
  bool labels_current = false;
  for (int it = 1; it <= options.max_iter; ++it) {
    assigner.assign(active_centers, active, result.labels, it == 1);
    result.iterations = it;
    if (result.labels == previous) {  // strict convergence: the assignment did not change
      result.converged = true;
      labels_current = true;
      break;
    }
    previous = result.labels;
    // Update: weighted mean of each cluster, partial sums per fixed chunk of points (so
    // the result does not depend on the thread count).
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(std::clamp <int64_t>(chunks, 1, threads)))
    for (int64_t c = 0; c < chunks; ++c) {
      double* sums = chunk_sums.data() + c * active * d;
      double* ws = chunk_weights.data() + c * active;
      std::fill(sums, sums + active * d, 0.0);
      std::fill(ws, ws + active, 0.0);
      for (int64_t i = c * kChunkRows; i < std::min(n, (c + 1) * kChunkRows); ++i) {
        const double w = weight ? weight[i] : 1.0;
        const int32_t l = result.labels[i];
        ws[l] += w;
        for (int64_t j = 0; j < d; ++j) sums[l * d + j] += w * x[i * d + j];
      }
    }
    std::vector<double> sums(active * d, 0.0), ws(active, 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t q = 0; q < active * d; ++q) sums[q] += chunk_sums[c * active * d + q];
      for (int64_t q = 0; q < active; ++q) ws[q] += chunk_weights[c * active + q];
    }
    // Empty clusters take the points farthest from their centres (scikit-learn's
    // _relocate_empty_clusters); the point leaves its old cluster's sums.
    std::vector<int64_t> empty;
    for (int64_t c = 0; c < active; ++c)
      if (!(ws[c] > 0)) empty.push_back(c);
    if (!empty.empty()) {
      own_distances();
      std::vector<int64_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      const int64_t take = std::min<int64_t>(empty.size(), n);
      std::partial_sort(order.begin(), order.begin() + take, order.end(), [&](int64_t a, int64_t b) {
        return distances[a] > distances[b] || (distances[a] == distances[b] && a < b);
      });
      for (int64_t e = 0; e < take; ++e) {
        const int64_t p = order[e];
        const double w = weight ? weight[p] : 1.0;
        if (!(distances[p] > 0) || !(w > 0)) break;
        const int64_t from = result.labels[p], to = empty[e];
        for (int64_t j = 0; j < d; ++j) {
          sums[from * d + j] -= w * x[p * d + j];
          sums[to * d + j] = w * x[p * d + j];
        }
        ws[from] -= w;
        ws[to] = w;
      }
    }
    double shift = 0;
    for (int64_t c = 0; c < active; ++c) {
      if (!(ws[c] > 0)) continue;
      for (int64_t j = 0; j < d; ++j) {
        const double v = sums[c * d + j] / ws[c];
        shift += (v - active_centers[c * d + j]) * (v - active_centers[c * d + j]);
        active_centers[c * d + j] = v;
      }
    }
    labels_current = false;
    if (shift <= tol) {
      result.converged = true;
      break;
    }
  }
  // A final assignment so that labels match the returned centres (as scikit-learn does).
  if (!labels_current) assigner.assign(active_centers, active, result.labels, result.iterations == 0);
  result.inertia = own_distances();
  std::copy(active_centers.begin(), active_centers.end(), result.centers.begin());
  return result;
}

}  // namespace defuse
