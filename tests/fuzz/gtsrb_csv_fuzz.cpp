// libFuzzer target: GTSRB ground-truth CSV parsing. Bad input must end in DataError; any
// other outcome (crash, sanitizer report, other exception, broken postcondition) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto rows = defuse::parse_gtsrb_csv(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.csv");
    for (const defuse::GtsrbRow& row : rows) {
      // What read_gtsrb relies on to crop without checks of its own.
      if (row.filename.empty() || row.x1 < 0 || row.y1 < 0 || row.x1 >= row.x2 || row.y1 >= row.y2 ||
          row.x2 > row.width || row.y2 > row.height || row.class_id < 0 || row.class_id >= 43) {
        __builtin_trap();
      }
    }
  } catch (const defuse::DataError&) {
  }
  return 0;
}
