// The CPU engine of the DP-GMM (see dpgmm_engine.h): E-steps as one BLAS matrix product
// per block of points, and M-step statistics from sparse responsibilities.
//
// Memory is O(N·K) at most and O(threads·block·(P + K)) otherwise: no N×K×D array is ever
// formed. Per iteration, with full or tied covariances and a positive floor (the default):
//   one pass over blocks of kBlockRows points, in parallel (OpenMP over 16 fixed chunks of
//   blocks; BLAS single-threaded inside), each block (bounded_pass):
//   (A) a certified upper bound u_nk ≥ log ρ_nk for every pair from one [rows, D]·[D, 2K]
//       float32 product, its rounding allowed for (‖x − m_k‖² and the component's
//       flattest direction; dpgmm_screen.h, dpgmm_precision_bound.h);
//   (B) the exact log ρ of each point's best-bounded component, ℓ*; candidates are the pairs
//       with u ≥ ℓ* − margin (about 1–5 per point instead of K);
//   (C) every candidate exactly in float64, in centred form; (D) pairs more than
//       −ln(floor) + 5 nats below their row's maximum dropped, the rest normalised;
//   (E) the M-step statistics N_k, Σ r x and the scatter of the block's entries into its
//       chunk's accumulators while its rows are in cache; the chunks are then added in order
//       and the scatter centred exactly on x̄_k (no cancellation however far the data lie
//       from 0).
// Where the bounds leave many candidates, the product screen (the expanded product F·W of
// every pair, then (C)–(D), then the statistics in a second pass) takes over; both keep the
// same pairs, so the result does not depend on the screen. With diag/spherical covariances
// or a zero floor: the dense E-step (F·W, log-sum-exp per row) and the statistics of every
// responsibility above the floor.
// Every sum is taken in a fixed order (blocks, rows, chunks), so the result does not depend
// on the thread count or on scheduling.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "defuse/base/error.h"
#include "defuse/base/threads.h"
#include "defuse/distill/dpgmm_blocks.h"
#include "defuse/distill/dpgmm_engine.h"
#include "defuse/distill/dpgmm_kernels.h"
#include "defuse/distill/dpgmm_screen.h"

