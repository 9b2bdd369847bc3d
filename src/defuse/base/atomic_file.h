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

// Writes a directory as a whole (the exports: a test suite, a scenario dataset). The
// constructor checks `dir`: absent, empty, or holding `marker` (a file an earlier export of
// the same kind wrote, so that one is replaced); any other existing path is refused with
// IoError("<stage>: ..."), so nothing of the user's is written over. It removes the
// temporaries of killed writers and makes an empty temporary sibling; write() puts files in
// it; commit() syncs them and puts the directory in place in one step (an existing one is
// swapped out with renameat2(RENAME_EXCHANGE) and removed). Without commit() (an exception,
// a kill) the temporary goes, and `dir` stays as it was.
class DirectoryWrite {
 public:
  DirectoryWrite(const std::filesystem::path& dir, const std::string& marker, const std::string& stage);
  ~DirectoryWrite();
  DirectoryWrite(const DirectoryWrite&) = delete;
  DirectoryWrite& operator=(const DirectoryWrite&) = delete;
  // Writes `bytes` to `relative` (a path inside the directory; parents are created).
  void write(const std::string& relative, std::string_view bytes);
  void commit();

 private:
  std::filesystem::path dir_, tmp_;
  std::string stage_;
  bool committed_ = false;
};

}  // namespace defuse
