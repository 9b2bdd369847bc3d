#include "common.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "defuse/base/progress.h"
#include "defuse/model/classifier_store.h"

namespace defuse::cli {

std::string resolve_data_spec(Workspace& workspace, const std::string& given) {
  if (!given.empty()) return given;
  if (auto record = workspace.latest(kClassifierStage); record && record->options.contains("data"))
    return record->options["data"].get<std::string>();
  return kDefaultData;
}

Dataset load_dataset_logged(Context& ctx, const std::string& spec, const DataOptions& options) {
  Progress timer(*ctx.err, "", 0, false);
  Dataset dataset = load_dataset(spec, options);
  ctx.info(fmt::format("data: {} ({}x{}x{}, {} classes, {} train / {} test images) in {}", dataset.source,
                       dataset.channels, dataset.height, dataset.width, dataset.num_classes(), dataset.train.size(),
                       dataset.test.size(), format_duration(timer.elapsed_seconds())));
  return dataset;
}

std::string percent(double fraction, int decimals) { return fmt::format("{:.{}f}%", 100.0 * fraction, decimals); }

void add_skip_option(CLI::App& app, Context& ctx) {
  app.add_flag("--skip-unchanged", ctx.skip_unchanged,
               "Do nothing when the last complete run of this stage had the same options and inputs and its files "
               "are intact (what `defuse run` does)");
}

void add_wait_option(CLI::App& app, Context& ctx) {
  app.add_flag("--wait", ctx.wait,
               "If another defuse process is writing to the workspace, wait for it to finish instead of stopping");
}

WorkspaceLock hold_workspace(const Context& ctx, const std::string& command) {
  return WorkspaceLock(ctx.workspace, command, ctx.wait, [&](const LockHolder& holder) {
    ctx.info(fmt::format("{}: waiting for the workspace {}: in use by {}", command, ctx.workspace, holder.describe()));
  });
}

StageRun run_stage(Context& ctx, Workspace& workspace, const std::string& stage, const nlohmann::json& options,
                   const nlohmann::json& inputs, const std::function<Workspace::StageOutput(int64_t)>& body) {
  if (ctx.skip_unchanged) {
    auto last = workspace.latest(stage);
    if (last && last->fingerprint == stage_fingerprint(stage, options, inputs) && workspace.artifacts_intact(*last)) {
      ctx.info(skipped_text(*last));
      return {*last, true};
    }
  }
  return {workspace.run_stage(stage, options, inputs, body), false};
}

std::string skipped_text(const StageRecord& record) {
  return fmt::format("{}: up to date (run {}, {}), skipped", record.stage, record.id, record.finished_at);
}

}  // namespace defuse::cli
