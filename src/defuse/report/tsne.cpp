#include "defuse/report/tsne.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "defuse/base/error.h"
#include "defuse/base/simd.h"
#include "defuse/base/threads.h"
#include "defuse/base/timing.h"
#include "defuse/distill/kmeans.h"

namespace defuse {
namespace {

constexpr const char* kStage = "tsne";
constexpr double kMachineEpsilon = std::numeric_limits<double>::epsilon();
// scikit-learn's constants are C floats (_utils.pyx, _barnes_hut_tsne.pyx): keep their values.
constexpr double kSumFloor = static_cast<double>(1e-8f);          // EPSILON_DBL
constexpr double kEntropyTolerance = static_cast<double>(1e-5f);  // PERPLEXITY_TOLERANCE
constexpr double kFloat32Tiny = static_cast<double>(std::numeric_limits<float>::min());
constexpr int kSearchSteps = 100;
constexpr double kInitScale = 1e-4;     // std of the initial embedding (scikit-learn, issue #18018)
constexpr int64_t kExactLimit = 20000;  // N² doubles: 3 GiB at 20k points

// Threads for `chunks` units of ~0.1 ms of work: small inputs run on one thread, where the
// barriers of a parallel region would cost more than they save (more so on a shared
// machine). Results never depend on the thread count.
int threads_for(int threads, int64_t chunks) {
  return static_cast<int>(std::clamp<int64_t>(chunks, 1, resolve_threads(threads)));
}

// ---- Affinities ----

// One row of the binary search of _utils.pyx::_binary_search_perplexity, in its order of
// operations. `skip` is the column left at 0 (the point itself), or −1.
void search_precision(const double* dist, int64_t cols, int64_t skip, double log_perplexity, double* p) {
  double beta = 1.0;
  double beta_min = -std::numeric_limits<double>::infinity();
  double beta_max = std::numeric_limits<double>::infinity();
  if (skip >= 0) p[skip] = 0.0;
  for (int step = 0; step < kSearchSteps; ++step) {
    double sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      if (j == skip) continue;
      p[j] = std::exp(-dist[j] * beta);
      sum += p[j];
    }
    if (sum == 0.0) sum = kSumFloor;
    double weighted = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      p[j] /= sum;
      weighted += dist[j] * p[j];
    }
    const double difference = std::log(sum) + beta * weighted - log_perplexity;
    if (std::fabs(difference) <= kEntropyTolerance) break;
    if (difference > 0.0) {
      beta_min = beta;
      beta = std::isinf(beta_max) ? beta * 2.0 : (beta + beta_max) / 2.0;
    } else {
      beta_max = beta;
      beta = std::isinf(beta_min) ? beta / 2.0 : (beta + beta_min) / 2.0;
    }
  }
}

// ---- Gradient kernels ----

struct RowForces {
  double attract_x = 0, attract_y = 0;  // Σ_j p_ij w_ij (y_i − y_j)
  double repulse_x = 0, repulse_y = 0;  // Σ_j w_ij² (y_i − y_j)
  double z = 0;                         // Σ_j w_ij, j ≠ i
};

// All pairs of row i, j = i included (w_ii = 1 with zero offsets and p_ii = 0, so only z
// needs correcting): a straight loop the compiler vectorises.
DEFUSE_CLONES RowForces exact_row(const double* prow, const double* xs, const double* ys, int64_t n, double xi,
                                  double yi) {
  double ax = 0, ay = 0, rx = 0, ry = 0, z = 0;
#pragma omp simd reduction(+ : ax, ay, rx, ry, z)
  for (int64_t j = 0; j < n; ++j) {
    const double dx = xi - xs[j], dy = yi - ys[j];
    const double w = 1.0 / (1.0 + dx * dx + dy * dy);
    const double pw = prow[j] * w, ww = w * w;
    ax += pw * dx;
    ay += pw * dy;
    rx += ww * dx;
    ry += ww * dy;
    z += w;
  }
  return {ax, ay, rx, ry, z - 1.0};
}

// The attractive sums of one point over its row of sparse P (gathers, vectorised).
DEFUSE_CLONES void attraction(const int32_t* columns, const double* values, int64_t count, const double* xs,
                              const double* ys, double xi, double yi, RowForces& out) {
  double ax = 0, ay = 0;
#pragma omp simd reduction(+ : ax, ay)
  for (int64_t e = 0; e < count; ++e) {
    const double dx = xi - xs[columns[e]], dy = yi - ys[columns[e]];
    const double pw = values[e] / (1.0 + dx * dx + dy * dy);
    ax += pw * dx;
    ay += pw * dy;
  }
  out.attract_x = ax;
  out.attract_y = ay;
}

