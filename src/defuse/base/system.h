// Facts about the running process that change performance: which BLAS is loaded.
#pragma once

#include <string>

namespace defuse {

struct BlasInfo {
  std::string name;    // "openblas", "reference", "none" (no BLAS in this process) or "unknown"
  std::string detail;  // OpenBLAS's configuration string, or the library path
  bool slow() const { return name == "reference"; }
};

// Looks for OpenBLAS's symbols and at the mapped libblas; cheap, no side effects.
BlasInfo detect_blas();

// The warning to print when the BLAS is the slow reference one, or "" when it is fine.
std::string blas_warning(const BlasInfo& info);

}  // namespace defuse

namespace defuse {

// Settings that OpenBLAS and OpenMP read only when they load, set by re-executing the
// program once (unless DEFUSE_NO_REEXEC is set; each only if the user has not set it):
// - OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 and OpenBLAS picked a core without
//   it: OpenBLAS 0.3.21 does not recognise Zen 5 and falls back to AVX2 kernels, at half
//   the SGEMM rate.
// - OMP_WAIT_POLICY=passive: OpenMP threads sleep at barriers instead of spinning. On a
//   shared machine a spinning thread takes the core that the thread it waits for needs
//   (the DP-GMM tests ran 15× slower with the default at a load average of 4; defuse's
//   parallel regions are few and long, so waking costs nothing measurable when idle).
// Otherwise it returns and changes nothing.
void maybe_reexec_for_speed(int argc, char** argv);

}  // namespace defuse
