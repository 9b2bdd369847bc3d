// The labelling page's files, embedded in the binary at build time (cmake/embed_assets.cmake),
// so that the page works offline and needs no files beside the executable.
#pragma once

#include <cstddef>
#include <string_view>

#include "defuse/base/embedded_asset.h"

namespace defuse {

// The page of `defuse annotate`: every file of src/defuse/annotate/assets/, sorted by name.
// Defined in the generated kAnnotateAssets.cpp.
extern const EmbeddedAsset kAnnotateAssets[];
extern const size_t kAnnotateAssetsCount;

// The embedded page file called `name` ("index.html", "app.js", ...), or nullptr.
inline const EmbeddedAsset* find_annotate_asset(std::string_view name) {
  return find_asset(kAnnotateAssets, kAnnotateAssetsCount, name);
}

}  // namespace defuse
