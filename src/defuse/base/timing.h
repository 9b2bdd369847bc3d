// Wall-clock timing of stages and steps, for the seconds that results and progress report.
// Header-only and torch-free, so that every module can use it.
#pragma once

#include <chrono>

namespace defuse {

// Seconds elapsed since `start` on the steady clock (immune to changes of the system time).
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace defuse