// Σ_{j≠i} p'_ij ln(max(p'_ij, ε) / max(w_ij / Z, ε)) with p' = exaggeration·p (the terms of
// scikit-learn's exact KL; its P already holds the ε floor off the diagonal).
DEFUSE_CLONES double exact_row_kl(const double* prow, const double* xs, const double* ys, int64_t n, int64_t i,
                                  double exaggeration, double inv_z) {
  double kl = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (j == i) continue;
    const double dx = xs[i] - xs[j], dy = ys[i] - ys[j];
    const double q = std::max(inv_z / (1.0 + dx * dx + dy * dy), kMachineEpsilon);
    const double p = exaggeration * prow[j];
    kl += p * std::log(std::max(p, kMachineEpsilon) / q);
  }
  return kl;
}

// dC/dy_i = 4 (exaggeration · attract_i − repulse_i / Z) with Z = Σ_i z_i summed in point
// order (so the result does not depend on threads); returns 1/Z.
double assemble_gradient(const std::vector<RowForces>& rows, double exaggeration, double* gradient) {
  double total = 0;
  for (const RowForces& r : rows) total += r.z;
  const double inv_z = 1.0 / std::max(total, kMachineEpsilon);
  for (size_t i = 0; i < rows.size(); ++i) {
    gradient[2 * i] = 4.0 * (exaggeration * rows[i].attract_x - rows[i].repulse_x * inv_z);
    gradient[2 * i + 1] = 4.0 * (exaggeration * rows[i].attract_y - rows[i].repulse_y * inv_z);
  }
  return inv_z;
}

// ---- Quadtree for the Barnes-Hut repulsion ----

// Points per leaf at most (unless they coincide): the groups that walk the tree together.
// Measured at 20k points: 32 is ~25% faster than 8 or 128, 2× faster than 4.
constexpr int32_t kLeafSize = 32;
constexpr int kMaxDepth = 48;  // cells narrower than 2^-48 of the root are not split

struct QuadNode {
  double cx = 0, cy = 0;  // centre of mass
  double width2 = 0;      // squared side of the (square) cell
  int32_t begin = 0;      // the points of the cell: tree positions [begin, end)
  int32_t end = 0;
  int32_t first_child = -1;  // children are stored contiguously; −1 for a leaf
  int32_t children = 0;
};

// A mass `count` at (cx, cy) acting on each of `count_g` points (gx, gy): w = 1/(1 + r²),
// z += count·w, r += count·w²·(p − c).
DEFUSE_CLONES void summary(const double* gx, const double* gy, int32_t count_g, double cx, double cy, double count,
                           double* rx, double* ry, double* z) {
#pragma omp simd
  for (int32_t g = 0; g < count_g; ++g) {
    const double dx = gx[g] - cx, dy = gy[g] - cy;
    const double w = 1.0 / (1.0 + dx * dx + dy * dy);
    const double mw2 = count * w * w;
    z[g] += count * w;
    rx[g] += mw2 * dx;
    ry[g] += mw2 * dy;
  }
}

// The pairs inside one leaf, without self-pairs.
void exact_self(const double* gx, const double* gy, int32_t count, double* rx, double* ry, double* z) {
  for (int32_t g = 0; g < count; ++g)
    for (int32_t s = 0; s < count; ++s) {
      if (s == g) continue;
      const double dx = gx[g] - gx[s], dy = gy[g] - gy[s];
      const double w = 1.0 / (1.0 + dx * dx + dy * dy);
      z[g] += w;
      rx[g] += w * w * dx;
      ry[g] += w * w * dy;
    }
}

class QuadTree {
 public:
  // Built from the embedding [n, 2] by recursive quadrant splits of a square root cell.
  QuadTree(const double* y, int64_t n) : xs_(n), ys_(n), order_(n), quadrant_(n), scratch_(n) {
    double x0 = y[0], x1 = y[0], y0 = y[1], y1 = y[1];
    for (int64_t i = 0; i < n; ++i) {
      x0 = std::min(x0, y[2 * i]);
      x1 = std::max(x1, y[2 * i]);
      y0 = std::min(y0, y[2 * i + 1]);
      y1 = std::max(y1, y[2 * i + 1]);
      order_[i] = static_cast<int32_t>(i);
    }
    points_ = y;
    nodes_.reserve(static_cast<size_t>(n / 2 + 16));
    nodes_.emplace_back();
    const double half = std::max(std::max(x1 - x0, y1 - y0) / 2.0, 1e-300);
    build(0, 0, static_cast<int32_t>(n), (x0 + x1) / 2.0, (y0 + y1) / 2.0, half, 0);
    for (int64_t t = 0; t < n; ++t) {
      xs_[t] = y[2 * order_[t]];
      ys_[t] = y[2 * order_[t] + 1];
    }
  }

  int64_t leaves() const { return static_cast<int64_t>(leaves_.size()); }

