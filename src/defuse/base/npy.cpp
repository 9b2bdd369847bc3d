#include "defuse/base/npy.h"

#include <fmt/format.h>

#include "defuse/base/error.h"

namespace defuse {

std::string npy_bytes(const std::string& descr, const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '|')) throw Error("npy: unsupported dtype '" + descr + "'");
  const size_t item = static_cast<size_t>(descr[2] - '0');
  if (item != 1 && item != 2 && item != 4 && item != 8) throw Error("npy: unsupported dtype '" + descr + "'");
  size_t count = 1;
  std::string dims;
  for (int64_t d : shape) {
    if (d < 0) throw Error("npy: negative dimension");
    count *= static_cast<size_t>(d);
    dims += fmt::format("{}, ", d);
  }
  if (shape.size() > 1)
    dims.resize(dims.size() - 2);  // "(3, 4)"; one dimension keeps its comma: "(3,)"
  else if (shape.size() == 1)
    dims.pop_back();
  if (count * item != bytes) throw Error(fmt::format("npy: {} bytes for {} elements of {} bytes", bytes, count, item));
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  // Magic (6) + version (2) + length (2) + header, padded with spaces and ended by '\n' to a
  // multiple of 64 bytes, so that the data is aligned (NumPy's own writer does the same).
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}

}  // namespace defuse
