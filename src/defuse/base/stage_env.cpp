#include "defuse/base/stage_env.h"

#include <iostream>

#include "defuse/base/progress.h"

namespace defuse {

std::ostream& StageEnv::log() const {
  static std::ostream discard(nullptr);  // no buffer: every write fails, silently
  return err ? *err : discard;
}

bool StageEnv::progress() const { return !quiet && err == &std::cerr && is_terminal(2); }

void StageEnv::info(const std::string& line) const {
  if (!quiet && err) *err << line << "\n" << std::flush;
}

void StageEnv::warn(const std::string& line) const {
  if (err) *err << line << "\n" << std::flush;
}

}  // namespace defuse