  // Repulsive sums of the points of leaf `leaf`, written to rows[point]. The leaf's points
  // walk the tree together (Barnes-Hut with a group criterion): a cell is summarised by its
  // centre of mass for all of them when w² < θ²·r², r the distance from that centre to the
  // leaf's bounding box, which implies the usual criterion for each point; a cell that
  // fails it is opened, down to leaves, whose points interact exactly (the group's own leaf
  // too, without self-pairs). θ = 0 is the exact sum. The order of the terms is fixed.
  void repulsion(int64_t leaf, double theta2, std::vector<int32_t>& stack, std::vector<double>& buffer,
                 std::vector<RowForces>& rows) const {
    const QuadNode& own = nodes_[leaves_[leaf]];
    const int32_t count = own.end - own.begin;
    buffer.assign(3 * static_cast<size_t>(count), 0.0);
    double* rx = buffer.data();
    double* ry = rx + count;
    double* z = ry + count;
    const double* gx = &xs_[own.begin];
    const double* gy = &ys_[own.begin];
    double bx0 = gx[0], bx1 = gx[0], by0 = gy[0], by1 = gy[0];
    for (int32_t g = 1; g < count; ++g) {
      bx0 = std::min(bx0, gx[g]);
      bx1 = std::max(bx1, gx[g]);
      by0 = std::min(by0, gy[g]);
      by1 = std::max(by1, gy[g]);
    }
    stack.clear();
    stack.push_back(0);
    while (!stack.empty()) {
      const int32_t index = stack.back();
      stack.pop_back();
      const QuadNode& c = nodes_[index];
      if (index == leaves_[leaf]) {
        exact_self(gx, gy, count, rx, ry, z);
        continue;
      }
      const bool holds_group = c.begin <= own.begin && own.end <= c.end;
      if (!holds_group) {
        const double dx = std::max({bx0 - c.cx, c.cx - bx1, 0.0});
        const double dy = std::max({by0 - c.cy, c.cy - by1, 0.0});
        if (c.width2 < theta2 * (dx * dx + dy * dy)) {
          summary(gx, gy, count, c.cx, c.cy, static_cast<double>(c.end - c.begin), rx, ry, z);
          continue;
        }
        if (c.first_child < 0) {
          for (int32_t s = c.begin; s < c.end; ++s) summary(gx, gy, count, xs_[s], ys_[s], 1.0, rx, ry, z);
          continue;
        }
      }
      for (int32_t k = c.children - 1; k >= 0; --k) stack.push_back(c.first_child + k);
    }
    for (int32_t g = 0; g < count; ++g) {
      RowForces& f = rows[order_[own.begin + g]];
      f.repulse_x = rx[g];
      f.repulse_y = ry[g];
      f.z = z[g];
    }
  }

 private:
  void build(int32_t index, int32_t begin, int32_t end, double cx, double cy, double half, int depth) {
    nodes_[index].begin = begin;
    nodes_[index].end = end;
    nodes_[index].width2 = 4.0 * half * half;
    if (end - begin <= kLeafSize || depth >= kMaxDepth) {
      leaves_.push_back(index);
      double sx = 0, sy = 0;
      for (int32_t s = begin; s < end; ++s) {
        sx += points_[2 * order_[s]];
        sy += points_[2 * order_[s] + 1];
      }
      nodes_[index].cx = sx / (end - begin);
      nodes_[index].cy = sy / (end - begin);
      return;
    }
    // Stable counting sort of the cell's points by quadrant (bit 0: right, bit 1: top).
    std::array<int32_t, 5> start{};
    for (int32_t s = begin; s < end; ++s) {
      const int32_t i = order_[s];
      const int q = (points_[2 * i] >= cx ? 1 : 0) + (points_[2 * i + 1] >= cy ? 2 : 0);
      quadrant_[s] = static_cast<int8_t>(q);
      ++start[q + 1];
    }
    for (int q = 0; q < 4; ++q) start[q + 1] += start[q];
    std::array<int32_t, 4> fill{start[0], start[1], start[2], start[3]};
    for (int32_t s = begin; s < end; ++s) scratch_[begin + fill[quadrant_[s]]++] = order_[s];
    std::copy(scratch_.begin() + begin, scratch_.begin() + end, order_.begin() + begin);
    int32_t children = 0;
    for (int q = 0; q < 4; ++q) children += start[q + 1] > start[q] ? 1 : 0;
    const int32_t first = static_cast<int32_t>(nodes_.size());
    nodes_[index].first_child = first;
    nodes_[index].children = children;
    nodes_.resize(nodes_.size() + children);
    int32_t child = first;
    const double quarter = half / 2.0;
    double sx = 0, sy = 0;
    for (int q = 0; q < 4; ++q) {
      if (start[q + 1] == start[q]) continue;
      build(child, begin + start[q], begin + start[q + 1], cx + ((q & 1) ? quarter : -quarter),
            cy + ((q & 2) ? quarter : -quarter), quarter, depth + 1);
      const double count = start[q + 1] - start[q];
      sx += count * nodes_[child].cx;
      sy += count * nodes_[child].cy;
      ++child;
    }
    nodes_[index].cx = sx / (end - begin);
    nodes_[index].cy = sy / (end - begin);
  }

