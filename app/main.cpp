// The `defuse` executable: everything lives in run_cli (app/cli.cpp) so the tests can run
// the same code in-process.
#include <iostream>

#include "cli.h"
#include "defuse/base/system.h"

int main(int argc, char** argv) {
  defuse::maybe_reexec_for_speed(argc, argv);
  defuse::keep_freed_memory();
  std::vector<std::string> args(argv, argv + argc);
  return defuse::cli::run_cli(args, std::cout, std::cerr);
}
