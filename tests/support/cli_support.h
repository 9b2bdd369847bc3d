// Running the `defuse` command line in-process from the end-to-end tests (the torch test
// binary links the CLI's command objects).
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "cli.h"

namespace defuse::test {

struct CliResult {
  int code = 0;
  std::string out, err;
};

// Runs `defuse <args...>` and captures its exit code, stdout and stderr.
inline CliResult run_defuse(std::vector<std::string> args) {
  args.insert(args.begin(), "defuse");
  std::ostringstream out, err;
  int code = cli::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

}  // namespace defuse::test
