// Test support for the torch tests: TorchScript models made in code (no Python needed).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace defuse {
class Vae;
}

namespace defuse::test {

// Writes a TorchScript module (flatten + linear layer, `in_features` -> `classes`) built in
// C++ with torch::jit, as a user's exported classifier would be.
void write_torchscript_linear(const std::filesystem::path& path, int64_t in_features, int64_t classes);

// Writes a TorchScript classifier that returns the same `logits` for every image (a judge
// or classifier whose answer a test knows).
void write_torchscript_constant(const std::filesystem::path& path, const std::vector<float>& logits);

// An untrained VAE for 1-channel side x side images (initialised from the global torch seed):
// small enough for unit tests of the stages that decode.
std::unique_ptr<Vae> make_tiny_vae(int64_t side = 12, int64_t latent = 4, int64_t filters = 8);

// Whether two lists of parameters are equal tensor for tensor (and equally many).
bool same_parameters(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);
// Whether any tensor of two lists of parameters differs (or their counts do).
bool any_parameter_differs(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);

}  // namespace defuse::test
