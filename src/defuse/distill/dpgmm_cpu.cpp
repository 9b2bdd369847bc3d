// The CPU engine of the DP-GMM (see dpgmm_engine.h): E-steps as one BLAS matrix product
// per block of points, and M-step statistics from sparse responsibilities.
//
// Memory is O(N·K) at most and O(threads·block·(P + K)) otherwise: no N×K×D array is ever
// formed. Per iteration:
//   1. blocks of kBlockRows points, in parallel (OpenMP; BLAS single-threaded inside):
//      features F(x̃) [B, P] and log ρ = F·W + c [B, K] (BLAS GEMM); then either
//      (dense) log-sum-exp per row (vectorised exp), responsibilities and entropy, or
//      (screened: full/tied covariances with a positive floor) the pairs within a margin of
//      their row's maximum become candidates, each is evaluated again exactly in float64
//      in centred form, and rows are normalised over their candidates (screened_pass);
//      either way the entries with r > responsibility_floor are stored per block, sorted
//      by component;
//   2. the statistics N_k, Σ r x and the scatter Σ r (x − x̄_k)(x − x̄_k)ᵀ from the stored
//      entries, block by block into 16 fixed chunks (statistics_by_chunks), centred
//      exactly on x̄_k (no cancellation however far the data lie from 0).
// Every sum is taken in a fixed order (blocks, rows, chunks), so the result does not depend
// on the thread count or on scheduling.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "defuse/base/error.h"
#include "defuse/distill/dpgmm_engine.h"

// Hot loops are compiled for AVX-512 and AVX2 as well as the baseline, picked at load time
// (the build targets generic x86-64; GEMM is OpenBLAS's, dispatched by OpenBLAS itself).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DEFUSE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DEFUSE_CLONES
#endif
// The kernels below are written once and inlined into each clone, so that every clone
// compiles them for its own instruction set.
#if defined(__GNUC__)
#define DEFUSE_KERNEL inline __attribute__((always_inline))
#else
#define DEFUSE_KERNEL inline
#endif

namespace defuse {
namespace {

constexpr int64_t kBlockRows = 1024;  // points per E-step block (F and log ρ stay in L2)
constexpr int64_t kGatherRows = 64;  // rows gathered per SYRK in the scatter
constexpr int64_t kMinEntriesPerThread = 4096;  // M-step work below which one thread is used
constexpr int64_t kStatisticsChunks = 16;  // fixed partial sums of the M-step statistics
constexpr double kCountEpsilon = 10 * std::numeric_limits<double>::epsilon();  // scikit-learn's N_k + 10ε

int resolve_threads(int threads) { return threads > 0 ? threads : std::max(1, omp_get_max_threads()); }

// Called first in every parallel region that calls BLAS: the products there are per block
// and must run on the calling thread. OpenBLAS's OpenMP build runs single-threaded inside
// an active parallel region, but a team of one is not active, and it would then start
// omp_get_max_threads() threads of its own for every small product (ruinous when the
// machine is busy). Setting this task's nthreads ICV makes it use one.
inline void blas_on_this_thread() { omp_set_num_threads(1); }

// e^x for x ≤ 0, written so that the compiler vectorises it (glibc's exp is scalar): Cody–
// Waite reduction x = n·ln2 + r, |r| ≤ ½ln2, a degree-12 Taylor polynomial for e^r (error
// < 2^-52 on that interval), and 2^n built in the exponent bits. Maximum relative error
// 4e-16 against std::exp; 0 below −708 (where e^x is subnormal, < 3e-308).
DEFUSE_KERNEL double exp_nonpositive(double x) {
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kShifter = 6755399441055744.0;  // 1.5·2^52: adding it rounds to an integer
  const double xc = x < -708.0 ? -708.0 : x;
  const double t = xc * kLog2e + kShifter;
  const double n = t - kShifter;
  const double r = xc - n * kLn2Hi - n * kLn2Lo;
  double p = 1.0 / 479001600;
  p = p * r + 1.0 / 39916800;
  p = p * r + 1.0 / 3628800;
  p = p * r + 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  const int64_t exponent = (bits - 0x4338000000000000LL + 1023) << 52;
  double scale;
  std::memcpy(&scale, &exponent, sizeof scale);
  return x < -708.0 ? 0.0 : p * scale;
}

// One point's row of log ρ [K] (plus the per-component offsets c) to responsibilities
// r [K] (Bishop (10.49), normalised with log-sum-exp so nothing overflows). Returns
// log Σ_k ρ_k and stores Σ_k r_k log r_k in *entropy, computed as
// Σ_k e_k (l_k − m) / s − log s with e_k = exp(l_k − m), s = Σ e_k, m = max l (Σ r = 1).
template <typename T>
DEFUSE_KERNEL double normalise_row_impl(const T* log_rho, const double* offset, int64_t k_count, double* r,
                                 double* entropy) {
  double m = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t k = 0; k < k_count; ++k) {
    const double l = static_cast<double>(log_rho[k]) + offset[k];
    r[k] = l;
    m = l > m ? l : m;
  }
  double s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
  for (int64_t k = 0; k < k_count; ++k) {
    const double centred = r[k] - m;
    const double e = exp_nonpositive(centred);
    r[k] = e;
    s += e;
    t += e * centred;
  }
  const double inv = 1.0 / s;
#pragma omp simd
  for (int64_t k = 0; k < k_count; ++k) r[k] *= inv;
  const double log_s = std::log(s);
  *entropy = t * inv - log_s;
  return m + log_s;
}

DEFUSE_CLONES double normalise_row_f64(const double* log_rho, const double* offset, int64_t k_count, double* r,
                                       double* entropy) {
  return normalise_row_impl(log_rho, offset, k_count, r, entropy);
}
DEFUSE_CLONES double normalise_row_f32(const float* log_rho, const double* offset, int64_t k_count, double* r,
                                       double* entropy) {
  return normalise_row_impl(log_rho, offset, k_count, r, entropy);
}
inline double normalise_row(const double* l, const double* c, int64_t k, double* r, double* e) {
  return normalise_row_f64(l, c, k, r, e);
}
inline double normalise_row(const float* l, const double* c, int64_t k, double* r, double* e) {
  return normalise_row_f32(l, c, k, r, e);
}

// F(x − shift) for `rows` points (layout in dpgmm_engine.h).
template <typename T>
DEFUSE_KERNEL void build_features_impl(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type,
                                T* f, int64_t p_count, double* centred) {
  for (int64_t i = 0; i < rows; ++i) {
    const double* xi = x + i * d;
    T* fi = f + i * p_count;
    for (int64_t j = 0; j < d; ++j) centred[j] = xi[j] - shift[j];
    switch (type) {
      case CovarianceType::kFull:
      case CovarianceType::kTied: {
        int64_t p = 0;
        for (int64_t a = 0; a < d; ++a) {
          const double xa = centred[a];
          for (int64_t b = a; b < d; ++b) fi[p + b - a] = static_cast<T>(xa * centred[b]);
          p += d - a;
        }
        for (int64_t j = 0; j < d; ++j) fi[p + j] = static_cast<T>(centred[j]);
        break;
      }
      case CovarianceType::kDiag:
        for (int64_t j = 0; j < d; ++j) {
          fi[j] = static_cast<T>(centred[j] * centred[j]);
          fi[d + j] = static_cast<T>(centred[j]);
        }
        break;
      case CovarianceType::kSpherical: {
        double sq = 0;
        for (int64_t j = 0; j < d; ++j) sq += centred[j] * centred[j];
        fi[0] = static_cast<T>(sq);
        for (int64_t j = 0; j < d; ++j) fi[1 + j] = static_cast<T>(centred[j]);
        break;
      }
    }
  }
}
DEFUSE_CLONES void build_features_f64(const double* x, int64_t rows, int64_t d, const double* shift,
                                      CovarianceType type, double* f, int64_t p, double* centred) {
  build_features_impl(x, rows, d, shift, type, f, p, centred);
}
DEFUSE_CLONES void build_features_f32(const double* x, int64_t rows, int64_t d, const double* shift,
                                      CovarianceType type, float* f, int64_t p, double* centred) {
  build_features_impl(x, rows, d, shift, type, f, p, centred);
}
inline void build_features(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type,
                           double* f, int64_t p, double* centred) {
  build_features_f64(x, rows, d, shift, type, f, p, centred);
}
inline void build_features(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type,
                           float* f, int64_t p, double* centred) {
  build_features_f32(x, rows, d, shift, type, f, p, centred);
}

// C [m, n] = A [m, k] · B [k, n], row-major.
inline void gemm(int64_t m, int64_t n, int64_t k, const double* a, const double* b, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0, a, static_cast<int>(k), b, static_cast<int>(n), 0.0, c, static_cast<int>(n));
}
inline void gemm(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(k), b, static_cast<int>(n), 0.0f, c, static_cast<int>(n));
}

