// One writer per workspace (DESIGN §2): an advisory lock on `<workspace>/defuse.lock`
// (an open-file-description lock, fcntl F_OFD_SETLK), which the operating system releases when the holder exits or is killed, so a
// dead run never leaves a workspace locked. The holder writes who it is (pid, host, command,
// since when) into the file, for the one line that refuses or keeps waiting a second writer.
//
// Within one process the lock is reentrant: `defuse run` holds it for the whole pipeline and
// every stage it runs takes it again without blocking itself. Readers (status, report, the
// labelling page) never take it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace defuse {

struct LockHolder {
  int64_t pid = 0;
  std::string host;
  std::string command;  // what the holder runs: "identify", "run", ...
  std::string since;    // ISO-8601 UTC

  // "pid 4242 on box (identify, since 2026-12-02T01:02:03Z)"
  std::string describe() const;
};

class WorkspaceLock {
 public:
  // Takes the writer lock of the workspace directory `dir` (created if missing) for
  // `command`. If another process holds it: without `wait`, throws BusyError naming the
  // holder; with `wait`, calls `on_wait(holder)` once and blocks until the lock is free.
  WorkspaceLock(const std::filesystem::path& dir, const std::string& command, bool wait = false,
                const std::function<void(const LockHolder&)>& on_wait = nullptr);
  ~WorkspaceLock();
  WorkspaceLock(const WorkspaceLock&) = delete;
  WorkspaceLock& operator=(const WorkspaceLock&) = delete;

  // The process writing to the workspace at `dir` now, if any (another process or this one).
  static std::optional<LockHolder> holder(const std::filesystem::path& dir);

 private:
  std::string key_;  // the lock file's absolute path: this process's registry key
};

}  // namespace defuse
