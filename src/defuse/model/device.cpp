#include "defuse/model/device.h"

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
}

}  // namespace defuse