// The responsibilities of one block of points that exceed the floor, sorted by component:
// component k's entries are [offsets[k], offsets[k+1]).
struct BlockEntries {
  std::vector<int32_t> offsets;  // [K + 1]
  std::vector<uint16_t> rows;    // row within the block
  std::vector<double> values;    // r_nk
  std::vector<int32_t> cursor;   // scratch
};

// Sorts a block's responsibilities R [rows, K] into `out` (counting sort by component),
// keeping values > floor: one scan of R collecting (row, component) pairs, then a scatter
// of the (few) kept pairs into component order.
void collect_entries(const double* resp, int64_t rows, int64_t k_count, double floor, BlockEntries& out,
                     std::vector<int32_t>& pairs, const double* row_floor = nullptr) {
  out.offsets.assign(k_count + 1, 0);
  pairs.clear();
  for (int64_t i = 0; i < rows; ++i) {
    const double* ri = resp + i * k_count;
    const double cut = row_floor ? row_floor[i] : floor;
    for (int64_t k = 0; k < k_count; ++k)
      if (ri[k] > cut) pairs.push_back(static_cast<int32_t>(i * k_count + k));
  }
  for (int32_t q : pairs) ++out.offsets[q % k_count + 1];
  for (int64_t k = 0; k < k_count; ++k) out.offsets[k + 1] += out.offsets[k];
  out.rows.resize(pairs.size());
  out.values.resize(pairs.size());
  std::vector<int32_t>& cursor = out.cursor;
  cursor.assign(out.offsets.begin(), out.offsets.end() - 1);
  for (int32_t q : pairs) {
    const int32_t at = cursor[q % k_count]++;
    out.rows[at] = static_cast<uint16_t>(q / k_count);
    out.values[at] = resp[q];
  }
}

