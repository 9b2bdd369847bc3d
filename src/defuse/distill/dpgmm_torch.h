// A DP-GMM engine on LibTorch tensors, for `--device cuda` (and, on the CPU, as the
// measured alternative to the built-in engine; see docs/dpgmm.md). Lives in defuse_torch.
#pragma once

#include <string>

#include "defuse/distill/dpgmm.h"

namespace defuse {

// An engine factory for DpgmmOptions::engine that runs the E-steps and statistics with
// LibTorch on `device` ("cpu", "cuda", "cuda:N"): dense responsibilities, processed in
// chunks of points so that memory stays O(chunk·(K + D²)) on the device besides the points.
// Throws ConfigError (when the factory is called) for a device this LibTorch cannot use.
DpgmmEngineFactory torch_dpgmm_engine(const std::string& device);

}  // namespace defuse
