// The bound screen of the CPU engine's E-step (dpgmm_cpu.cpp, docs/dpgmm.md): for full
// and tied covariances, a certified upper bound on log ρ_nk for every pair from one
// float32 [rows, D]·[D, 2K] product, which leaves a few candidate components per point for
// the exact evaluation, instead of the K of the dense product. Steps (A)–(B) of the
// screened E-step; the engine evaluates the candidates exactly and normalises them.
// Internal to the distill module.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "defuse/distill/dpgmm_blocks.h"
#include "defuse/distill/dpgmm_engine.h"

namespace defuse::dpgmm_cpu {

class BoundScreen {
 public:
  // For the E-step under `terms`, per component the terms of its bound: ‖m_k‖², ‖m_k‖, the certified
  // U_kU_kᵀ ⪰ λ_k(I − v_kv_kᵀ) + flat_k·v_kv_kᵀ of dpgmm_precision_bound (warm-started from
  // the last E-step's eigenvectors) as ½λ_k and ½(λ_k − flat_k), v_k·m_k, and the matrix
  // [m_1 … m_K, v_1 … v_K]ᵀ [2K, D] of the screen's product.
  // `d` is the points' dimension, `threads` the most threads to use (for the precision bounds).
  void prepare(const DpgmmTerms& terms, int64_t d, int threads);

  // (A)–(B) of the bound screen for block b: for each point the bound u_k ≥ log ρ_k of every
  // component (bound_row, from one float32 [rows, D]·[D, 2K] product), the exact log ρ of the
  // component with the highest bound (ℓ*),
  // and as candidates every component with u_k ≥ ℓ* − margin: any other has
  // log ρ_k ≤ u_k < ℓ* − margin ≤ max_j log ρ_j − margin. The block's entries get the
  // candidates (values: their bounds). Returns the number of candidates.
  // The points are x [n, d]; `padded` holds the factors U_k with rows padded to a multiple
  // of 8 (zeros); the first row whose exact log ρ is not finite goes to `bad_row`.
  int64_t screen_block(const double* x, int64_t n, int64_t d, int64_t b, const DpgmmTerms& terms, const double* padded,
                       double margin, BlockScratch& s, BlockEntries& entries, std::atomic<int64_t>& bad_row) const;

 private:
  std::vector<double> mean_norm2_, mean_norm_, mean_dot_, half_lambda_, half_excess_;  // [K] each
  std::vector<float> bound_matrix_;  // [2K, D] means, then flattest directions
  std::vector<double> eigen_guess_;  // [K or 1, 2, D] eigenvector estimates, kept between E-steps
};

}  // namespace defuse::dpgmm_cpu
