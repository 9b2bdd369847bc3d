#include "cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "defuse/base/error.h"
#include "defuse/base/launch_env.h"
#include "defuse/base/local_launch.h"
#include "defuse/base/progress.h"
#include "defuse/base/system.h"
#include "defuse/dist/world.h"
#include "defuse/model/device.h"
#include "defuse/pipeline/distributed_stage.h"

namespace defuse::cli {

namespace {

struct Entry {
  std::string name, description;
  Setup setup;
  int order;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> entries;
  return entries;
}

// One line, no trailing newline or backtrace (LibTorch's messages carry a C++ backtrace
// after the first line).
std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  std::string line = text.substr(0, end);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// The commands with a worker side (DESIGN §6): on ranks other than 0 they serve rank 0's
// plans; every other command runs on rank 0 alone while the other ranks wait for its end.
const std::set<std::string> kDistributedCommands{"run",       "train-classifier", "train-judges",
                                                 "train-vae", "identify",         "correct"};

// Every rank runs the same defuse and the same command (the options are compared per stage).
void check_same_program(dist::World& world, const std::string& command) {
  const std::string mine = fmt::format("defuse {} (torch {}), command {}", DEFUSE_VERSION, TORCH_VERSION, command);
  const auto all = world.allgather_bytes(mine);
  for (int r = 0; r < world.size(); ++r)
    if (all[static_cast<size_t>(r)] != all[0])
      throw dist::DistError(
          fmt::format("distributed: rank {} runs {}, but rank 0 runs {}: start every rank with the "
                      "same defuse and command",
                      r, all[static_cast<size_t>(r)], all[0]));
}

std::ostream& null_stream() {
  static std::ostream discard(nullptr);
  return discard;
}

}  // namespace

void Context::result(const nlohmann::json& summary, const std::string& text) const {
  if (json) {
    *out << summary.dump() << "\n" << std::flush;
  } else if (!text.empty()) {
    *out << text << "\n" << std::flush;
  }
}

Registrar::Registrar(std::string name, std::string description, Setup setup, int order) {
  registry().push_back({std::move(name), std::move(description), std::move(setup), order});
}

void add_common_options(CLI::App& app, Context& ctx, bool with_workspace) {
  if (with_workspace)
    app.add_option("-w,--workspace", ctx.workspace, "Workspace directory (catalogue defuse.db and artifacts)")
        ->capture_default_str();
  app.add_flag("--json", ctx.json, "Print exactly one JSON object with the result on stdout, nothing else");
  app.add_flag("-q,--quiet", ctx.quiet, "No progress bars or log lines (errors and warnings still go to stderr)");
  app.add_option("--threads", ctx.threads, "CPU threads for LibTorch (0 = $OMP_NUM_THREADS if set, else every core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void add_device_option(CLI::App& app, Context& ctx) {
  app.add_option("--device", ctx.device, "Where to compute: cpu, or cuda[:N] when LibTorch has CUDA")
      ->capture_default_str();
}

void add_distributed_options(CLI::App& app, Context& ctx) {
  app.add_option("--nproc-per-node", ctx.nproc_per_node,
                 "Start this many ranks on this machine and compute together (torch.distributed with Gloo; or "
                 "launch with torchrun, which sets RANK and WORLD_SIZE); --threads is then per rank")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--dist-timeout", ctx.dist_timeout,
                 "Seconds a rank waits for the others in a collective before it stops with an error")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

std::vector<std::string> subcommand_options(const std::string& name) {
  std::vector<std::string> out;
  for (auto& entry : registry()) {
    if (entry.name != name) continue;
    CLI::App app;
    Context ctx;
    entry.setup(app, ctx);
    for (const CLI::Option* option : app.get_options())
      for (const auto& long_name : option->get_lnames()) out.push_back(long_name);
  }
  return out;
}

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"defuse: find, explain and fix the blind spots of image classifiers", "defuse"};
  app.set_version_flag("--version", std::string("defuse ") + DEFUSE_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  Context ctx;
  ctx.out = &out;
  ctx.err = &err;
  Action action;

  auto entries = registry();
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.order < b.order; });
  for (auto& entry : entries) {
    CLI::App* sub = app.add_subcommand(entry.name, entry.description);
    Action sub_action = entry.setup(*sub, ctx);
    sub->callback([&action, sub_action] { action = sub_action; });
  }

  std::vector<std::string> reversed(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, out, err);  // --help, --version
    err << "defuse: " << first_line(e.what()) << "\n";
    if (args.size() <= 1) err << "Run 'defuse --help' for the list of subcommands.\n";
    return kExitUsage;
  }

  const std::string command = app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name();
  std::unique_ptr<dist::World> world;
  std::optional<dist::ScopedWorld> scope;
  try {
    // A distributed start (torchrun, a scheduler, or --nproc-per-node's own ranks): join the
    // group. --nproc-per-node in a plain start: become the launcher of the local ranks.
    const LaunchEnv launch = launch_env_from_process();
    if (!launch.distributed() && ctx.nproc_per_node > 1) {
      LocalLaunch local;
      local.executable = "/proc/self/exe";
      local.argv = args;
      local.nproc = ctx.nproc_per_node;
      local.threads_per_rank = ctx.threads;
      return launch_local_ranks(local, err);
    }
    if (launch.distributed()) {
      dist::InitOptions init;
      init.timeout = std::chrono::milliseconds(static_cast<int64_t>(ctx.dist_timeout * 1000));
      world = dist::init_world(launch, init);
      scope.emplace(world.get());
      check_same_program(*world, command);
      // One GPU per local rank, as PyTorch jobs do: a bare "cuda" means cuda:LOCAL_RANK.
      if (ctx.device == "cuda") ctx.device = "cuda:" + std::to_string(launch.local_rank);
      if (!world->is_root()) {
        // Rank 0 speaks for the run: the others print only warnings and errors.
        ctx.quiet = true;
        ctx.out = &null_stream();
      }
    }
    if (worker_rank() && !kDistributedCommands.count(command))
      serve_rank0(ctx, {});
    else if (action)
      action(ctx);
    end_workers();
    return ctx.exit_code;
  } catch (...) {
    std::string line;
    const int code = print_current_error(err, &line);
    if (root_of_many()) {
      try {
        end_workers(line);
      } catch (...) {
        // The group is gone: the other ranks learn it from their own collectives.
      }
    }
    return code;
  }
}

int print_current_error(std::ostream& err, std::string* line) {
  std::string text;
  int code = kExitInternal;
  try {
    throw;
  } catch (const Error& e) {
    text = first_line(e.what());
    code = e.exit_code();
  } catch (const c10::Error& e) {
    text = "torch: " + first_line(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    text = "out of memory";
  } catch (const std::exception& e) {
    text = first_line(e.what());
  } catch (...) {
    text = "an unknown error";
  }
  if (dist::current_size() > 1) text = fmt::format("[rank {}] {}", dist::current_rank(), text);
  err << "defuse: " << text << "\n";
  if (line) *line = text;
  return code;
}

}  // namespace defuse::cli
