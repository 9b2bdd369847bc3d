// A file embedded in the binary at build time (cmake/embed_assets.cmake), so that the
// labelling page and the report need no files beside the executable.
#pragma once

#include <cstddef>
#include <string_view>

namespace defuse {

struct EmbeddedAsset {
  const char* name;           // path relative to the embedded directory, '/'-separated
  const unsigned char* data;  // the file's bytes (followed by one NUL, not counted)
  size_t size;

  std::string_view text() const { return {reinterpret_cast<const char*>(data), size}; }
};

// The asset called `name` in a table of `count` (as the generated sources define them), or
// nullptr.
inline const EmbeddedAsset* find_asset(const EmbeddedAsset* assets, size_t count, std::string_view name) {
  for (size_t i = 0; i < count; ++i)
    if (name == assets[i].name) return &assets[i];
  return nullptr;
}

}  // namespace defuse
