// Where a pipeline stage runs and how it talks (DESIGN §2): the workspace, the device and
// threads, and its log. The library's stage drivers (src/defuse/pipeline) take one; the
// CLI's Context is one, with stdout and an exit code added. Torch-free.
#pragma once

#include <ostream>
#include <string>

namespace defuse {

struct StageEnv {
  std::ostream* err = nullptr;  // logs, progress, tables (stderr in the CLI); nullptr: silent
  std::string workspace = "runs/default";
  std::string device = "cpu";
  int threads = 0;              // 0 = $OMP_NUM_THREADS if set, else every core
  bool json = false;            // the caller wants the result as data: no tables on the log
  bool quiet = false;           // no progress bars or log lines (warnings still go out)
  bool skip_unchanged = false;  // reuse a stage's last run when its options and inputs match
  bool wait = false;            // wait for another writer of the workspace instead of stopping

  // The log stream: *err, or a stream that discards everything when err is null.
  std::ostream& log() const;
  // Progress bars only on a terminal, and never with quiet.
  bool progress() const;
  // A line on the log unless quiet.
  void info(const std::string& line) const;
  // A warning on the log, even when quiet.
  void warn(const std::string& line) const;
};

}  // namespace defuse
