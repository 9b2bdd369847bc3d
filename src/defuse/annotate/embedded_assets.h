// Files embedded in the binary at build time (cmake/embed_assets.cmake), so that the
// labelling page works offline and needs no files beside the executable.
#pragma once

#include <cstddef>
#include <string_view>

namespace defuse {

struct EmbeddedAsset {
  const char* name;           // path relative to the embedded directory, '/'-separated
  const unsigned char* data;  // the file's bytes (followed by one NUL, not counted)
  size_t size;
};

// The page of `defuse annotate`: every file of src/defuse/annotate/assets/, sorted by name.
// Defined in the generated annotate_assets.cpp.
extern const EmbeddedAsset kAnnotateAssets[];
extern const size_t kAnnotateAssetsCount;

// The embedded page file called `name` ("index.html", "app.js", ...), or nullptr.
inline const EmbeddedAsset* find_annotate_asset(std::string_view name) {
  for (size_t i = 0; i < kAnnotateAssetsCount; ++i)
    if (name == kAnnotateAssets[i].name) return &kAnnotateAssets[i];
  return nullptr;
}

}  // namespace defuse
