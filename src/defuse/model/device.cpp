#include "defuse/model/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include "defuse/base/error.h"

namespace defuse {

c10::Device parse_device(const std::string& name, const std::string& stage) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw ConfigError(stage + ": --device " + name + " asked for CUDA, but " +
                        "this LibTorch has no CUDA support or no GPU is visible; use --device cpu");
    c10::Device device(name);
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw ConfigError(stage + ": --device " + name + ": only " + std::to_string(torch::cuda::device_count()) +
                        " GPU(s) visible");
    return device;
  }
  throw ConfigError(stage + ": unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
}

void set_compute_threads(int threads) {
  if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
  flush_denormals();
}

bool flush_denormals() {
  // The calling thread's MXCSR, then every thread of the intra-op pool (one chunk each);
  // threads the pool starts later copy the state of the thread that starts them.
  if (!at::globalContext().setFlushDenormal(true)) return false;
  const int64_t threads = at::get_num_threads();
  at::parallel_for(0, threads, 1, [](int64_t, int64_t) { at::globalContext().setFlushDenormal(true); });
  return true;
}

bool cpu_has_fast_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

void check_precision(const std::string& precision, const std::string& stage) {
  check_option(precision == "auto" || precision == "fp32" || precision == "bf16", stage,
               "unknown --precision '" + precision + "' (expected auto, fp32 or bf16)");
}

std::string resolve_precision(const std::string& precision, c10::Device device) {
  if (precision != "auto") return precision;
  return device.is_cpu() && cpu_has_fast_bf16() ? "bf16" : "fp32";
}

std::string resolve_precision(const std::string& precision, const std::string& device) {
  if (precision != "auto") return precision;
  return device == "cpu" && cpu_has_fast_bf16() ? "bf16" : "fp32";
}

CpuBf16Autocast::CpuBf16Autocast()
    : enabled_(at::autocast::is_cpu_enabled()), dtype_(static_cast<int>(at::autocast::get_autocast_cpu_dtype())) {
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

CpuBf16Autocast::~CpuBf16Autocast() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(enabled_);
  at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(dtype_));
}

}  // namespace defuse