  const double* points_ = nullptr;
  std::vector<QuadNode> nodes_;
  std::vector<int32_t> leaves_;   // indices of the leaf nodes, in tree order
  std::vector<double> xs_, ys_;   // coordinates in tree order
  std::vector<int32_t> order_;    // tree position → point
  std::vector<int8_t> quadrant_;  // build scratch
  std::vector<int32_t> scratch_;  // build scratch
};

// ---- Initialisation ----

// Eigenvectors of the symmetric d×d matrix `a` (destroyed) by cyclic Jacobi rotations:
// columns of the returned row-major matrix, eigenvalues left on a's diagonal.
std::vector<double> jacobi_eigenvectors(std::vector<double>& a, int64_t d) {
  std::vector<double> v(d * d, 0.0);
  for (int64_t i = 0; i < d; ++i) v[i * d + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, total = 0;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) (i == j ? total : off) += a[i * d + j] * a[i * d + j];
    if (off <= 1e-30 * (total + off) || off == 0.0) break;
    for (int64_t p = 0; p < d; ++p) {
      for (int64_t q = p + 1; q < d; ++q) {
        const double apq = a[p * d + q];
        if (apq == 0.0) continue;
        const double theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int64_t k = 0; k < d; ++k) {  // A ← A·J
          const double akp = a[k * d + p], akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (int64_t k = 0; k < d; ++k) {  // A ← Jᵀ·A
          const double apk = a[p * d + k], aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (int64_t k = 0; k < d; ++k) {  // V ← V·J
          const double vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return v;
}

// N(0, 1) by Box–Muller from 53-bit uniforms (the standard library's distributions are
// implementation-defined; this is the same on every platform).
std::vector<double> gaussians(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(mix_seed(seed, 0x74736e65));
  std::vector<double> out(count);
  for (int64_t i = 0; i < count; i += 2) {
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = r * std::cos(2.0 * M_PI * u2);
    if (i + 1 < count) out[i + 1] = r * std::sin(2.0 * M_PI * u2);
  }
  return out;
}

std::vector<double> random_embedding(int64_t n, uint64_t seed) {
  std::vector<double> y = gaussians(2 * n, seed);
  for (double& v : y) v *= kInitScale;
  return y;
}

// The first two principal components, scaled so that the first has standard deviation
// kInitScale (scikit-learn's init="pca"). Signs: each component's largest coefficient is
// positive. With one feature the second coordinate is random; with no spread at all the
// whole initialisation is random.
std::vector<double> pca_embedding(const double* x, int64_t n, int64_t d, uint64_t seed) {
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) mean[k] += x[i * d + k];
  for (double& m : mean) m /= static_cast<double>(n);
  std::vector<double> cov(d * d, 0.0), row(d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) row[k] = x[i * d + k] - mean[k];
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = a; b < d; ++b) cov[a * d + b] += row[a] * row[b];
  }
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < a; ++b) cov[a * d + b] = cov[b * d + a];
  const std::vector<double> v = jacobi_eigenvectors(cov, d);
  std::vector<int64_t> rank(d);
  std::iota(rank.begin(), rank.end(), 0);
  std::stable_sort(rank.begin(), rank.end(), [&](int64_t a, int64_t b) { return cov[a * d + a] > cov[b * d + b]; });
  std::vector<double> y = random_embedding(n, seed);
  for (int64_t c = 0; c < std::min<int64_t>(2, d); ++c) {
    const int64_t col = rank[c];
    int64_t largest = 0;
    for (int64_t k = 1; k < d; ++k)
      if (std::fabs(v[k * d + col]) > std::fabs(v[largest * d + col])) largest = k;
    const double sign = v[largest * d + col] < 0 ? -1.0 : 1.0;
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += (x[i * d + k] - mean[k]) * v[k * d + col];
      y[2 * i + c] = sign * s;
    }
  }
  double m = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) m += y[2 * i];
  m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) var += (y[2 * i] - m) * (y[2 * i] - m);
  const double sd = std::sqrt(var / static_cast<double>(n));
  if (!(sd > 0)) return random_embedding(n, seed);
  const double scale = kInitScale / sd;
  for (int64_t i = 0; i < n; ++i) {
    y[2 * i] *= scale;
    if (d >= 2) y[2 * i + 1] *= scale;
  }
  return y;
}

// ---- Gradient descent ----

