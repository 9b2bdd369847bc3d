// The vectorised kernels of the DP-GMM's CPU engine (dpgmm_cpu.cpp): the per-row and
// per-block loops of its E-steps and M-step statistics. Each is compiled for AVX-512, AVX2
// and the baseline (base/simd.h); the _f64/_f32 clones have plain overloads on top, since a
// clone cannot be a template. Internal to the distill module.
#pragma once

#include <cblas.h>

#include <cstdint>
#include <cstring>

#include "defuse/base/simd.h"
#include "defuse/distill/dpgmm.h"

namespace defuse::dpgmm_cpu {

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
double normalise_row_f64(const double* log_rho, const double* offset, int64_t k_count, double* r, double* entropy);
double normalise_row_f32(const float* log_rho, const double* offset, int64_t k_count, double* r, double* entropy);
inline double normalise_row(const double* l, const double* c, int64_t k, double* r, double* e) {
  return normalise_row_f64(l, c, k, r, e);
}
inline double normalise_row(const float* l, const double* c, int64_t k, double* r, double* e) {
  return normalise_row_f32(l, c, k, r, e);
}

// F(x − shift) [rows, p] for `rows` points (layout in dpgmm_engine.h); `centred` [d] is scratch.
void build_features_f64(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type, double* f,
                        int64_t p, double* centred);
void build_features_f32(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type, float* f,
                        int64_t p, double* centred);
inline void build_features(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type,
                           double* f, int64_t p, double* centred) {
  build_features_f64(x, rows, d, shift, type, f, p, centred);
}
inline void build_features(const double* x, int64_t rows, int64_t d, const double* shift, CovarianceType type, float* f,
                           int64_t p, double* centred) {
  build_features_f32(x, rows, d, shift, type, f, p, centred);
}

// C [m, n] = A [m, k] · B [k, n], row-major.
inline void gemm(int64_t m, int64_t n, int64_t k, const double* a, const double* b, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0, a, static_cast<int>(k), b, static_cast<int>(n), 0.0, c, static_cast<int>(n));
}
inline void gemm(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(k), b, static_cast<int>(n), 0.0f, c, static_cast<int>(n));
}

// S += AᵀA for A [m, stride] (rows zero-padded to `stride`, a multiple of 8), S [stride,
// stride], upper 8×8 tiles only: each tile's 64 sums stay in registers over the m rows and
// S is written once per call (m rank-one updates would load and store S m times).
void accumulate_gram(double* s, const double* a, int64_t m, int64_t stride);

// q_r = ‖Uᵀa_r‖² for 8 rows a_r of A [8, stride] (zero-padded) and an upper-triangular
// U [d, stride] (zero-padded): (Uᵀa)_j = Σ_{i≤j} a_i U_ij in tiles of 8 outputs × 8 rows held
// in registers (8 independent accumulators keep the FMA units busy), each tile of U loaded
// once for the 8 rows, the squares summed per lane and reduced once per row. With `limit`
// [8], it returns false as soon as the partial sums (lower bounds of q_r, the terms being
// squares) exceed limit_r for all 8 rows, q then unset; true with q otherwise.
bool upper_quadratic8(const double* u, const double* a, int64_t d, int64_t stride, const double* limit, double* q);

// x̃ = x − shift for `rows` rows [rows, d] into `out` (float32 for the bound screen's
// product) and their squared norms (float64, from the float64 differences).
void centre_rows(const double* x, int64_t rows, int64_t d, const double* shift, float* out, double* norms);

// out = x − y [d].
void subtract(const double* x, const double* y, int64_t d, double* out);

// One entry of the M-step sums: diff = x − offset, linear += wr·diff, g = √wr·diff.
void accumulate_row(const double* x, const double* offset, int64_t d, double wr, double* linear, double* g);

// Appends base + k to `pairs` and u_k to `values` for every k with u_k ≥ cut (in order);
// returns how many. Most components are far below the cut: a vectorised maximum per 16
// skips those chunks, the others are scanned.
int64_t select_candidates(const double* u, int64_t k_count, double cut, int32_t base, int32_t* pairs, double* values);

// log ρ̃ = log_rho + offset for one row, into out [K] (float64), and its maximum.
double shifted_row_f64(const double* l, const double* c, int64_t k, double* out);
double shifted_row_f32(const float* l, const double* c, int64_t k, double* out);
inline double shifted_row(const double* l, const double* c, int64_t k, double* out) {
  return shifted_row_f64(l, c, k, out);
}
inline double shifted_row(const float* l, const double* c, int64_t k, double* out) {
  return shifted_row_f32(l, c, k, out);
}

}  // namespace defuse::dpgmm_cpu
