#include "cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/base/system.h"
#include "defuse/model/device.h"

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

  try {
    if (action) action(ctx);
    return ctx.exit_code;
  } catch (...) {
    return print_current_error(err);
  }
}

int print_current_error(std::ostream& err) {
  try {
    throw;
  } catch (const Error& e) {
    err << "defuse: " << first_line(e.what()) << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    err << "defuse: torch: " << first_line(e.what_without_backtrace()) << "\n";
    return kExitInternal;
  } catch (const std::bad_alloc&) {
    err << "defuse: out of memory\n";
    return kExitInternal;
  } catch (const std::exception& e) {
    err << "defuse: " << first_line(e.what()) << "\n";
    return kExitInternal;
  } catch (...) {
    err << "defuse: an unknown error\n";
    return kExitInternal;
  }
}

}  // namespace defuse::cli
