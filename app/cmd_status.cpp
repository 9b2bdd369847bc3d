// defuse status: what has run in a workspace.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "cli.h"
#include "defuse/base/error.h"
#include "defuse/base/pipeline.h"
#include "defuse/base/progress.h"
#include "defuse/base/workspace.h"
#include "defuse/base/workspace_lock.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

// The headline metric of a stage, for the table.
std::string headline(const StageRecord& r) {
  if (r.status == "failed") return r.error.substr(0, 80);
  for (const char* key : {"test_accuracy", "failures", "scenarios", "labelled", "test_reconstruction"})
    if (r.metrics.contains(key) && r.metrics[key].is_number()) {
      double v = r.metrics[key].get<double>();
      return std::string(key) + " " +
             (v <= 1.0 && std::string(key).find("accuracy") != std::string::npos ? fmt::format("{:.2f}%", 100 * v)
                                                                                 : fmt::format("{:g}", v));
    }
  return "";
}

const Registrar registrar(
    "status", "Show which stages have run in a workspace, with their timings and results",
    [](CLI::App& app, Context& ctx) -> Action {
      add_common_options(app, ctx);
      auto all = std::make_shared<bool>(false);
      app.add_flag("--all", *all, "Every run, not just the latest of each stage");
      return [all](Context& ctx) {
        if (!std::filesystem::exists(std::filesystem::path(ctx.workspace) / "defuse.db"))
          throw StateError("status: " + ctx.workspace + " is not a workspace (no defuse.db): run a stage first");
        Workspace workspace(ctx.workspace);
        auto history = workspace.history();
        std::vector<StageRecord> shown;
        if (*all) {
          shown = history;
        } else {
          // The latest run of each stage, in the order stages first ran.
          for (const auto& r : history) {
            auto it =
                std::find_if(shown.begin(), shown.end(), [&](const StageRecord& s) { return s.stage == r.stage; });
            if (it == shown.end())
              shown.push_back(r);
            else
              *it = r;
          }
        }
        json runs = json::array();
        std::string text = fmt::format("workspace {}\n{:<18} {:<12} {:<21} {:>10}  {}\n", workspace.dir().string(),
                                       "stage", "status", "finished", "time", "result");
        for (const auto& r : shown) {
          bool intact = r.status != "complete" || workspace.artifacts_intact(r);
          std::string status = intact ? r.status : "stale";
          runs.push_back({{"id", r.id},
                          {"stage", r.stage},
                          {"status", status},
                          {"started_at", r.started_at},
                          {"finished_at", r.finished_at},
                          {"seconds", r.seconds},
                          {"metrics", r.metrics},
                          {"fingerprint", r.fingerprint}});
          text += fmt::format("{:<18} {:<12} {:<21} {:>10}  {}\n", r.stage, status, r.finished_at,
                              r.status == "complete" ? format_duration(r.seconds) : "", headline(r));
        }
        if (shown.empty()) text += "(nothing has run yet)\n";
        // The pipeline's stages with no complete run yet, in the order `defuse run` runs them.
        json pending = json::array();
        for (const auto& stage : pipeline())
          if (!workspace.latest(std::string(stage.name))) pending.push_back(stage.name);
        if (!pending.empty() && !shown.empty()) {
          std::vector<std::string> names = pending;
          text += fmt::format("not run yet: {}\n", fmt::join(names, ", "));
        }
        json summary{
            {"workspace", workspace.dir().string()}, {"runs", runs}, {"pending", pending}, {"writer", nullptr}};
        if (auto holder = WorkspaceLock::holder(workspace.dir())) {
          text += "in use by " + holder->describe() + "\n";
          summary["writer"] = {
              {"pid", holder->pid}, {"host", holder->host}, {"command", holder->command}, {"since", holder->since}};
        }
        ctx.result(summary, text.substr(0, text.size() - 1));
      };
    },
    90);

}  // namespace
}  // namespace defuse::cli