// N_k, Σ w r (x − shift) and the centred scatter Σ w r (x − x̄_k)(x − x̄_k)ᵀ of one
// component, from the blocks' entries above `floor`, in block and row order.
// With a `reference` point c near x̄_k (the component's current mean) it takes one pass over
// the rows: with d = x − shift − c, S = Σ w r d dᵀ and s = Σ w r d, the centred scatter is
// S − δsᵀ − sδᵀ + N_k δδᵀ for δ = x̄_k − c, which loses nothing to cancellation while c is
// near x̄_k. Without one it takes two passes (x̄_k first), as scikit-learn.
void component_statistics(int64_t k, const std::vector<BlockEntries>& blocks, const double* x, int64_t d,
                          const double* weight, const double* shift, const double* reference, CovarianceType type,
                          double floor, DpgmmStats& stats, std::vector<double>& gather) {
  const bool full = type == CovarianceType::kFull || type == CovarianceType::kTied;
  double* sums = stats.sums.data() + k * d;
  double* scatter = stats.scatter.data() + k * (full ? d * d : d);
  std::fill(sums, sums + d, 0.0);
  std::fill(scatter, scatter + (full ? d * d : d), 0.0);
  std::vector<double> centre(d, 0.0), first(d, 0.0);
  // Pass 1 (two-pass mode only): N_k and Σ w r (x − shift), then x̄_k is the centre.
  double count = 0;
  if (!reference) {
    for (size_t b = 0; b < blocks.size(); ++b) {
      const BlockEntries& e = blocks[b];
      for (int32_t at = e.offsets[k]; at < e.offsets[k + 1]; ++at) {
        if (!(e.values[at] > floor)) continue;
        const int64_t row = static_cast<int64_t>(b) * kBlockRows + e.rows[at];
        const double wr = weight ? weight[row] * e.values[at] : e.values[at];
        const double* xr = x + row * d;
        count += wr;
        for (int64_t j = 0; j < d; ++j) first[j] += wr * (xr[j] - shift[j]);
      }
    }
    // x̄_k as scikit-learn's _estimate_gaussian_parameters: Σ r x / (N_k + 10ε).
    for (int64_t j = 0; j < d; ++j) centre[j] = first[j] / (count + kCountEpsilon);
  } else {
    std::copy(reference, reference + d, centre.begin());
  }
  // Pass 2: Σ w r d and Σ w r d dᵀ with d = x − shift − centre (gathered rows, BLAS SYRK).
  std::vector<double> offset(d);
  for (int64_t j = 0; j < d; ++j) offset[j] = shift[j] + centre[j];
  double count2 = 0;
  std::vector<double> linear(d, 0.0);
  gather.resize(kGatherRows * d);
  int64_t pending = 0;
  auto flush = [&] {
    if (pending == 0) return;
    // scatter += Aᵀ·A over the gathered rows a = √(w r)·d (upper triangle).
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(d), static_cast<int>(pending), 1.0,
                gather.data(), static_cast<int>(d), 1.0, scatter, static_cast<int>(d));
    pending = 0;
  };
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlockEntries& e = blocks[b];
    for (int32_t at = e.offsets[k]; at < e.offsets[k + 1]; ++at) {
      if (!(e.values[at] > floor)) continue;
      const int64_t row = static_cast<int64_t>(b) * kBlockRows + e.rows[at];
      const double wr = weight ? weight[row] * e.values[at] : e.values[at];
      const double* xr = x + row * d;
      count2 += wr;
      if (full) {
        const double root = std::sqrt(wr);
        double* a = gather.data() + pending * d;
        for (int64_t j = 0; j < d; ++j) {
          const double diff = xr[j] - offset[j];
          linear[j] += wr * diff;
          a[j] = root * diff;
        }
        if (++pending == kGatherRows) flush();
      } else {
        for (int64_t j = 0; j < d; ++j) {
          const double diff = xr[j] - offset[j];
          linear[j] += wr * diff;
          scatter[j] += wr * diff * diff;
        }
      }
    }
  }
  if (full) flush();
  if (!reference) {
    // Centred on x̄_k already: scikit-learn's two-pass result (the linear term is ~0).
    stats.counts[k] = count;
    std::copy(first.begin(), first.end(), sums);
  } else {
    stats.counts[k] = count2;
    std::vector<double> delta(d);
    for (int64_t j = 0; j < d; ++j) {
      sums[j] = linear[j] + count2 * centre[j];
      delta[j] = sums[j] / (count2 + kCountEpsilon) - centre[j];
    }
    if (full) {
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = i; j < d; ++j)
          scatter[i * d + j] += -delta[i] * linear[j] - linear[i] * delta[j] + count2 * delta[i] * delta[j];
    } else {
      for (int64_t j = 0; j < d; ++j) scatter[j] += -2 * delta[j] * linear[j] + count2 * delta[j] * delta[j];
    }
  }
  if (full)
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < i; ++j) scatter[i * d + j] = scatter[j * d + i];
}

// S += AᵀA for A [m, stride] (rows zero-padded to `stride`, a multiple of 8), S [stride,
// stride], upper 8×8 tiles only: each tile's 64 sums stay in registers over the m rows and
// S is written once per call (m rank-one updates would load and store S m times).
DEFUSE_KERNEL void accumulate_gram_impl(double* s, const double* a, int64_t m, int64_t stride) {
  for (int64_t i0 = 0; i0 < stride; i0 += 8)
    for (int64_t j0 = i0; j0 < stride; j0 += 8) {
      double acc[8][8] = {};
      for (int64_t r = 0; r < m; ++r) {
        const double* ar = a + r * stride;
        for (int ii = 0; ii < 8; ++ii) {
          const double ai = ar[i0 + ii];
#pragma omp simd
          for (int jj = 0; jj < 8; ++jj) acc[ii][jj] += ai * ar[j0 + jj];
        }
      }
      for (int ii = 0; ii < 8; ++ii)
#pragma omp simd
        for (int jj = 0; jj < 8; ++jj) s[(i0 + ii) * stride + j0 + jj] += acc[ii][jj];
    }
}
DEFUSE_CLONES void accumulate_gram(double* s, const double* a, int64_t m, int64_t stride) {
  accumulate_gram_impl(s, a, m, stride);
}

