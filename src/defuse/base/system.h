// Facts about the running process that change performance: which BLAS is loaded.
#pragma once

#include <cstddef>
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
// - GOMP_SPINCOUNT=10000 (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set): OpenMP threads
//   spin briefly at a barrier, then sleep. libgomp's default spins ~300,000 times: on a
//   shared machine a spinning thread takes the core that the thread it waits for needs
//   (the DP-GMM tests ran 5.7 s instead of 3.1 s at a load average of 4). Sleeping at once
//   (OMP_WAIT_POLICY=passive, what defuse set before) costs a wake-up per operator, and
//   training runs hundreds of short operators per step: 18-20% slower VAE and classifier
//   steps. 10,000 spins keeps training within 2-4% of the default and the loaded DP-GMM
//   tests at 3.7 s (docs/benchmarks.md, "OpenMP waits and memory allocation").
// Otherwise it returns and changes nothing.
void maybe_reexec_for_speed(int argc, char** argv);

// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel:
// allocations up to kMallocMmapThreshold come from the heap (not a fresh mmap each), and the
// heap is trimmed only when more than kMallocTrimThreshold is free at its top. A training
// step frees and reallocates tens of megabytes of activations; with glibc's defaults (a
// dynamic threshold that trims above twice the largest freed block) every step faulted
// those pages in again: 5-16 s of system time in a 23-31 s VAE epoch here (docs/benchmarks.md,
// "OpenMP waits and memory allocation"). Does nothing when the user tunes malloc (GLIBC_TUNABLES or
// MALLOC_*_ environment variables). Returns whether it changed the settings.
inline constexpr size_t kMallocMmapThreshold = size_t{256} << 20;
inline constexpr size_t kMallocTrimThreshold = size_t{1} << 30;
bool keep_freed_memory();

}  // namespace defuse
