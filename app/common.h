// Helpers shared by the subcommands (app layer only): the options every stage command takes,
// and the binding of each stage's options to its command line, which `defuse run` uses too
// (its config and --set flags are read by the stage's own parser).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "cli.h"
#include "defuse/pipeline/distributed_stage.h"
#include "defuse/pipeline/stage_support.h"

namespace CLI {
class App;
}

namespace defuse {
struct AnnotateStageOptions;
struct ClassifierStageOptions;
struct JudgesStageOptions;
struct VaeStageOptions;
struct IdentifyStageOptions;
struct DistillStageOptions;
struct CorrectStageOptions;
struct EvaluateStageOptions;
struct ReportStageOptions;
}  // namespace defuse

namespace defuse::cli {

// --skip-unchanged (stage commands): skip the stage when its last complete run had the same
// options and inputs and its files are intact.
void add_skip_option(CLI::App& app, Context& ctx);

// --wait (commands that write to the workspace): wait for another writer instead of stopping.
void add_wait_option(CLI::App& app, Context& ctx);
// --precision auto|fp32|bf16 of a training stage (forward passes in bfloat16 autocast),
// `default_note` saying what the default is and why.
void add_training_precision_option(CLI::App& app, std::string& precision, const std::string& default_note);

// The stage's own options (not --workspace, --threads and the others every command takes),
// bound to `o`; defined in the stage's cmd_<name>.cpp.
void bind_stage_options(CLI::App& app, ClassifierStageOptions& o);
void bind_stage_options(CLI::App& app, JudgesStageOptions& o);
void bind_stage_options(CLI::App& app, VaeStageOptions& o);
void bind_stage_options(CLI::App& app, IdentifyStageOptions& o);
void bind_stage_options(CLI::App& app, DistillStageOptions& o);
void bind_stage_options(CLI::App& app, AnnotateStageOptions& o);
void bind_stage_options(CLI::App& app, CorrectStageOptions& o);
void bind_stage_options(CLI::App& app, EvaluateStageOptions& o);
void bind_stage_options(CLI::App& app, ReportStageOptions& o);

// Where the command of a stage holds the workspace's writer lock (every stage but report).
enum class Writes { kYes, kNo };

// The worker side of a stage that computes on several ranks (DESIGN §6), or none.
template <typename Options>
using StageWorker = void (*)(const StageEnv&, Options, const StagePlan&);

// The command of a pipeline stage (DESIGN §2): the options every stage command takes, the
// stage's own (bind_stage_options), and one call of its driver, whose result it prints. With
// a worker, the command also takes --nproc-per-node, and on ranks other than 0 it serves rank
// 0's plan for the stage with the worker instead.
template <typename Options, typename Run>
Registrar stage_command(std::string name, std::string description, int order, Run run, Writes writes = Writes::kYes,
                        StageWorker<Options> worker = nullptr) {
  const std::string stage = name;
  return Registrar(
      std::move(name), std::move(description),
      [run, writes, worker, stage](CLI::App& app, Context& ctx) -> Action {
        auto o = std::make_shared<Options>();
        add_common_options(app, ctx);
        if (writes == Writes::kYes) add_wait_option(app, ctx);
        add_skip_option(app, ctx);
        add_device_option(app, ctx);
        if (worker) add_distributed_options(app, ctx);
        bind_stage_options(app, *o);
        return [o, run, worker, stage](Context& ctx) {
          if (worker && worker_rank()) {
            serve_rank0(ctx, {{stage, [&](const StagePlan& plan) { worker(ctx, *o, plan); }}});
            return;
          }
          auto r = run(ctx, *o);
          ctx.result(r.summary, r.text);
        };
      },
      order);
}

}  // namespace defuse::cli
