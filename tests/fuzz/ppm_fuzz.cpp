// libFuzzer target: binary PPM/PGM decoding. Bad input must end in DataError; any other
// outcome (crash, sanitizer report, other exception, broken postcondition) is a bug.
#include <cstddef>
#include <cstdint>

#include "defuse/base/error.h"
#include "defuse/base/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const defuse::Image image = defuse::decode_ppm(data, size, "fuzz.ppm");
    if ((image.channels != 1 && image.channels != 3) || image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<size_t>(image.width * image.height * image.channels)) {
      __builtin_trap();
    }
  } catch (const defuse::DataError&) {
  }
  return 0;
}
