#include "common.h"

#include <CLI/CLI.hpp>

namespace defuse::cli {

void add_skip_option(CLI::App& app, Context& ctx) {
  app.add_flag("--skip-unchanged", ctx.skip_unchanged,
               "Do nothing when the last complete run of this stage had the same options and inputs and its files "
               "are intact (what `defuse run` does)");
}

void add_wait_option(CLI::App& app, Context& ctx) {
  app.add_flag("--wait", ctx.wait,
               "If another defuse process is writing to the workspace, wait for it to finish instead of stopping");
}

}  // namespace defuse::cli