// q_r = ‖Uᵀa_r‖² for 4 rows a_r of A [4, stride] (zero-padded) and an upper-triangular
// U [d, stride] (zero-padded): Uᵀa in tiles of 8 outputs × 4 rows held in registers,
// (Uᵀa)_j = Σ_{i≤j} a_i U_ij, each tile of U loaded once for the 4 rows.
DEFUSE_KERNEL void upper_quadratic4_impl(const double* u, const double* a, int64_t d, int64_t stride, double* q) {
  double sum[4] = {0, 0, 0, 0};
  for (int64_t j0 = 0; j0 < d; j0 += 8) {
    double acc[4][8] = {};
    const int64_t rows = std::min(d, j0 + 8);
    for (int64_t i = 0; i < rows; ++i) {
      const double* ui = u + i * stride + j0;
      for (int r = 0; r < 4; ++r) {
        const double ai = a[r * stride + i];
#pragma omp simd
        for (int t = 0; t < 8; ++t) acc[r][t] += ai * ui[t];
      }
    }
    for (int r = 0; r < 4; ++r) {
      double tile = 0;
#pragma omp simd reduction(+ : tile)
      for (int t = 0; t < 8; ++t) tile += acc[r][t] * acc[r][t];
      sum[r] += tile;
    }
  }
  for (int r = 0; r < 4; ++r) q[r] = sum[r];
}
DEFUSE_CLONES void upper_quadratic4(const double* u, const double* a, int64_t d, int64_t stride, double* q) {
  upper_quadratic4_impl(u, a, d, stride, q);
}

// log ρ̃ = log_rho + offset for one row, into out [K] (float64), and its maximum.
template <typename T>
DEFUSE_KERNEL double shifted_row_impl(const T* log_rho, const double* offset, int64_t k_count, double* out) {
  double m = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t k = 0; k < k_count; ++k) {
    const double l = static_cast<double>(log_rho[k]) + offset[k];
    out[k] = l;
    m = l > m ? l : m;
  }
  return m;
}
DEFUSE_CLONES double shifted_row_f64(const double* l, const double* c, int64_t k, double* out) {
  return shifted_row_impl(l, c, k, out);
}
DEFUSE_CLONES double shifted_row_f32(const float* l, const double* c, int64_t k, double* out) {
  return shifted_row_impl(l, c, k, out);
}
inline double shifted_row(const double* l, const double* c, int64_t k, double* out) { return shifted_row_f64(l, c, k, out); }
inline double shifted_row(const float* l, const double* c, int64_t k, double* out) { return shifted_row_f32(l, c, k, out); }

class CpuEngine final : public DpgmmEngine {
 public:
  CpuEngine(const double* x, int64_t n, int64_t d, const double* weight, DpgmmPrecision precision, double floor,
            int threads)
      : x_(x), n_(n), d_(d), weight_(weight), precision_(precision), floor_(floor), threads_(resolve_threads(threads)) {
    const int64_t count = (n + kBlockRows - 1) / kBlockRows;
    blocks_.resize(count);
    block_entropy_.resize(count);
    block_likelihood_.resize(count);
  }

  void expectation(const DpgmmTerms& terms, DpgmmStats& stats) override {
    const int64_t k_count = terms.components;
    if (screening(terms)) {
      screened_pass(terms);
    } else {
      auto on_block = [&](int64_t b, int64_t rows, const double* resp, const double* entropy, const double* lse,
                          std::vector<int32_t>& cursor) {
        double ent = 0, like = 0;
        for (int64_t i = 0; i < rows; ++i) {
          const double w = weight_ ? weight_[b * kBlockRows + i] : 1.0;
          ent += w * entropy[i];
          like += w * lse[i];
        }
        block_entropy_[b] = ent;
        block_likelihood_[b] = like;
        collect_entries(resp, rows, k_count, floor_, blocks_[b], cursor);
      };
      if (precision_ == DpgmmPrecision::kFloat32)
        pass<float>(terms, on_block);
      else
        pass<double>(terms, on_block);
    }
    init_stats(stats, terms.covariance_type, k_count);
    for (size_t b = 0; b < blocks_.size(); ++b) {
      stats.entropy += block_entropy_[b];
      stats.log_likelihood += block_likelihood_[b];
    }
    if (terms.means.size() == static_cast<size_t>(k_count * d_))
      statistics_by_chunks(terms.shift, terms.covariance_type, floor_, terms.means, stats);
    else
      statistics_from_blocks(terms.shift, terms.covariance_type, floor_, stats, &terms.means);
  }

