// Atomic file writes (DESIGN §2): write to a temporary file in the same directory, fsync,
// rename over the target, fsync the directory. A reader (or a later stage) sees either the
// old complete file or the new complete file, never a half-written one, even after SIGKILL.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace defuse {

// Writes `bytes` to `path` atomically. Throws IoError naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Calls `write(tmp_path)` to let a library that insists on a file name (torch::save, matio)
// write to a temporary sibling of `path`, then fsyncs and renames it over `path`. On any
// exception the temporary file is removed and the exception propagates.
void write_atomic_via(const std::filesystem::path& path,
                      const std::function<void(const std::filesystem::path& tmp)>& write);

// Reads a whole file. Throws IoError naming the path if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path);

// Removes temporary files left behind by writers that were killed (`*.tmp-defuse-<pid>-*`
// whose process is gone; a live writer's temporaries stay).
// Returns how many were removed.
int remove_stale_temporaries(const std::filesystem::path& dir);

}  // namespace defuse
