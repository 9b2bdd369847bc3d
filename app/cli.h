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

namespace CLI {
class App;
}

namespace defuse::cli {

// What every subcommand receives when it runs.
struct Context {
  std::ostream* out = nullptr;  // stdout: results; with --json exactly one JSON object
  std::ostream* err = nullptr;  // stderr: logs, progress, tables
  std::string workspace = "runs/default";
  std::string device = "cpu";
  int threads = 0;  // 0 = every core
  bool json = false;
  bool quiet = false;
  bool skip_unchanged = false;  // --skip-unchanged: reuse a stage's last run when nothing changed
  bool wait = false;            // --wait: wait for another writer of the workspace instead of stopping
  int exit_code = 0;            // what the command returns when it ends without an error (check: 9 on a failed scenario)

  // Progress bars only on a terminal, and never with --quiet.
  bool progress() const;
  // A line on stderr unless --quiet.
  void info(const std::string& line) const;
  // A warning on stderr, even with --quiet.
  void warn(const std::string& line) const;
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

// Applies --threads to LibTorch and warns about a slow BLAS. Call at the start of actions
// that compute.
void prepare_compute(Context& ctx);

// The long option names ("samples", "max-seeds") of subcommand `name`; empty when there is
// no such subcommand. (`defuse run` checks its configuration against them.)
std::vector<std::string> subcommand_options(const std::string& name);

// Parses `args` (args[0] is the program name) and runs the chosen subcommand.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace defuse::cli
