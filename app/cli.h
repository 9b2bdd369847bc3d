// The `defuse` command line: a registry of subcommands (one cmd_<name>.cpp each), the
// options they all share, and `run_cli`, which parses, runs, and turns exceptions into one
// line on stderr and a distinct exit code. main() and the end-to-end tests both call it.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "defuse/base/stage_env.h"

namespace CLI {
class App;
}

namespace defuse::cli {

// What every subcommand receives when it runs: the stage environment (workspace, device,
// threads, log) and stdout, where its result goes.
struct Context : StageEnv {
  std::ostream* out = nullptr;  // stdout: results; with --json exactly one JSON object
  int exit_code = 0;          // what the command returns when it ends without an error (check: 9 on a failed scenario)
  int nproc_per_node = 0;     // --nproc-per-node: ranks to start on this machine (0, 1: this process alone)
  double dist_timeout = 600;  // --dist-timeout: seconds a collective may wait for a peer

  // The command's result: JSON on stdout with --json, else `text` on stdout (if non-empty).
  void result(const nlohmann::json& summary, const std::string& text) const;
};

using Action = std::function<void(Context&)>;
// Adds a subcommand's options to `app` and returns what to run once they are parsed.
using Setup = std::function<Action(CLI::App& app, Context& ctx)>;

// Registers a subcommand at static-initialisation time (one per cmd_<name>.cpp).
struct Registrar {
  Registrar(std::string name, std::string description, Setup setup, int order);
};

// Options most subcommands take: --workspace, --json, --quiet, --threads.
void add_common_options(CLI::App& app, Context& ctx, bool with_workspace = true);
// --device cpu|cuda
void add_device_option(CLI::App& app, Context& ctx);
// --nproc-per-node, --dist-timeout (the commands that compute on several ranks, DESIGN §6)
void add_distributed_options(CLI::App& app, Context& ctx);

// The long option names ("samples", "max-seeds") of subcommand `name`; empty when there is
// no such subcommand. (`defuse run` checks its configuration against them.)
std::vector<std::string> subcommand_options(const std::string& name);

// Parses `args` (args[0] is the program name) and runs the chosen subcommand.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Inside a catch block: writes the exception being handled as one line ("defuse: ...", no
// backtrace) and returns its exit code; the line (without "defuse: ") in `line` if given.
int print_current_error(std::ostream& err, std::string* line = nullptr);

}  // namespace defuse::cli
