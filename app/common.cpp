#include "common.h"

#include <CLI/CLI.hpp>

namespace defuse::cli {

void add_skip_option(CLI::App& app, Context& ctx) {
  app.add_flag("--skip-unchanged", ctx.skip_unchanged,
               "Do nothing when the last complete run of this stage had the same options and inputs and its files "
               "are intact (what `defuse run` does)");
}

void add_wait_option(CLI::App& app, Context& ctx) {
  app.add_flag("--wait", ctx.wait,
               "If another defuse process is writing to the workspace, wait for it to finish instead of stopping");
}

void add_training_precision_option(CLI::App& app, std::string& precision, const std::string& default_note) {
  app.add_option("--precision", precision,
                 default_note +
                     ": the training forward passes in bfloat16 autocast (CPUs with AVX512-BF16/AMX; the loss, "
                     "the optimiser, evaluation and the stored model stay fp32); auto: bf16 where the CPU has it")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
}

}  // namespace defuse::cli
