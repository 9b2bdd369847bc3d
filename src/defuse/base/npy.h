// NumPy's .npy format (version 1.0), written without NumPy: what a data scientist opens with
// numpy.load. Little-endian, C order. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace defuse {

// The bytes of a .npy file holding `data` (`bytes` long) as an array of `shape` whose element
// type is `descr` in NumPy's notation: "<f4" float32, "<i8" int64, "|u1" uint8, "|i1" int8.
// Throws Error when the shape's size times the element size is not `bytes`.
std::string npy_bytes(const std::string& descr, const std::vector<int64_t>& shape, const void* data, size_t bytes);

}  // namespace defuse
