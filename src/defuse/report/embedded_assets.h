// The report's style sheet (src/defuse/report/assets/), embedded in the binary at build time
// (cmake/embed_assets.cmake) and inlined into every report, which must open offline.
#pragma once

#include <cstddef>

#include "defuse/base/embedded_asset.h"

namespace defuse {

extern const EmbeddedAsset kReportAssets[];
extern const size_t kReportAssetsCount;

}  // namespace defuse
