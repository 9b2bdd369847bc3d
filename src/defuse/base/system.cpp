#include "defuse/base/system.h"

#include <dlfcn.h>

#include <fstream>
#include <string>

namespace defuse {

BlasInfo detect_blas() {
  using ConfigFn = char* (*)();
  if (auto config = reinterpret_cast<ConfigFn>(::dlsym(RTLD_DEFAULT, "openblas_get_config")))
    return {"openblas", config()};
  // No OpenBLAS symbol: find which libblas is mapped, if any.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path.find("libblas.so") != std::string::npos) return {"reference", path};
    if (path.find("libmkl") != std::string::npos || path.find("libblis") != std::string::npos) return {"unknown", path};
  }
  if (::dlsym(RTLD_DEFAULT, "sgemm_")) return {"unknown", "sgemm_ from an unidentified library"};
  return {"none", ""};
}

std::string blas_warning(const BlasInfo& info) {
  if (!info.slow()) return "";
  return "warning: LibTorch is using the reference BLAS (" + info.detail +
         "), which trains ~3x slower here; install OpenBLAS: apt-get install libopenblas0-openmp";
}

}  // namespace defuse

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace defuse {

namespace {

// Whether OpenBLAS picked a core without AVX-512 on a CPU that has it.
bool blas_misses_avx512() {
  if (!__builtin_cpu_supports("avx512f")) return false;
  using CoreFn = char* (*)();
  auto corename = reinterpret_cast<CoreFn>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename) return false;
  std::string core = corename();
  for (auto& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return core.find("skylakex") == std::string::npos && core.find("cooperlake") == std::string::npos &&
         core.find("sapphire") == std::string::npos;
}

}  // namespace

void maybe_reexec_for_speed(int argc, char** argv) {
  if (std::getenv("DEFUSE_NO_REEXEC")) return;
  bool again = false;
  if (!std::getenv("OPENBLAS_CORETYPE") && blas_misses_avx512()) {
    ::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    again = true;
  }
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    ::setenv("GOMP_SPINCOUNT", "10000", 1);
    again = true;
  }
  if (!again) return;
  ::setenv("DEFUSE_NO_REEXEC", "1", 1);  // never loop
  (void)argc;
  ::execv("/proc/self/exe", argv);
  // execv failed: carry on with the defaults.
}

bool keep_freed_memory() {
  if (std::getenv("GLIBC_TUNABLES") || std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return false;
  // Setting either threshold also turns off glibc's dynamic adjustment of both. Some glibc
  // versions cap the mmap threshold at 32 MiB (half their largest heap): fall back to that.
  const bool mmap_set = ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThreshold)) == 1 ||
                        ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  return mmap_set && ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocTrimThreshold)) == 1;
}

}  // namespace defuse