// One phase of scikit-learn's _gradient_descent over iterations [begin, end): fresh
// momentum buffer and gains; returns the last iteration run, its KL in `kl`.
template <typename Objective>
int64_t descend(Objective& objective, std::vector<double>& y, int64_t begin, int64_t end, double momentum,
                double exaggeration, int64_t without_progress, const TsneOptions& o, double learning_rate, double& kl,
                const std::chrono::steady_clock::time_point start) {
  const size_t m = y.size();
  std::vector<double> update(m, 0.0), gains(m, 1.0), gradient(m);
  double best = std::numeric_limits<double>::max();
  int64_t best_iteration = begin, i = begin;
  for (; i < end; ++i) {
    const bool check = (i + 1) % o.check_every == 0;
    const bool last = i == end - 1;
    const double error = objective(y.data(), exaggeration, gradient.data(), check || last);
    if (check || last) kl = error;
    double norm2 = 0;
    for (size_t k = 0; k < m; ++k) {
      const double g = gradient[k];
      double& gain = gains[k];
      gain = update[k] * g < 0.0 ? gain + 0.2 : gain * 0.8;
      gain = std::max(gain, o.min_gain);
      const double scaled = g * gain;
      norm2 += scaled * scaled;
      update[k] = momentum * update[k] - learning_rate * scaled;
      y[k] += update[k];
    }
    if (!check) continue;
    const double norm = std::sqrt(norm2);
    if (o.on_progress) {
      TsneProgress p;
      p.iteration = static_cast<int>(i + 1);
      p.iterations = o.iterations;
      p.kl_divergence = error;
      p.gradient_norm = norm;
      p.exaggerated = exaggeration != 1.0;
      p.seconds = seconds_since(start);
      o.on_progress(p);
    }
    if (error < best) {
      best = error;
      best_iteration = i;
    } else if (i - best_iteration > without_progress) {
      break;
    }
    if (norm <= o.min_grad_norm) break;
  }
  return std::min(i, end - 1);
}

void check_points(const double* points, int64_t n, int64_t d) {
  check_option(n >= 2, kStage, "needs at least 2 points, got " + std::to_string(n));
  check_option(d >= 1, kStage, "points need at least one coordinate, got " + std::to_string(d));
  check_option(n < std::numeric_limits<int32_t>::max(), kStage, "too many points: " + std::to_string(n));
  for (int64_t i = 0; i < n * d; ++i)
    if (!std::isfinite(points[i]))
      throw DataError(std::string(kStage) + ": point " + std::to_string(i / d) + ", coordinate " +
                      std::to_string(i % d) + " is " + (std::isnan(points[i]) ? "NaN" : "infinite"));
}

}  // namespace

namespace {

// Option names, shared by the parsers and to_string.
template <typename E>
using NameTable = std::array<std::pair<E, const char*>, 3>;
constexpr NameTable<TsneMethod> kMethodNames{
    {{TsneMethod::kAuto, "auto"}, {TsneMethod::kExact, "exact"}, {TsneMethod::kBarnesHut, "barnes_hut"}}};
constexpr NameTable<TsneInit> kInitNames{
    {{TsneInit::kPca, "pca"}, {TsneInit::kRandom, "random"}, {TsneInit::kGiven, "given"}}};

template <typename E>
E parse_name(const NameTable<E>& table, const std::string& name, const std::string& what) {
  std::string accepted;
  for (const auto& [value, text] : table) {
    if (name == text) return value;
    accepted += (accepted.empty() ? "" : ", ") + std::string(text);
  }
  throw ConfigError(std::string(kStage) + ": unknown " + what + " '" + name + "' (" + accepted + ")");
}

template <typename E>
std::string name_of(const NameTable<E>& table, E value) {
  for (const auto& [v, text] : table)
    if (v == value) return text;
  return "?";
}

}  // namespace

TsneMethod parse_tsne_method(const std::string& name) {
  return parse_name(kMethodNames, name == "barnes-hut" ? "barnes_hut" : name, "method");
}
TsneInit parse_tsne_init(const std::string& name) { return parse_name(kInitNames, name, "initialisation"); }
std::string to_string(TsneMethod method) { return name_of(kMethodNames, method); }
std::string to_string(TsneInit init) { return name_of(kInitNames, init); }

void TsneOptions::validate() const {
  check_option(std::isfinite(perplexity) && perplexity > 0, kStage, "perplexity must be > 0");
  check_option(iterations >= 1, kStage, "iterations must be ≥ 1");
  check_option(std::isfinite(early_exaggeration) && early_exaggeration >= 1, kStage, "early_exaggeration must be ≥ 1");
  check_option(exaggeration_iterations >= 0, kStage, "exaggeration_iterations must be ≥ 0");
  check_option(!learning_rate || (std::isfinite(*learning_rate) && *learning_rate > 0), kStage,
               "learning_rate must be > 0 (or unset for auto)");
  check_option(momentum >= 0 && momentum < 1 && final_momentum >= 0 && final_momentum < 1, kStage,
               "momentum and final_momentum must be in [0, 1)");
  check_option(std::isfinite(min_gain) && min_gain > 0, kStage, "min_gain must be > 0");
  check_option(min_grad_norm >= 0, kStage, "min_grad_norm must be ≥ 0");
  check_option(iterations_without_progress >= 0, kStage, "iterations_without_progress must be ≥ 0");
  check_option(check_every >= 1, kStage, "check_every must be ≥ 1");
  check_option(theta >= 0 && theta <= 1, kStage, "theta must be in [0, 1]");
  check_option(exact_max_points >= 0, kStage, "exact_max_points must be ≥ 0");
  check_option(threads >= 0, kStage, "threads must be ≥ 0");
  check_option(init != TsneInit::kGiven || !init_embedding.empty(), kStage, "init 'given' needs init_embedding");
}

