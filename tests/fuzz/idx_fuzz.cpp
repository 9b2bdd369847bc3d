// libFuzzer target: IDX parsing, gunzipping first when the input is gzip (as read_data_file
// does). Bad input must end in DataError; any other outcome (crash, sanitizer report, other
// exception, broken postcondition) is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"

namespace {

void check_idx(const uint8_t* data, size_t size) {
  const defuse::IdxArray array = defuse::parse_idx(data, size, "fuzz");
  uint64_t product = 1;
  for (int64_t dim : array.dims) product *= static_cast<uint64_t>(dim);
  if (array.dims.empty() || product != array.data.size()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
      const std::vector<uint8_t> raw = defuse::gunzip(data, size, "fuzz");
      check_idx(raw.data(), raw.size());
    } else {
      check_idx(data, size);
    }
  } catch (const defuse::DataError&) {
  }
  return 0;
}
