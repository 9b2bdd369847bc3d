// Devices and threads for the torch stages.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace defuse {

// Parses "cpu", "cuda" or "cuda:N". Throws ConfigError for anything else, or when CUDA is
// asked for and this LibTorch has none or the machine has no GPU.
c10::Device parse_device(const std::string& name, const std::string& stage);

// Sets LibTorch's intra-op thread count (Debian's LibTorch starts with half the cores), and
// flushes denormals (flush_denormals).
void set_compute_threads(int threads);

// Treats subnormal floats as zero on the CPU (FTZ/DAZ, torch.set_flush_denormal(True)), on
// the calling thread and LibTorch's intra-op threads. A subnormal operand makes this CPU's
// vector units 10-40x slower (a grouped 11x11 convolution: 0.41-0.82 s against 0.02 s on
// 200 images; bench/denormal_conv.py), and a VAE trained long enough has sigmoid outputs below 1e-19 whose squares
// in the SSIM statistics are subnormal (docs/benchmarks.md, "Time to result: GTSRB");
// values below 1.2e-38 become 0. Returns false where the CPU cannot (not x86).
bool flush_denormals();

// Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16).
bool cpu_has_fast_bf16();
// Throws ConfigError("<stage>: ...") unless `precision` is auto, fp32 or bf16 (a --precision).
void check_precision(const std::string& precision, const std::string& stage);
// "fp32" or "bf16" for a stage's --precision (auto, fp32 or bf16) on `device`: auto is bf16 on
// a CPU with AVX512-BF16, else fp32.
std::string resolve_precision(const std::string& precision, c10::Device device);
// The same for a device by name ("cpu", "cuda", "cuda:1"), without checking that it exists
// (for fingerprints: the stage checks the device itself).
std::string resolve_precision(const std::string& precision, const std::string& device);

// bfloat16 autocast on the CPU for the lifetime of the object (what torch.autocast("cpu")
// does in Python), restoring the previous state afterwards.
class CpuBf16Autocast {
 public:
  CpuBf16Autocast();
  ~CpuBf16Autocast();
  CpuBf16Autocast(const CpuBf16Autocast&) = delete;
  CpuBf16Autocast& operator=(const CpuBf16Autocast&) = delete;

 private:
  bool enabled_;
  int dtype_;  // the previous autocast dtype (a c10::ScalarType)
};

}  // namespace defuse
