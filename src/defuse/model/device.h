// Devices and threads for the torch stages.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace defuse {

// Parses "cpu", "cuda" or "cuda:N". Throws ConfigError for anything else, or when CUDA is
// asked for and this LibTorch has none or the machine has no GPU.
c10::Device parse_device(const std::string& name, const std::string& stage);

// Sets LibTorch's intra-op thread count (Debian's LibTorch starts with half the cores).
void set_compute_threads(int threads);

}  // namespace defuse
