// Helpers shared by the subcommands (app layer only: they combine stages, loading and saving).
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "defuse/base/workspace.h"
#include "defuse/base/workspace_lock.h"
#include "defuse/data/dataset.h"

namespace CLI {
class App;
}

namespace defuse::cli {

inline constexpr const char* kDefaultData = "fashion-mnist";

// The --data spec to use: the one given, else the one the workspace's classifier was
// trained on, else the default dataset.
std::string resolve_data_spec(Workspace& workspace, const std::string& given);

// Loads the dataset and logs one line describing it.
Dataset load_dataset_logged(Context& ctx, const std::string& spec, const DataOptions& options = {});

// "91.23%"
std::string percent(double fraction, int decimals = 2);

// --skip-unchanged (stage commands): skip the stage when its last complete run had the same
// options and inputs and its files are intact.
void add_skip_option(CLI::App& app, Context& ctx);

// --wait (commands that write to the workspace): wait for another writer instead of stopping.
void add_wait_option(CLI::App& app, Context& ctx);

// Takes the workspace's writer lock for `command` (DESIGN §2): a second writer stops at once
// with BusyError naming the holder, or with --wait says whom it waits for and waits.
WorkspaceLock hold_workspace(const Context& ctx, const std::string& command);

struct StageRun {
  StageRecord record;
  bool reused = false;  // the stage was up to date and did not run
};

// Workspace::run_stage, unless ctx.skip_unchanged is set and the latest complete run of
// `stage` has the fingerprint of these options and inputs and intact files: then that run
// is returned with `reused` set, `body` is not called, and a line says so.
StageRun run_stage(Context& ctx, Workspace& workspace, const std::string& stage, const nlohmann::json& options,
                   const nlohmann::json& inputs, const std::function<Workspace::StageOutput(int64_t)>& body);

// "identify: up to date (run 12, 2026-11-23T16:01:02Z), skipped"
std::string skipped_text(const StageRecord& record);

}  // namespace defuse::cli
