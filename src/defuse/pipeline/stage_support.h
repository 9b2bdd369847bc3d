// What every stage driver of the pipeline (src/defuse/pipeline/*_stage.h) shares: the
// result shape, the writer lock, skip-if-unchanged, the dataset and the compute set-up.
// The CLI's commands and `defuse run` call the drivers; nothing here parses a command line.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "defuse/base/stage_env.h"
#include "defuse/base/workspace.h"
#include "defuse/base/workspace_lock.h"
#include "defuse/data/dataset.h"

namespace defuse {

inline constexpr const char* kDefaultData = "fashion-mnist";

// What a stage driver returns: its figures as stored in the catalogue (plus the paths of what
// it wrote), one line for a person, and whether it was up to date and did not run. Each
// stage's own result type adds the typed figures the rest of the pipeline reads.
struct StageResult {
  nlohmann::json summary = nlohmann::json::object();
  std::string text;
  bool skipped = false;
};

// Applies env.threads to LibTorch ($OMP_NUM_THREADS when 0 and set, else every core) and
// warns about a slow BLAS. Every driver that computes calls it first.
void prepare_compute(const StageEnv& env);

// The --data spec to use: the one given, else the one the workspace's classifier was
// trained on, else the default dataset.
std::string resolve_data_spec(Workspace& workspace, const std::string& given);

// Loads the dataset and logs one line describing it.
Dataset load_dataset_logged(const StageEnv& env, const std::string& spec, const DataOptions& options = {});

// "91.23%"
std::string percent(double fraction, int decimals = 2);

// Takes the workspace's writer lock for `command` (DESIGN §2): a second writer stops at once
// with BusyError naming the holder, or with env.wait says whom it waits for and waits.
WorkspaceLock hold_workspace(const StageEnv& env, const std::string& command);

struct StageRun {
  StageRecord record;
  bool reused = false;  // the stage was up to date and did not run
};

// Workspace::run_stage, unless env.skip_unchanged is set and the latest complete run of
// `stage` has the fingerprint of these options and inputs and intact files: then that run
// is returned with `reused` set, `body` is not called, and a line says so.
StageRun run_stage(const StageEnv& env, Workspace& workspace, const std::string& stage, const nlohmann::json& options,
                   const nlohmann::json& inputs, const std::function<Workspace::StageOutput(int64_t)>& body);

// The stage's result from its run: the stored figures, and when the run was reused, the
// skipped flag (in the summary too) and skipped_text as the line.
void take_run(StageResult& result, const StageRun& run);

// "identify: up to date (run 12, 2026-11-23T16:01:02Z), skipped"
std::string skipped_text(const StageRecord& record);

// A figure a stage's stored result must carry: missing, it is an error naming the stage and
// the key (a renamed metric must stop the pipeline, not read as "0 failures").
const nlohmann::json& need(const nlohmann::json& object, const std::string& key, const std::string& where);

}  // namespace defuse
