#include "defuse/pipeline/stage_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/base/system.h"
#include "defuse/base/timing.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"

namespace defuse {

void prepare_compute(const StageEnv& env) {
  // threads 0: $OMP_NUM_THREADS when set (so test runners and schedulers can cap it), else
  // every core (Debian's LibTorch would otherwise start with half of them).
  int threads = env.threads;
  if (threads <= 0) {
    const char* value = std::getenv("OMP_NUM_THREADS");
    threads = value ? std::atoi(value) : 0;
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_compute_threads(threads);
  std::string warning = blas_warning(detect_blas());
  if (!warning.empty()) env.warn(warning);
}

std::string resolve_data_spec(Workspace& workspace, const std::string& given) {
  if (!given.empty()) return given;
  if (auto record = workspace.latest(kClassifierStage); record && record->options.contains("data"))
    return record->options["data"].get<std::string>();
  return kDefaultData;
}

Dataset load_dataset_logged(const StageEnv& env, const std::string& spec, const DataOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  Dataset dataset = load_dataset(spec, options);
  env.info(fmt::format("data: {} ({}x{}x{}, {} classes, {} train / {} test images) in {}", dataset.source,
                       dataset.channels, dataset.height, dataset.width, dataset.num_classes(), dataset.train.size(),
                       dataset.test.size(), format_duration(seconds_since(start))));
  return dataset;
}

std::string percent(double fraction, int decimals) { return fmt::format("{:.{}f}%", 100.0 * fraction, decimals); }

WorkspaceLock hold_workspace(const StageEnv& env, const std::string& command) {
  return WorkspaceLock(env.workspace, command, env.wait, [&](const LockHolder& holder) {
    env.info(fmt::format("{}: waiting for the workspace {}: in use by {}", command, env.workspace, holder.describe()));
  });
}

StageRun run_stage(const StageEnv& env, Workspace& workspace, const std::string& stage, const nlohmann::json& options,
                   const nlohmann::json& inputs, const std::function<Workspace::StageOutput(int64_t)>& body) {
  if (env.skip_unchanged) {
    auto last = workspace.latest(stage);
    if (last && last->fingerprint == stage_fingerprint(stage, options, inputs) && workspace.artifacts_intact(*last)) {
      env.info(skipped_text(*last));
      return {*last, true};
    }
  }
  return {workspace.run_stage(stage, options, inputs, body), false};
}

void take_run(StageResult& result, const StageRun& run) {
  result.summary = run.record.metrics;
  if (run.reused) {
    result.skipped = true;
    result.summary["skipped"] = true;
    result.text = skipped_text(run.record);
  }
}

std::string skipped_text(const StageRecord& record) {
  return fmt::format("{}: up to date (run {}, {}), skipped", record.stage, record.id, record.finished_at);
}

const nlohmann::json& need(const nlohmann::json& object, const std::string& key, const std::string& where) {
  if (!object.is_object() || !object.contains(key))
    throw Error(fmt::format("{} has no '{}' in its result: the stage and its reader disagree (a bug, please report it)",
                            where, key));
  return object.at(key);
}

}  // namespace defuse