std::vector<double> tsne_conditional_probabilities(const double* squared_distances, int64_t rows, int64_t cols,
                                                   double perplexity, bool skip_diagonal, int threads) {
  std::vector<double> p(rows * cols, 0.0);
  const double log_perplexity = std::log(perplexity);
#pragma omp parallel for schedule(dynamic, 64) num_threads(resolve_threads(threads))
  for (int64_t i = 0; i < rows; ++i)
    search_precision(squared_distances + i * cols, cols, skip_diagonal ? i : -1, log_perplexity, &p[i * cols]);
  return p;
}

std::vector<double> tsne_joint_probabilities(const double* x, int64_t n, int64_t d, double perplexity, int threads) {
  std::vector<double> dist(n * n);
#pragma omp parallel for schedule(static) num_threads(resolve_threads(threads))
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double t = x[i * d + k] - x[j * d + k];
        s += t * t;
      }
      dist[i * n + j] = s;
    }
  // One N×N matrix throughout: each row's conditional P replaces its distances, then
  // P + Pᵀ is formed in place.
  const double log_perplexity = std::log(perplexity);
#pragma omp parallel num_threads(resolve_threads(threads))
  {
    std::vector<double> row(n);
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; ++i) {
      search_precision(&dist[i * n], n, i, log_perplexity, row.data());
      std::copy(row.begin(), row.end(), dist.begin() + i * n);
    }
  }
  std::vector<double>& p = dist;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      const double v = p[i * n + j] + p[j * n + i];
      p[i * n + j] = p[j * n + i] = v;
      sum += 2.0 * v;
    }
  sum = std::max(sum, kMachineEpsilon);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) p[i * n + j] = i == j ? 0.0 : std::max(p[i * n + j] / sum, kMachineEpsilon);
  return p;
}

void tsne_nearest_neighbors(const double* x, int64_t n, int64_t d, int64_t k, std::vector<int32_t>& indices,
                            std::vector<double>& squared_distances, int threads) {
  check_option(k >= 1 && k < n, kStage, "neighbours must be in [1, n)");
  // Candidates are ranked by ‖a‖² + ‖b‖² − 2a·b on centred points (BLAS products); the
  // kept ones get exact distances below, so rounding can only swap near-ties.
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < d; ++c) mean[c] += x[i * d + c];
  for (double& m : mean) m /= static_cast<double>(n);
  std::vector<double> centred(n * d), norms(n);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) {
      centred[i * d + c] = x[i * d + c] - mean[c];
      s += centred[i * d + c] * centred[i * d + c];
    }
    norms[i] = s;
  }
  indices.assign(n * k, 0);
  squared_distances.assign(n * k, 0.0);
  constexpr int64_t kRows = 64;
  const int64_t blocks = (n + kRows - 1) / kRows;
  const int nthreads = static_cast<int>(std::clamp<int64_t>(blocks, 1, resolve_threads(threads)));
#pragma omp parallel num_threads(nthreads)
  {
    blas_on_this_thread();
    std::vector<double> dots(kRows * n);
    std::vector<std::pair<double, int32_t>> heap;
    heap.reserve(k);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * kRows, rows = std::min(kRows, n - r0);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
                  static_cast<int>(d), -2.0, centred.data() + r0 * d, static_cast<int>(d), centred.data(),
                  static_cast<int>(d), 0.0, dots.data(), static_cast<int>(n));
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = r0 + r;
        const double* row = dots.data() + r * n;
        heap.clear();
        for (int64_t j = 0; j < n; ++j) {
          if (j == i) continue;
          const std::pair<double, int32_t> cand{row[j] + norms[j], static_cast<int32_t>(j)};
          if (static_cast<int64_t>(heap.size()) < k) {
            heap.push_back(cand);
            if (static_cast<int64_t>(heap.size()) == k) std::make_heap(heap.begin(), heap.end());
          } else if (cand < heap.front()) {
            std::pop_heap(heap.begin(), heap.end());
            heap.back() = cand;
            std::push_heap(heap.begin(), heap.end());
          }
        }
        for (auto& [dist, j] : heap) {
          double s = 0;
          for (int64_t c = 0; c < d; ++c) {
            const double t = x[i * d + c] - x[j * d + c];
            s += t * t;
          }
          dist = s;
        }
        std::sort(heap.begin(), heap.end());
        for (int64_t m = 0; m < k; ++m) {
          indices[i * k + m] = heap[m].second;
          squared_distances[i * k + m] = heap[m].first;
        }
      }
    }
  }
}

