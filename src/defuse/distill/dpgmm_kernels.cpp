// The vectorised kernels of the CPU engine (dpgmm_kernels.h). Each is written once as an
// inline template and compiled into several clones (DEFUSE_CLONES), one per instruction set.
#include "defuse/distill/dpgmm_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "defuse/base/simd.h"

namespace defuse {

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

namespace dpgmm_cpu {

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

template <typename T>
DEFUSE_KERNEL double normalise_row_impl(const T* log_rho, const double* offset, int64_t k_count, double* r,
                                        double* entropy) {
  const double m = shifted_row_impl(log_rho, offset, k_count, r);
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

template <typename T>
DEFUSE_KERNEL void build_features_impl(const double* x, int64_t rows, int64_t d, const double* shift,
                                       CovarianceType type, T* f, int64_t p_count, double* centred) {
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

DEFUSE_CLONES bool upper_quadratic8(const double* u, const double* a, int64_t d, int64_t stride, const double* limit,
                                    double* q) {
  double sum[8][8] = {};
  for (int64_t j0 = 0; j0 < d; j0 += 8) {
    double acc[8][8] = {};
    const int64_t rows = std::min(d, j0 + 8);
    for (int64_t i = 0; i < rows; ++i) {
      const double* ui = u + i * stride + j0;
      for (int r = 0; r < 8; ++r) {
        const double ai = a[r * stride + i];
#pragma omp simd
        for (int t = 0; t < 8; ++t) acc[r][t] += ai * ui[t];
      }
    }
    for (int r = 0; r < 8; ++r)
#pragma omp simd
      for (int t = 0; t < 8; ++t) sum[r][t] += acc[r][t] * acc[r][t];
    if (limit && j0 + 8 < d) {
      bool out = true;
      for (int r = 0; r < 8 && out; ++r) {
        double total = 0;
        for (int t = 0; t < 8; ++t) total += sum[r][t];
        out = total > limit[r];
      }
      if (out) return false;
    }
  }
  for (int r = 0; r < 8; ++r) {
    double total = 0;
    for (int t = 0; t < 8; ++t) total += sum[r][t];
    q[r] = total;
  }
  return true;
}

template <typename T>
DEFUSE_KERNEL void centre_rows_impl(const double* x, int64_t rows, int64_t d, const double* shift, T* out,
                                    double* norms) {
  for (int64_t i = 0; i < rows; ++i) {
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < d; ++j) {
      const double v = x[i * d + j] - shift[j];
      out[i * d + j] = static_cast<T>(v);
      sq += v * v;
    }
    norms[i] = sq;
  }
}
DEFUSE_CLONES void centre_rows(const double* x, int64_t rows, int64_t d, const double* shift, float* out,
                               double* norms) {
  centre_rows_impl(x, rows, d, shift, out, norms);
}

DEFUSE_CLONES void subtract(const double* x, const double* y, int64_t d, double* out) {
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) out[j] = x[j] - y[j];
}

DEFUSE_CLONES void accumulate_row(const double* x, const double* offset, int64_t d, double wr, double* linear,
                                  double* g) {
  const double root = std::sqrt(wr);
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) {
    const double diff = x[j] - offset[j];
    linear[j] += wr * diff;
    g[j] = root * diff;
  }
}

DEFUSE_CLONES int64_t select_candidates(const double* u, int64_t k_count, double cut, int32_t base, int32_t* pairs,
                                        double* values) {
  int64_t count = 0;
  for (int64_t k0 = 0; k0 < k_count; k0 += 16) {
    const int64_t k1 = std::min<int64_t>(k0 + 16, k_count);
    double top = -std::numeric_limits<double>::infinity();
#pragma omp simd reduction(max : top)
    for (int64_t k = k0; k < k1; ++k) top = u[k] > top ? u[k] : top;
    if (!(top >= cut)) continue;
    for (int64_t k = k0; k < k1; ++k)
      if (u[k] >= cut) {
        pairs[count] = base + static_cast<int32_t>(k);
        values[count] = u[k];
        ++count;
      }
  }
  return count;
}

}  // namespace dpgmm_cpu
}  // namespace defuse
