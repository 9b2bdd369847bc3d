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

// OpenBLAS 0.3.21 does not recognise Zen 5 and falls back to AVX2 kernels, at half the
// SGEMM rate of its SkylakeX (AVX-512) kernels on the same CPU; it reads OPENBLAS_CORETYPE
// only when it loads. When the CPU has AVX-512, OpenBLAS picked a non-AVX-512 core, and the
// user set neither OPENBLAS_CORETYPE nor DEFUSE_NO_REEXEC, this sets OPENBLAS_CORETYPE=SkylakeX
// and re-executes the program once. Otherwise it returns and changes nothing.
void maybe_reexec_for_fast_blas(int argc, char** argv);

}  // namespace defuse