namespace defuse {
namespace {

using namespace dpgmm_cpu;  // the engine's kernels and blocks

constexpr int64_t kGatherRows = 64;             // rows gathered per SYRK in the scatter
constexpr int64_t kMinEntriesPerThread = 4096;  // M-step work below which one thread is used
constexpr int64_t kStatisticsChunks = 16;       // fixed partial sums of the M-step statistics
constexpr double kCountEpsilon = 10 * std::numeric_limits<double>::epsilon();  // scikit-learn's N_k + 10ε

// Calls f(row, w·r) for each of component k's entries above `floor` in `blocks`, in block
// and row order (w = the row's sample weight, or 1).
template <typename F>
void for_each_entry(int64_t k, const std::vector<BlockEntries>& blocks, const double* weight, double floor, F&& f) {
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlockEntries& e = blocks[b];
    for (int32_t at = e.offsets[k]; at < e.offsets[k + 1]; ++at) {
      if (!(e.values[at] > floor)) continue;
      const int64_t row = static_cast<int64_t>(b) * kBlockRows + e.rows[at];
      f(row, weight ? weight[row] * e.values[at] : e.values[at]);
    }
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
    for_each_entry(k, blocks, weight, floor, [&](int64_t row, double wr) {
      const double* xr = x + row * d;
      count += wr;
      for (int64_t j = 0; j < d; ++j) first[j] += wr * (xr[j] - shift[j]);
    });
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
  for_each_entry(k, blocks, weight, floor, [&](int64_t row, double wr) {
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
  });
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

class CpuEngine final : public DpgmmEngine {
 public:
  CpuEngine(const double* x, int64_t n, int64_t d, const double* weight, DpgmmPrecision precision, double floor,
            int threads, DpgmmScreen screen = DpgmmScreen::kAuto)
      : x_(x),
        n_(n),
        d_(d),
        weight_(weight),
        precision_(precision),
        floor_(floor),
        threads_(resolve_threads(threads)),
        screen_(screen) {
    const int64_t count = (n + kBlockRows - 1) / kBlockRows;
    blocks_.resize(count);
    block_entropy_.resize(count);
    block_likelihood_.resize(count);
  }

  void expectation(const DpgmmTerms& terms, DpgmmStats& stats) override {
    const int64_t k_count = terms.components;
    init_stats(stats, terms.covariance_type, k_count);
    bool have_statistics = false;
    if (screening(terms)) {
      have_statistics = screened_pass(terms, &stats);
    } else {
      if (precision_ == DpgmmPrecision::kFloat32)
        dense_pass<float>(terms, floor_);
      else
        dense_pass<double>(terms, floor_);
    }
    for (size_t b = 0; b < blocks_.size(); ++b) {
      stats.entropy += block_entropy_[b];
      stats.log_likelihood += block_likelihood_[b];
    }
    if (have_statistics) return;
    if (terms.means.size() == static_cast<size_t>(k_count * d_))
      statistics_by_chunks(terms.shift, terms.covariance_type, floor_, terms.means, stats);
    else
      statistics_from_blocks(terms.shift, terms.covariance_type, floor_, stats, &terms.means);
  }

  void responsibilities(const DpgmmTerms& terms, int32_t* labels, double* max_probability, double* all) override {
    const int64_t k_count = terms.components;
    if (screening(terms)) {
      // Responsibilities from the screened entries (pairs screened out are 0).
      screened_pass(terms, nullptr);
      const int64_t count = static_cast<int64_t>(blocks_.size());
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(std::clamp <int64_t>(count, 1, threads_)))
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

  // Width of one component's accumulator in statistics_by_chunks and the fused bound pass:
  // N_k, s [D], then S [stride, stride] (full/tied, rows padded to a multiple of 8) or its
  // diagonal [D].
  int64_t accumulator_width(bool full) const {
    const int64_t stride = (d_ + 7) / 8 * 8;
    return 1 + d_ + (full ? stride * stride : d_);
  }

  // Adds block b's entries above `floor` to `acc` [K, width]: for each component N_k,
  // s = Σ w r d and S = Σ w r d dᵀ with d = x − shift − reference_k (S by the register-tiled
  // Gram kernel over the component's gathered rows). Scratch: offset [D],
  // gather [kBlockRows, stride] (its padding columns stay 0).
  void accumulate_block(int64_t b, const double* shift, const double* reference, bool full, double floor,
                        int64_t k_count, double* acc, std::vector<double>& offset, std::vector<double>& gather) const {
    const int64_t d = d_, stride = (d + 7) / 8 * 8, width = accumulator_width(full);
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
          accumulate_row(xr, offset.data(), d, wr, a + 1, gather.data() + m * stride);
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

  // The statistics from the first `chunks` accumulators of chunk_accumulators_, added in
  // chunk order, then centred on x̄_k exactly: scatter = S − δsᵀ − sδᵀ + N_k δδᵀ,
  // δ = x̄_k − m_k (m_k = reference_k).
  void finish_statistics(const std::vector<double>& reference, bool full, int64_t chunks, DpgmmStats& stats) const {
    const int64_t k_count = stats.components, d = d_, stride = (d + 7) / 8 * 8, width = accumulator_width(full);
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
            scatter[i * d + j] = scatter[j * d + i] =
                square[i * stride + j] - delta[i] * linear[j] - linear[i] * delta[j] + count * delta[i] * delta[j];
      } else {
        double* scatter = stats.scatter.data() + k * d;
        for (int64_t j = 0; j < d; ++j) scatter[j] = square[j] - 2 * delta[j] * linear[j] + count * delta[j] * delta[j];
      }
    }
  }

  // The M-step statistics block by block, while each block's rows are in cache (gathering
  // a component's rows across all N points instead is bound by memory latency once the
  // points outgrow the cache). Each of a fixed number of chunks of consecutive blocks
  // accumulates its blocks (accumulate_block); the chunks are added in order, so the result
  // does not depend on the thread count (finish_statistics).
  void statistics_by_chunks(const std::vector<double>& shift, CovarianceType type, double floor,
                            const std::vector<double>& reference, DpgmmStats& stats) {
    const int64_t k_count = stats.components, d = d_;
    const bool full = type == CovarianceType::kFull || type == CovarianceType::kTied;
    const int64_t stride = (d + 7) / 8 * 8;
    const int64_t width = accumulator_width(full);
    const int64_t blocks = static_cast<int64_t>(blocks_.size());
    const int64_t chunks = std::min<int64_t>(kStatisticsChunks, blocks);
    chunk_accumulators_.assign(chunks * k_count * width, 0.0);
    int64_t entries = 0;
    for (const auto& b : blocks_) entries += b.offsets.back();
    const int team =
        static_cast<int>(std::clamp<int64_t>(std::min(entries / kMinEntriesPerThread, chunks), 1, threads_));
#pragma omp parallel num_threads(team)
    {
      std::vector<double> offset(d), gather(kBlockRows * stride, 0.0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c)
        for (int64_t b = blocks * c / chunks; b < blocks * (c + 1) / chunks; ++b)
          accumulate_block(b, shift.data(), reference.data(), full, floor, k_count,
                           chunk_accumulators_.data() + c * k_count * width, offset, gather);
    }
    finish_statistics(reference, full, chunks, stats);
  }

  // Whether this E-step screens: full or tied covariances (where a pair costs D² and the
  // dense product D²/2 per pair and component), a positive responsibility floor, and
  // terms that carry the centred form.
  bool screening(const DpgmmTerms& terms) const {
    return !dense_only_ && floor_ > 0 && !terms.factors.empty() &&
           (terms.covariance_type == CovarianceType::kFull || terms.covariance_type == CovarianceType::kTied);
  }

  // The screened E-step's margins (nats). Candidates: within candidate_margin of the row's
  // best (by the screen); kept after the exact evaluation: within keep_margin of the row's
  // exact maximum. The 5 nats between them absorb a product screen's error (≤ 2.5 nats,
  // checked) on both ends, so that every screen keeps the same pairs and gives the same
  // result; a pair left out has r < e^−keep_margin ≤ floor·e^−5.
  double candidate_margin() const { return -std::log(floor_) + 10.0; }
  double keep_margin() const { return -std::log(floor_) + 5.0; }

  // The screened E-step over every block: candidates, their exact log ρ, responsibilities,
  // entropy and log-likelihood per block (blocks_, block_entropy_, block_likelihood_). With
  // `stats` the bound screen also accumulates the M-step statistics in the same pass;
  // returns whether it did.
  bool screened_pass(const DpgmmTerms& terms, DpgmmStats* stats) {
    bool bounds = screen_ == DpgmmScreen::kBounds;
    if (screen_ == DpgmmScreen::kAuto) {
      bounds = product_steps_left_ == 0;
      if (!bounds) --product_steps_left_;
    }
    if (bounds) {
      bounded_pass(terms, stats);
      return stats != nullptr;
    }
    product_pass(terms);
    return false;
  }

  // The factors U_k with rows padded to a multiple of 8 (zeros), for upper_quadratic*.
  void pad_factors(const DpgmmTerms& terms) {
    const bool tied = terms.covariance_type == CovarianceType::kTied;
    const int64_t d = d_, stride = (d + 7) / 8 * 8, factor_count = tied ? 1 : terms.components;
    padded_.assign(factor_count * d * stride, 0.0);
    for (int64_t f = 0; f < factor_count; ++f)
      for (int64_t i = 0; i < d; ++i)
        std::copy(terms.factors.begin() + (f * d + i) * d, terms.factors.begin() + (f * d + i + 1) * d,
                  padded_.begin() + (f * d + i) * stride);
  }

  // (C) of both screens for block b: every candidate's log ρ again, exactly, in the centred
  // form c_k − ½‖U_kᵀ(x̃ − m_k)‖² (eight rows of a component at a time), in place of the
  // screen's value. With `cut` [rows] (the bound screen's ℓ* − margin per row), a group of
  // eight whose partial sums already put every row below its cut is not finished: those
  // pairs get −∞ (normalise_block drops them, as it would have anyway since
  // cut < max − keep_margin). Returns the largest |exact − screen| and the largest
  // exact − screen relative to 1 + |exact| (> 0 would mean a bound that is not one).
  std::pair<double, double> exact_block(int64_t b, const DpgmmTerms& terms, BlockScratch& s, const double* cut) {
    const bool tied = terms.covariance_type == CovarianceType::kTied;
    const int64_t k_count = terms.components, d = d_, stride = s.stride;
    BlockEntries& e = blocks_[b];
    double worst = 0, above = 0;
    double q[8], limit[8];
    for (int64_t k = 0; k < k_count; ++k) {
      if (e.offsets[k] == e.offsets[k + 1]) continue;
      const double* u = padded_.data() + (tied ? 0 : k * d * stride);
      const double* mean = terms.means.data() + k * d;
      for (int64_t j = 0; j < d; ++j) s.offset[j] = terms.shift[j] + mean[j];
      // Eight candidates at a time (the last group padded with zero rows, never limiting).
      for (int32_t at0 = e.offsets[k]; at0 < e.offsets[k + 1]; at0 += 8) {
        const int32_t group = std::min<int32_t>(8, e.offsets[k + 1] - at0);
        for (int32_t r = 0; r < 8; ++r) {
          double* a = s.rows8.data() + r * stride;
          if (r < group) {
            subtract(x_ + (b * kBlockRows + e.rows[at0 + r]) * d, s.offset.data(), d, a);
            if (cut) limit[r] = 2.0 * (terms.constant[k] - cut[e.rows[at0 + r]]);
          } else {
            std::fill(a, a + d, 0.0);
            limit[r] = -std::numeric_limits<double>::infinity();
          }
        }
        if (!upper_quadratic8(u, s.rows8.data(), d, stride, cut ? limit : nullptr, q)) {
          for (int32_t r = 0; r < group; ++r) e.values[at0 + r] = -std::numeric_limits<double>::infinity();
          continue;
        }
        for (int32_t r = 0; r < group; ++r) {
          const double exact = terms.constant[k] - 0.5 * q[r];
          const double screen = e.values[at0 + r];
          worst = std::max(worst, std::fabs(exact - screen));
          above = std::max(above, (exact - screen) / (1.0 + std::fabs(exact)));
          e.values[at0 + r] = exact;
        }
      }
    }
    return {worst, above};
  }

  // (D) of both screens for block b: per row, the candidates more than keep_margin below
  // the row's exact maximum are dropped, then log-sum-exp over the rest, responsibilities
  // in their place, and the block's weighted entropy and log-likelihood.
  void normalise_block(int64_t b, BlockScratch& s) {
    BlockEntries& e = blocks_[b];
    const int64_t k_count = static_cast<int64_t>(e.offsets.size()) - 1;
    const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
    double* row_max = s.row_max.data();
    double* row_sum = s.row_sum.data();
    double* row_t = s.row_t.data();
    std::fill(row_max, row_max + rows, -std::numeric_limits<double>::infinity());
    std::fill(row_sum, row_sum + rows, 0.0);
    std::fill(row_t, row_t + rows, 0.0);
    const int64_t total = e.offsets.back();
    for (int64_t at = 0; at < total; ++at) row_max[e.rows[at]] = std::max(row_max[e.rows[at]], e.values[at]);
    // Drop, keeping the component order.
    const double keep = keep_margin();
    int32_t out = 0;
    for (int64_t k = 0; k < k_count; ++k) {
      const int32_t begin = e.offsets[k], end = e.offsets[k + 1];
      e.offsets[k] = out;
      for (int32_t at = begin; at < end; ++at)
        if (e.values[at] >= row_max[e.rows[at]] - keep) {
          e.rows[out] = e.rows[at];
          e.values[out] = e.values[at];
          ++out;
        }
    }
    e.offsets[k_count] = out;
    e.rows.resize(out);
    e.values.resize(out);
    for (int32_t at = 0; at < out; ++at) {
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
    for (int32_t at = 0; at < out; ++at) e.values[at] *= row_sum[e.rows[at]];
    block_entropy_[b] = ent;
    block_likelihood_[b] = like;
  }

  // The bound screen, one pass over the points: per block (A)–(B) BoundScreen::screen_block, (C)
  // exact_block, (D) normalise_block and, with `stats`, the M-step statistics of the block
  // into its chunk's accumulators while its rows are in cache (finish_statistics after).
  // Costs 2·K·D flops per point for the bounds plus ~D² per candidate, instead of the
  // product screen's 2·K·(D(D+1)/2 + D); where the bounds leave more than max(4, K/4)
  // candidates per point (components much flatter in some directions than in others),
  // `auto` uses the product screen for the next 8 E-steps.
  void bounded_pass(const DpgmmTerms& terms, DpgmmStats* stats) {
    const int64_t k_count = terms.components;
    pad_factors(terms);
    bound_screen_.prepare(terms, d_, threads_);
    const int64_t blocks = static_cast<int64_t>(blocks_.size());
    const int64_t chunks = std::min<int64_t>(kStatisticsChunks, blocks);
    const int64_t width = accumulator_width(true);
    if (stats) chunk_accumulators_.assign(chunks * k_count * width, 0.0);
    std::vector<int64_t> candidates(chunks, 0);
    std::vector<double> above(chunks, 0.0);
    std::atomic<int64_t> bad_row{-1};
    const double margin = candidate_margin();
    const int team = static_cast<int>(std::clamp<int64_t>(chunks, 1, threads_));
#pragma omp parallel num_threads(team)
    {
      blas_on_this_thread();
      BlockScratch s(d_, k_count);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c)
        for (int64_t b = blocks * c / chunks; b < blocks * (c + 1) / chunks; ++b) {
          candidates[c] +=
              bound_screen_.screen_block(x_, n_, d_, b, terms, padded_.data(), margin, s, blocks_[b], bad_row);
          above[c] = std::max(above[c], exact_block(b, terms, s, s.cut.data()).second);
          normalise_block(b, s);
          if (stats)
            accumulate_block(b, terms.shift.data(), terms.means.data(), true, floor_, k_count,
                             chunk_accumulators_.data() + c * k_count * width, s.offset, s.gather);
        }
    }
    throw_if_bad_row(bad_row);
    // A bound below an exact value would be a defect here, not a property of the data.
    if (*std::max_element(above.begin(), above.end()) > 1e-9)
      throw std::logic_error("dpgmm: an E-step bound fell below the exact log-probability");
    const int64_t total = std::accumulate(candidates.begin(), candidates.end(), int64_t{0});
    last_candidates_per_point_ = static_cast<double>(total) / static_cast<double>(std::max<int64_t>(n_, 1));
    if (screen_ == DpgmmScreen::kAuto && last_candidates_per_point_ > std::max<double>(4.0, k_count / 4.0))
      product_steps_left_ = 8;
    if (stats) finish_statistics(terms.means, true, chunks, *stats);
  }

  // The product screen. (A) per block: the expanded product F·W (in the E-step precision)
  // gives log ρ̃ for every pair; the pairs within candidate_margin of their row's maximum
  // are candidates. (B) exact_block, which also measures the screen's error; (C)
  // normalise_block. If the screen errs by more than 2.5 nats on the candidates (data so
  // badly scaled that float32 loses the quadratic form), it is redone in float64, and if
  // that errs too, the E-step reverts to the dense form.
  void product_pass(const DpgmmTerms& terms) {
    const double margin = candidate_margin();
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
      dense_pass<double>(terms, 0.0);
      return;
    }
    const int64_t count = static_cast<int64_t>(blocks_.size());
    const int team = static_cast<int>(std::clamp<int64_t>(count / 4, 1, threads_));
#pragma omp parallel num_threads(team)
    {
      BlockScratch s(d_, 0);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < count; ++b) normalise_block(b, s);
    }
  }