TsneSparseP tsne_joint_probabilities_nn(const double* x, int64_t n, int64_t d, double perplexity, int threads) {
  const int64_t k = std::min<int64_t>(n - 1, static_cast<int64_t>(3.0 * perplexity + 1.0));
  std::vector<int32_t> nn;
  std::vector<double> dist;
  tsne_nearest_neighbors(x, n, d, k, nn, dist, threads);
  const std::vector<double> c = tsne_conditional_probabilities(dist.data(), n, k, perplexity, false, threads);
  // P + Pᵀ in CSR: each conditional p_{j|i} lands in rows i and j; duplicates are merged.
  TsneSparseP p;
  p.n = n;
  std::vector<int64_t> count(n + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    count[i + 1] += k;
    for (int64_t m = 0; m < k; ++m) ++count[nn[i * k + m] + 1];
  }
  for (int64_t i = 0; i < n; ++i) count[i + 1] += count[i];
  std::vector<std::pair<int32_t, double>> entries(count[n]);
  std::vector<int64_t> fill(count.begin(), count.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < k; ++m) {
      const int32_t j = nn[i * k + m];
      const double v = c[i * k + m];
      entries[fill[i]++] = {j, v};
      entries[fill[j]++] = {static_cast<int32_t>(i), v};
    }
  p.indptr.assign(n + 1, 0);
  p.indices.reserve(entries.size());
  p.values.reserve(entries.size());
  for (int64_t i = 0; i < n; ++i) {
    auto first = entries.begin() + count[i], last = entries.begin() + count[i + 1];
    std::sort(first, last, [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto it = first; it != last; ++it) {
      if (!p.indices.empty() && static_cast<int64_t>(p.indices.size()) > p.indptr[i] && p.indices.back() == it->first)
        p.values.back() += it->second;
      else {
        p.indices.push_back(it->first);
        p.values.push_back(it->second);
      }
    }
    p.indptr[i + 1] = static_cast<int64_t>(p.indices.size());
  }
  const double sum = std::max(std::accumulate(p.values.begin(), p.values.end(), 0.0), kMachineEpsilon);
  for (double& v : p.values) v /= sum;
  return p;
}

double tsne_gradient_exact(const std::vector<double>& p, const double* y, int64_t n, double exaggeration,
                           double* gradient, bool compute_kl, int threads) {
  std::vector<double> xs(n), ys(n), z(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = y[2 * i];
    ys[i] = y[2 * i + 1];
  }
  std::vector<RowForces> rows(n);
  const int nthreads = threads_for(threads, n * n / 200000);
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t i = 0; i < n; ++i) rows[i] = exact_row(&p[i * n], xs.data(), ys.data(), n, xs[i], ys[i]);
  const double inv_z = assemble_gradient(rows, exaggeration, gradient);
  if (!compute_kl) return std::numeric_limits<double>::quiet_NaN();
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t i = 0; i < n; ++i) z[i] = exact_row_kl(&p[i * n], xs.data(), ys.data(), n, i, exaggeration, inv_z);
  return std::accumulate(z.begin(), z.end(), 0.0);
}

double tsne_gradient_barnes_hut(const TsneSparseP& p, const double* y, double theta, double exaggeration,
                                double* gradient, bool compute_kl, int threads) {
  const int64_t n = p.n;
  const QuadTree tree(y, n);
  std::vector<double> xs(n), ys(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = y[2 * i];
    ys[i] = y[2 * i + 1];
  }
  std::vector<RowForces> rows(n);
  std::vector<double> kl_rows(compute_kl ? n : 0);
  const double theta2 = theta * theta;
  const int nthreads = threads_for(threads, n / 1000);
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<int32_t> stack;
    std::vector<double> buffer;
    stack.reserve(256);
#pragma omp for schedule(dynamic, 32)
    for (int64_t leaf = 0; leaf < tree.leaves(); ++leaf) tree.repulsion(leaf, theta2, stack, buffer, rows);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t e0 = p.indptr[i], count = p.indptr[i + 1] - e0;
      attraction(&p.indices[e0], &p.values[e0], count, xs.data(), ys.data(), xs[i], ys[i], rows[i]);
    }
  }
  const double inv_z = assemble_gradient(rows, exaggeration, gradient);
  if (!compute_kl) return std::numeric_limits<double>::quiet_NaN();
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t i = 0; i < n; ++i) {
    double kl = 0;
    for (int64_t e = p.indptr[i]; e < p.indptr[i + 1]; ++e) {
      const int64_t j = p.indices[e];
      const double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      const double q = inv_z / (1.0 + dx * dx + dy * dy);
      const double pe = exaggeration * p.values[e];
      kl += pe * std::log(std::max(pe, kFloat32Tiny) / std::max(q, kFloat32Tiny));
    }
    kl_rows[i] = kl;
  }
  return std::accumulate(kl_rows.begin(), kl_rows.end(), 0.0);
}

