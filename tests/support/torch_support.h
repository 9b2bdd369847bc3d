// Test support for the torch tests: TorchScript models made in code (no Python needed).
#pragma once

#include <cstdint>
#include <filesystem>


namespace defuse::test {

// Writes a TorchScript module (flatten + linear layer, `in_features` -> `classes`) built in
// C++ with torch::jit, as a user's exported classifier would be.
void write_torchscript_linear(const std::filesystem::path& path, int64_t in_features, int64_t classes);

}  // namespace defuse::test