  // The expanded product over every block in parallel: per block, log ρ − c = F(x̃)·W
  // [rows, K] in T, handed to on_block(state, b, rows, log_rho, bad_row), where `state` is
  // the thread's own, made by make_state(); then a DataError for a point that on_block noted
  // as not finite (`float32`: the message suggests float32 as the cause).
  template <typename T, typename MakeState, typename OnBlock>
  void for_each_product_block(const DpgmmTerms& terms, bool float32, MakeState&& make_state, OnBlock&& on_block) {
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
      std::vector<double> centred(d_);
      auto state = make_state();
#pragma omp for schedule(static)
      for (int64_t b = 0; b < count; ++b) {
        const int64_t r0 = b * kBlockRows, rows = std::min(kBlockRows, n_ - r0);
        build_features(x_ + r0 * d_, rows, d_, terms.shift.data(), terms.covariance_type, features.data(), p_count,
                       centred.data());
        gemm(rows, k_count, p_count, features.data(), matrix.data(), log_rho.data());  // log ρ − c
        on_block(state, b, rows, log_rho.data(), bad_row);
      }
    }
    throw_if_bad_row(bad_row, float32);
  }

  // (A) and (B) of the product screen; returns the largest |screen − exact| over candidates.
  template <typename T>
  double screen_candidates(const DpgmmTerms& terms, double margin) {
    const int64_t k_count = terms.components;
    const int64_t count = static_cast<int64_t>(blocks_.size());
    struct State {
      std::vector<double> shifted, cut;
      std::vector<int32_t> pairs;
    };
    for_each_product_block<T>(
        terms, false,
        [&] {
          return State{std::vector<double>(kBlockRows * k_count), std::vector<double>(kBlockRows), {}};
        },
        [&](State& s, int64_t b, int64_t rows, const T* log_rho, std::atomic<int64_t>& bad_row) {
          for (int64_t i = 0; i < rows; ++i) {
            const double m =
                shifted_row(log_rho + i * k_count, terms.offset.data(), k_count, s.shifted.data() + i * k_count);
            if (!std::isfinite(m)) note_bad_row(bad_row, b * kBlockRows + i);
            // Candidates: ≥ m − margin (the maximum itself always is one).
            s.cut[i] = std::nextafter(m - margin, -std::numeric_limits<double>::infinity());
          }
          collect_entries(s.shifted.data(), rows, k_count, 0.0, blocks_[b], s.pairs, s.cut.data());
        });
    pad_factors(terms);
    std::vector<double> block_error(count, 0.0);
    {
      const int team = static_cast<int>(std::clamp<int64_t>(count / 4, 1, threads_));
#pragma omp parallel num_threads(team)
      {
        BlockScratch s(d_, 0);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < count; ++b) block_error[b] = exact_block(b, terms, s, nullptr).first;
      }
    }
    return *std::max_element(block_error.begin(), block_error.end());
  }

  // The dense E-step over every block: each block's responsibilities above `floor` as its
  // entries, and its weighted entropy and log-likelihood.
  template <typename T>
  void dense_pass(const DpgmmTerms& terms, double floor) {
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
      collect_entries(resp, rows, terms.components, floor, blocks_[b], cursor);
    };
    pass<T>(terms, on_block);
  }

  // Runs the dense E-step over every block in parallel and hands each block's
  // responsibilities [rows, K], per-row entropies and log-normalisers to `on_block`.
  template <typename T, typename OnBlock>
  void pass(const DpgmmTerms& terms, OnBlock&& on_block) {
    const int64_t k_count = terms.components;
    struct State {
      std::vector<double> resp, entropy, lse;
      std::vector<int32_t> cursor;
    };
    for_each_product_block<T>(
        terms, precision_ == DpgmmPrecision::kFloat32,
        [&] {
          return State{std::vector<double>(kBlockRows * k_count),
                       std::vector<double>(kBlockRows),
                       std::vector<double>(kBlockRows),
                       {}};
        },
        [&](State& s, int64_t b, int64_t rows, const T* log_rho, std::atomic<int64_t>& bad_row) {
          for (int64_t i = 0; i < rows; ++i) {
            s.lse[i] = normalise_row(log_rho + i * k_count, terms.offset.data(), k_count, s.resp.data() + i * k_count,
                                     &s.entropy[i]);
            if (!std::isfinite(s.lse[i])) note_bad_row(bad_row, b * kBlockRows + i);
          }
          on_block(b, rows, s.resp.data(), s.entropy.data(), s.lse.data(), s.cursor);
        });
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
  std::vector<double> chunk_accumulators_;  // [chunks, K, width] (statistics_by_chunks, bounded_pass)
  DpgmmScreen screen_;
  int product_steps_left_ = 0;            // auto: E-steps to run with the product screen before the bounds again
  double last_candidates_per_point_ = 0;  // of the last bound screen
  std::vector<double> padded_;            // factors U_k, rows padded to a multiple of 8
  BoundScreen bound_screen_;              // its terms, kept between E-steps (eigenvector estimates)
};

}  // namespace

std::unique_ptr<DpgmmEngine> make_cpu_dpgmm_engine(const double* points, int64_t n, int64_t d,
                                                   const double* sample_weight, const DpgmmOptions& options) {
  return std::make_unique<CpuEngine>(points, n, d, sample_weight, options.precision, options.responsibility_floor,
                                     options.threads, options.screen);
}

void dpgmm_statistics(const double* points, int64_t n, int64_t d, const double* sample_weight,
                      const std::vector<double>& shift, CovarianceType type, int64_t components,
                      const double* responsibilities, const int32_t* labels, int threads, DpgmmStats& stats) {
  CpuEngine engine(points, n, d, sample_weight, DpgmmPrecision::kFloat64, 0.0, threads);
  engine.statistics(shift, type, components, responsibilities, labels, stats);
}

}  // namespace defuse