  void responsibilities(const DpgmmTerms& terms, int32_t* labels, double* max_probability, double* all) override {
    const int64_t k_count = terms.components;
    if (screening(terms)) {
      // Responsibilities from the screened entries (pairs screened out are 0).
      screened_pass(terms);
      const int64_t count = static_cast<int64_t>(blocks_.size());
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(std::clamp<int64_t>(count, 1, threads_)))
      for (int64_t b = 0; b < count; ++b) {
        const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
        std::vector<double> best(rows, -1.0);
        std::vector<int32_t> arg(rows, 0);
        const BlockEntries& e = blocks_[b];
        if (all) std::fill(all + r0 * k_count, all + (r0 + rows) * k_count, 0.0);
        for (int64_t k = 0; k < k_count; ++k)
          for (int32_t at = e.offsets[k]; at < e.offsets[k + 1]; ++at) {
            const int64_t i = e.rows[at];
            if (e.values[at] > best[i]) best[i] = e.values[at], arg[i] = static_cast<int32_t>(k);
            if (all) all[(r0 + i) * k_count + k] = e.values[at];
          }
        for (int64_t i = 0; i < rows; ++i) {
          if (labels) labels[r0 + i] = arg[i];
          if (max_probability) max_probability[r0 + i] = best[i];
        }
      }
      return;
    }
    auto on_block = [&](int64_t b, int64_t rows, const double* resp, const double*, const double*,
                        std::vector<int32_t>&) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t row = b * kBlockRows + i;
        const double* ri = resp + i * k_count;
        int64_t best = 0;
        for (int64_t k = 1; k < k_count; ++k)
          if (ri[k] > ri[best]) best = k;  // first maximum, as numpy's argmax
        if (labels) labels[row] = static_cast<int32_t>(best);
        if (max_probability) max_probability[row] = ri[best];
        if (all) std::copy(ri, ri + k_count, all + row * k_count);
      }
    };
    if (precision_ == DpgmmPrecision::kFloat32)
      pass<float>(terms, on_block);
    else
      pass<double>(terms, on_block);
  }

  // Statistics of given responsibilities (dense [N, K] or labels).
  void statistics(const std::vector<double>& shift, CovarianceType type, int64_t k_count, const double* resp,
                  const int32_t* labels, DpgmmStats& stats) {
    const int64_t count = static_cast<int64_t>(blocks_.size());
    const int team = static_cast<int>(std::clamp<int64_t>(count / 16, 1, threads_));
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t b = 0; b < count; ++b) {
      BlockEntries& e = blocks_[b];
      const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
      e.offsets.assign(k_count + 1, 0);
      e.rows.clear();
      e.values.clear();
      if (labels) {
        for (int64_t i = 0; i < rows; ++i)
          if (labels[r0 + i] >= 0) ++e.offsets[labels[r0 + i] + 1];
      } else {
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t k = 0; k < k_count; ++k) e.offsets[k + 1] += resp[(r0 + i) * k_count + k] > 0;
      }
      for (int64_t k = 0; k < k_count; ++k) e.offsets[k + 1] += e.offsets[k];
      e.rows.resize(e.offsets[k_count]);
      e.values.resize(e.offsets[k_count]);
      std::vector<int32_t> cursor(e.offsets.begin(), e.offsets.end() - 1);
      for (int64_t i = 0; i < rows; ++i) {
        if (labels) {
          const int32_t k = labels[r0 + i];
          if (k < 0) continue;
          const int32_t at = cursor[k]++;
          e.rows[at] = static_cast<uint16_t>(i);
          e.values[at] = 1.0;
        } else {
          for (int64_t k = 0; k < k_count; ++k) {
            const double v = resp[(r0 + i) * k_count + k];
            if (v > 0) {
              const int32_t at = cursor[k]++;
              e.rows[at] = static_cast<uint16_t>(i);
              e.values[at] = v;
            }
          }
        }
      }
    }
    init_stats(stats, type, k_count);
    statistics_from_blocks(shift, type, 0.0, stats);
  }

 private:
  void init_stats(DpgmmStats& stats, CovarianceType type, int64_t k_count) const {
    const bool full = type == CovarianceType::kFull || type == CovarianceType::kTied;
    stats.components = k_count;
    stats.dims = d_;
    stats.counts.assign(k_count, 0.0);
    stats.sums.assign(k_count * d_, 0.0);
    stats.scatter.assign(k_count * (full ? d_ * d_ : d_), 0.0);
    stats.entropy = 0;
    stats.log_likelihood = 0;
  }

  void statistics_from_blocks(const std::vector<double>& shift, CovarianceType type, double floor, DpgmmStats& stats,
                              const std::vector<double>* reference = nullptr) {
    const int64_t k_count = stats.components;
    int64_t entries = 0;
    for (const auto& b : blocks_) entries += b.offsets.back();
    // Small jobs run on one thread: waking a team costs more than it saves (and much more
    // when the machine is oversubscribed and spinning threads wait for a core).
    const int team = static_cast<int>(std::clamp<int64_t>(entries / kMinEntriesPerThread, 1, threads_));
#pragma omp parallel num_threads(team)
    {
      blas_on_this_thread();
      std::vector<double> gather;
#pragma omp for schedule(dynamic, 1)
      for (int64_t k = 0; k < k_count; ++k)
        component_statistics(k, blocks_, x_, d_, weight_, shift.data(),
                             reference && !reference->empty() ? reference->data() + k * d_ : nullptr, type, floor,
                             stats, gather);
    }
  }

  // The M-step statistics block by block, while each block's rows are in cache (gathering
  // a component's rows across all N points instead is bound by memory latency once the
  // points outgrow the cache). Each of a fixed number of chunks of consecutive blocks
  // accumulates, for every component, N_k, s = Σ w r d and S = Σ w r d dᵀ with
  // d = x − shift − m_k (m_k the current mean, near x̄_k); the chunks are added in order (so
  // the result does not depend on the thread count), then centred on x̄_k exactly:
  // scatter = S − δsᵀ − sδᵀ + N_k δδᵀ, δ = x̄_k − m_k.
  void statistics_by_chunks(const std::vector<double>& shift, CovarianceType type, double floor,
                            const std::vector<double>& reference, DpgmmStats& stats) {
    const int64_t k_count = stats.components, d = d_;
    const bool full = type == CovarianceType::kFull || type == CovarianceType::kTied;
    const int64_t stride = (d + 7) / 8 * 8;                 // padded row length of the Gram matrices
    const int64_t width = 1 + d + (full ? stride * stride : d);  // count, s, S per component
    const int64_t blocks = static_cast<int64_t>(blocks_.size());
    const int64_t chunks = std::min<int64_t>(kStatisticsChunks, blocks);
    chunk_accumulators_.assign(chunks * k_count * width, 0.0);
    int64_t entries = 0;
    for (const auto& b : blocks_) entries += b.offsets.back();
    const int team = static_cast<int>(std::clamp<int64_t>(std::min(entries / kMinEntriesPerThread, chunks), 1, threads_));
#pragma omp parallel num_threads(team)
    {
      std::vector<double> offset(d), gather(kBlockRows * stride, 0.0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        double* acc = chunk_accumulators_.data() + c * k_count * width;
        for (int64_t b = blocks * c / chunks; b < blocks * (c + 1) / chunks; ++b) {
          const BlockEntries& e = blocks_[b];
          for (int64_t k = 0; k < k_count; ++k) {
            if (e.offsets[k] == e.offsets[k + 1]) continue;
            double* a = acc + k * width;
            for (int64_t j = 0; j < d; ++j) offset[j] = shift[j] + reference[k * d + j];
            int64_t m = 0;
            for (int32_t at = e.offsets[k]; at < e.offsets[k + 1]; ++at) {
              if (!(e.values[at] > floor)) continue;
              const int64_t row = b * kBlockRows + e.rows[at];
              const double wr = weight_ ? weight_[row] * e.values[at] : e.values[at];
              const double* xr = x_ + row * d;
              a[0] += wr;
              if (full) {
                const double root = std::sqrt(wr);
                double* g = gather.data() + m * stride;
                for (int64_t j = 0; j < d; ++j) {
                  const double diff = xr[j] - offset[j];
                  a[1 + j] += wr * diff;
                  g[j] = root * diff;  // padding columns stay 0
                }
                ++m;
              } else {
                for (int64_t j = 0; j < d; ++j) {
                  const double diff = xr[j] - offset[j];
                  a[1 + j] += wr * diff;
                  a[1 + d + j] += wr * diff * diff;
                }
              }
            }
            if (full && m > 0) accumulate_gram(a + 1 + d, gather.data(), m, stride);
          }
        }
      }
    }
    // Sum the chunks in order, then centre on x̄_k.
    std::vector<double> total(k_count * width, 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      const double* acc = chunk_accumulators_.data() + c * k_count * width;
      for (int64_t q = 0; q < k_count * width; ++q) total[q] += acc[q];
    }
    std::vector<double> delta(d);
    for (int64_t k = 0; k < k_count; ++k) {
      const double* t = total.data() + k * width;
      const double count = t[0];
      const double* linear = t + 1;
      const double* square = t + 1 + d;
      stats.counts[k] = count;
      double* sums = stats.sums.data() + k * d;
      for (int64_t j = 0; j < d; ++j) {
        sums[j] = linear[j] + count * reference[k * d + j];
        delta[j] = sums[j] / (count + kCountEpsilon) - reference[k * d + j];
      }
      if (full) {
        // The upper triangle of the padded Gram matrix, mirrored: exactly symmetric.
        double* scatter = stats.scatter.data() + k * d * d;
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = i; j < d; ++j)
            scatter[i * d + j] = scatter[j * d + i] = square[i * stride + j] - delta[i] * linear[j] -
                                                      linear[i] * delta[j] + count * delta[i] * delta[j];
      } else {
        double* scatter = stats.scatter.data() + k * d;
        for (int64_t j = 0; j < d; ++j)
          scatter[j] = square[j] - 2 * delta[j] * linear[j] + count * delta[j] * delta[j];
      }
    }
  }

  // Whether this E-step screens: full or tied covariances (where a pair costs D² and the
  // dense product D²/2 per pair and component), a positive responsibility floor, and
  // terms that carry the centred form.
  bool screening(const DpgmmTerms& terms) const {
    return !dense_only_ && floor_ > 0 && !terms.factors.empty() &&
           (terms.covariance_type == CovarianceType::kFull || terms.covariance_type == CovarianceType::kTied);
  }

  // The screened E-step. (A) per block: the expanded product F·W (in the E-step precision)
  // gives log ρ̃ for every pair; the pairs within `margin` of their row's maximum are
  // candidates, every other pair has r < e^-margin·e^(2·error) and is set to 0.
  // (B) per component: each candidate's log ρ again, exactly, in the centred form
  // c_k − ½‖U_kᵀ(x̃ − m_k)‖² (gathered rows, one BLAS product per 64 of them), which also
  // measures the error of the screen. (C) per block: log-sum-exp over each row's
  // candidates, responsibilities, entropy. Results: blocks_ entries hold exact r for every
  // candidate, block_entropy_ and block_likelihood_ the weighted row sums.
  // The margin is −log(floor) + 10 nats: every responsibility above the floor is a
  // candidate unless the screen errs by 5 nats; if a screen errs by more than 2.5 nats on
  // the candidates (data so badly scaled that float32 loses the quadratic form), it is
  // redone in float64, and if that errs too, the E-step reverts to the dense form.
  void screened_pass(const DpgmmTerms& terms) {
    const double margin = -std::log(floor_) + 10.0;
    for (;;) {
      const double error = precision_ != DpgmmPrecision::kFloat64 && !screen_f64_
                               ? screen_candidates<float>(terms, margin)
                               : screen_candidates<double>(terms, margin);
      if (error <= 2.5) break;
      if (precision_ != DpgmmPrecision::kFloat64 && !screen_f64_) {
        screen_f64_ = true;
        continue;
      }
      dense_only_ = true;  // the caller's next E-steps are dense; this one too
      auto on_block = [&](int64_t b, int64_t rows, const double* resp, const double* entropy, const double* lse,
                          std::vector<int32_t>& cursor) {
        double ent = 0, like = 0;
        for (int64_t i = 0; i < rows; ++i) {
          const double w = weight_ ? weight_[b * kBlockRows + i] : 1.0;
          ent += w * entropy[i];
          like += w * lse[i];
        }
        block_entropy_[b] = ent;
        block_likelihood_[b] = like;
        collect_entries(resp, rows, terms.components, 0.0, blocks_[b], cursor);
      };
      pass<double>(terms, on_block);
      return;
    }
    normalise_candidates();
  }

  // Steps (A) and (B) of screened_pass; returns the largest |screen − exact| over candidates.
  template <typename T>
  double screen_candidates(const DpgmmTerms& terms, double margin) {
    const int64_t k_count = terms.components;
    const int64_t p_count = dpgmm_feature_count(terms.covariance_type, d_);
    std::vector<T> matrix(terms.matrix.begin(), terms.matrix.end());
    const int64_t count = static_cast<int64_t>(blocks_.size());
    std::atomic<int64_t> bad_row{-1};
    {
      const int team = static_cast<int>(std::clamp<int64_t>(count, 1, threads_));
#pragma omp parallel num_threads(team)
      {
        blas_on_this_thread();
        std::vector<T> features(kBlockRows * p_count);
        std::vector<T> log_rho(kBlockRows * k_count);
        std::vector<double> shifted(kBlockRows * k_count), cut(kBlockRows), centred(d_);
        std::vector<int32_t> pairs;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < count; ++b) {
          const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
          build_features(x_ + r0 * d_, rows, d_, terms.shift.data(), terms.covariance_type, features.data(), p_count,
                         centred.data());
          gemm(rows, k_count, p_count, features.data(), matrix.data(), log_rho.data());
          for (int64_t i = 0; i < rows; ++i) {
            const double m = shifted_row(log_rho.data() + i * k_count, terms.offset.data(), k_count,
                                         shifted.data() + i * k_count);
            if (!std::isfinite(m)) {
              int64_t expected = -1;
              bad_row.compare_exchange_strong(expected, r0 + i);
            }
            // Candidates: ≥ m − margin (the maximum itself always is one).
            cut[i] = std::nextafter(m - margin, -std::numeric_limits<double>::infinity());
          }
          collect_entries(shifted.data(), rows, k_count, 0.0, blocks_[b], pairs, cut.data());
        }
      }
    }
    if (bad_row >= 0)
      throw DataError("dpgmm: the log-probability of point " + std::to_string(bad_row.load()) +
                      " is not finite (values too large)");

    // (B) exact log ρ of every candidate, block by block (the block's rows stay in cache).
    const bool tied = terms.covariance_type == CovarianceType::kTied;
    const int64_t d = d_;
    // The factors with rows padded to a multiple of 8 (zeros) for upper_quadratic.
    const int64_t stride = (d + 7) / 8 * 8;
    const int64_t factor_count = tied ? 1 : k_count;
    std::vector<double> padded(factor_count * d * stride, 0.0);
    for (int64_t f = 0; f < factor_count; ++f)
      for (int64_t i = 0; i < d; ++i)
        std::copy(terms.factors.begin() + (f * d + i) * d, terms.factors.begin() + (f * d + i + 1) * d,
                  padded.begin() + (f * d + i) * stride);
    std::vector<double> block_error(count, 0.0);
    {
      const int team = static_cast<int>(std::clamp<int64_t>(count / 4, 1, threads_));
#pragma omp parallel num_threads(team)
      {
        std::vector<double> offset(d), rows4(4 * stride, 0.0), q(4);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < count; ++b) {
          BlockEntries& e = blocks_[b];
          double worst = 0;
          for (int64_t k = 0; k < k_count; ++k) {
            if (e.offsets[k] == e.offsets[k + 1]) continue;
            const double* u = padded.data() + (tied ? 0 : k * d * stride);
            const double* mean = terms.means.data() + k * d;
            for (int64_t j = 0; j < d; ++j) offset[j] = terms.shift[j] + mean[j];
            // Four candidates at a time (the last group padded with zero rows).
            for (int32_t at0 = e.offsets[k]; at0 < e.offsets[k + 1]; at0 += 4) {
              const int32_t group = std::min<int32_t>(4, e.offsets[k + 1] - at0);
              for (int32_t r = 0; r < 4; ++r) {
                double* a = rows4.data() + r * stride;
                if (r < group) {
                  const double* xr = x_ + (b * kBlockRows + e.rows[at0 + r]) * d;
                  for (int64_t j = 0; j < d; ++j) a[j] = xr[j] - offset[j];
                } else {
                  std::fill(a, a + d, 0.0);
                }
              }
              upper_quadratic4(u, rows4.data(), d, stride, q.data());
              for (int32_t r = 0; r < group; ++r) {
                const double exact = terms.constant[k] - 0.5 * q[r];
                worst = std::max(worst, std::fabs(exact - e.values[at0 + r]));
                e.values[at0 + r] = exact;
              }
            }
          }
          block_error[b] = worst;
        }
      }
    }
    return *std::max_element(block_error.begin(), block_error.end());
  }

  // Step (C) of screened_pass: per row, log-sum-exp over its candidates (exact log ρ in
  // blocks_ values) and the responsibilities in their place.
  void normalise_candidates() {
    const int64_t count = static_cast<int64_t>(blocks_.size());
    const int team = static_cast<int>(std::clamp<int64_t>(count / 4, 1, threads_));
#pragma omp parallel num_threads(team)
    {
      std::vector<double> row_max(kBlockRows), row_sum(kBlockRows), row_t(kBlockRows);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < count; ++b) {
        BlockEntries& e = blocks_[b];
        const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
        const int64_t total = e.offsets.back();
        std::fill(row_max.begin(), row_max.begin() + rows, -std::numeric_limits<double>::infinity());
        std::fill(row_sum.begin(), row_sum.begin() + rows, 0.0);
        std::fill(row_t.begin(), row_t.begin() + rows, 0.0);
        for (int64_t at = 0; at < total; ++at) row_max[e.rows[at]] = std::max(row_max[e.rows[at]], e.values[at]);
        for (int64_t at = 0; at < total; ++at) {
          const int64_t i = e.rows[at];
          const double c = e.values[at] - row_max[i];
          const double v = exp_nonpositive(c);
          e.values[at] = v;
          row_sum[i] += v;
          row_t[i] += v * c;
        }
        double ent = 0, like = 0;
        for (int64_t i = 0; i < rows; ++i) {
          const double w = weight_ ? weight_[r0 + i] : 1.0;
          const double log_s = std::log(row_sum[i]);
          ent += w * (row_t[i] / row_sum[i] - log_s);  // Σ r log r
          like += w * (row_max[i] + log_s);
          row_sum[i] = 1.0 / row_sum[i];
        }
        for (int64_t at = 0; at < total; ++at) e.values[at] *= row_sum[e.rows[at]];
        block_entropy_[b] = ent;
        block_likelihood_[b] = like;
      }
    }
  }

  // Runs the dense E-step over every block in parallel and hands each block's
  // responsibilities [rows, K], per-row entropies and log-normalisers to `on_block`.
  template <typename T, typename OnBlock>
  void pass(const DpgmmTerms& terms, OnBlock&& on_block) {
    const int64_t k_count = terms.components;
    const int64_t p_count = dpgmm_feature_count(terms.covariance_type, d_);
    std::vector<T> matrix(terms.matrix.begin(), terms.matrix.end());  // [P, K] in T
    const int64_t count = static_cast<int64_t>(blocks_.size());
    std::atomic<int64_t> bad_row{-1};
    const int team = static_cast<int>(std::clamp<int64_t>(count, 1, threads_));
#pragma omp parallel num_threads(team)
    {
      blas_on_this_thread();
      std::vector<T> features(kBlockRows * p_count);
      std::vector<T> log_rho(kBlockRows * k_count);
      std::vector<double> resp(kBlockRows * k_count);
      std::vector<double> entropy(kBlockRows), lse(kBlockRows), centred(d_);
      std::vector<int32_t> cursor;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < count; ++b) {
        const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
        build_features(x_ + r0 * d_, rows, d_, terms.shift.data(), terms.covariance_type, features.data(), p_count,
                       centred.data());
        gemm(rows, k_count, p_count, features.data(), matrix.data(), log_rho.data());  // log ρ − c
        for (int64_t i = 0; i < rows; ++i) {
          lse[i] = normalise_row(log_rho.data() + i * k_count, terms.offset.data(), k_count,
                                 resp.data() + i * k_count, &entropy[i]);
          if (!std::isfinite(lse[i])) {
            int64_t expected = -1;
            bad_row.compare_exchange_strong(expected, r0 + i);
          }
        }
        on_block(b, rows, resp.data(), entropy.data(), lse.data(), cursor);
      }
    }
    if (bad_row >= 0)
      throw DataError("dpgmm: the log-probability of point " + std::to_string(bad_row.load()) +
                      " is not finite (values too large" +
                      (precision_ == DpgmmPrecision::kFloat32 ? std::string(" for float32?)") : std::string(")")));
  }

  const double* x_;
  int64_t n_, d_;
  const double* weight_;
  DpgmmPrecision precision_;
  double floor_;
  int threads_;
  bool screen_f64_ = false;  // a float32 screen erred: screen in float64
  bool dense_only_ = false;  // a float64 screen erred too: no screening
  std::vector<BlockEntries> blocks_;
  std::vector<double> block_entropy_, block_likelihood_;
  std::vector<double> chunk_accumulators_;  // [chunks, K, 1 + D + D²] (statistics_by_chunks)
};

}  // namespace

int64_t dpgmm_feature_count(CovarianceType type, int64_t dims) {
  switch (type) {
    case CovarianceType::kFull:
    case CovarianceType::kTied:
      return dims * (dims + 1) / 2 + dims;
    case CovarianceType::kDiag:
      return 2 * dims;
    case CovarianceType::kSpherical:
      return dims + 1;
  }
  return 0;
}

std::unique_ptr<DpgmmEngine> make_cpu_dpgmm_engine(const double* points, int64_t n, int64_t d,
                                                   const double* sample_weight, const DpgmmOptions& options) {
  return std::make_unique<CpuEngine>(points, n, d, sample_weight, options.precision, options.responsibility_floor,
                                     options.threads);
}

void dpgmm_statistics(const double* points, int64_t n, int64_t d, const double* sample_weight,
                      const std::vector<double>& shift, CovarianceType type, int64_t components,
                      const double* responsibilities, const int32_t* labels, int threads, DpgmmStats& stats) {
  CpuEngine engine(points, n, d, sample_weight, DpgmmPrecision::kFloat64, 0.0, threads);
  engine.statistics(shift, type, components, responsibilities, labels, stats);
}

}  // namespace defuse