std::vector<double> tsne_initial_embedding(const double* points, int64_t n, int64_t d, const TsneOptions& options) {
  if (options.init == TsneInit::kGiven) {
    check_option(static_cast<int64_t>(options.init_embedding.size()) == 2 * n, kStage,
                 "init_embedding must hold 2 values per point");
    for (double v : options.init_embedding)
      if (!std::isfinite(v)) throw DataError(std::string(kStage) + ": init_embedding holds NaN or Inf");
    return options.init_embedding;
  }
  if (options.init == TsneInit::kRandom) return random_embedding(n, options.seed);
  return pca_embedding(points, n, d, options.seed);
}

TsneResult tsne(const double* points, int64_t n, int64_t d, const TsneOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  check_points(points, n, d);
  TsneResult result;
  result.perplexity = options.perplexity;
  if (options.perplexity >= static_cast<double>(n)) {
    check_option(options.clamp_perplexity, kStage,
                 "perplexity " + std::to_string(options.perplexity) + " must be less than the number of points (" +
                     std::to_string(n) + "); lower it or set clamp_perplexity");
    result.perplexity = std::max(1.0, static_cast<double>(n - 1) / 3.0);
  }
  result.method = options.method;
  if (result.method == TsneMethod::kAuto)
    result.method = n <= options.exact_max_points ? TsneMethod::kExact : TsneMethod::kBarnesHut;
  check_option(result.method != TsneMethod::kExact || n <= kExactLimit, kStage,
               "the exact method keeps N² probabilities (" + std::to_string(n * n * 8 / (1 << 20)) + " MiB for " +
                   std::to_string(n) + " points); use barnes_hut beyond " + std::to_string(kExactLimit) + " points");
  result.learning_rate = options.learning_rate
                             ? *options.learning_rate
                             : std::max(static_cast<double>(n) / options.early_exaggeration / 4.0, 50.0);
  const int threads = resolve_threads(options.threads);

  std::vector<double> dense;
  TsneSparseP sparse;
  if (result.method == TsneMethod::kExact)
    dense = tsne_joint_probabilities(points, n, d, result.perplexity, threads);
  else
    sparse = tsne_joint_probabilities_nn(points, n, d, result.perplexity, threads);
  result.affinity_seconds = seconds_since(start);
  const auto optimisation_start = std::chrono::steady_clock::now();

  std::vector<double> y = tsne_initial_embedding(points, n, d, options);
  auto objective = [&](const double* pos, double exaggeration, double* gradient, bool compute_kl) {
    return result.method == TsneMethod::kExact
               ? tsne_gradient_exact(dense, pos, n, exaggeration, gradient, compute_kl, threads)
               : tsne_gradient_barnes_hut(sparse, pos, options.theta, exaggeration, gradient, compute_kl, threads);
  };
  // Two phases as scikit-learn's _tsne: exaggerated with low momentum, then the rest.
  const int64_t total = options.iterations;
  const int64_t explore = std::min<int64_t>(options.exaggeration_iterations, total);
  double kl = std::numeric_limits<double>::quiet_NaN();
  int64_t last = -1;
  bool last_exaggerated = false;
  if (explore > 0) {
    last = descend(objective, y, 0, explore, options.momentum, options.early_exaggeration,
                   options.exaggeration_iterations, options, result.learning_rate, kl, start);
    last_exaggerated = options.early_exaggeration != 1.0;
  }
  if (last + 1 < total) {
    last = descend(objective, y, last + 1, total, options.final_momentum, 1.0, options.iterations_without_progress,
                   options, result.learning_rate, kl, start);
    last_exaggerated = false;
  }
  if (last_exaggerated) {
    // Only exaggerated steps ran: report the plain KL at the final embedding instead.
    std::vector<double> gradient(y.size());
    kl = objective(y.data(), 1.0, gradient.data(), true);
  }
  result.kl_divergence = kl;
  result.iterations = static_cast<int>(last + 1);
  result.embedding = std::move(y);
  result.optimisation_seconds = seconds_since(optimisation_start);
  if (options.on_progress) {
    TsneProgress p;
    p.iteration = result.iterations;
    p.iterations = options.iterations;
    p.kl_divergence = kl;
    p.exaggerated = false;
    p.seconds = seconds_since(start);
    options.on_progress(p);
  }
  return result;
}

}  // namespace defuse
