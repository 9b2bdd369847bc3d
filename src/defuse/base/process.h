// Facts about this process and its peers on this host, for the workspace's bookkeeping
// (who runs a stage, whether a recorded writer is still alive).
#pragma once

#include <cstdint>
#include <string>

namespace defuse {

// The current time as ISO-8601 UTC, "2026-12-02T01:02:03Z".
std::string now_iso();
// This machine's host name ("" if it cannot be read).
std::string host_name();
// True when a process with this pid exists on this host (EPERM counts as alive).
bool process_alive(int64_t pid);

}  // namespace defuse
