// The certified bound on a precision's quadratic form behind the bound screen of the CPU
// engine's E-step (docs/dpgmm.md). Internal to the distill module and its tests.
#pragma once

#include <cstdint>
#include <vector>

namespace defuse {

// A certified lower bound on the quadratic form of a precision P = U·Uᵀ (U [d, d] upper
// triangular with positive diagonal): P ⪰ λ(I − vvᵀ) + flat·vvᵀ, i.e. for every y
//   yᵀPy ≥ λ‖y‖² − (λ − flat)(v·y)²  (≥ flat·‖y‖²),
// with v the flattest direction of P, flat ≤ λ_min(P) and λ ≤ λ_2(P), each within a few per
// cent of it. Found by power iteration on P⁻¹ (then in v's complement) and certified by
// Cholesky factorisations of P − flat·I and P − λ(I − vvᵀ) − flat·vvᵀ; all 0 when none is
// found, λ = flat when only the first holds. The E-step's bound screen (docs/dpgmm.md).
struct DpgmmPrecisionBound {
  double lambda = 0;
  double flat = 0;
  std::vector<double> direction;  // [d] v, unit length
};
// `guess` [2, d] (nullable) starts the two iterations and receives their eigenvectors.
DpgmmPrecisionBound dpgmm_precision_bound(const double* u, int64_t d, double* guess = nullptr);

}  // namespace defuse
