// defuse export: write the original or a corrected classifier as a TorchScript module.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/model/device.h"
#include "model_export.h"

namespace defuse::cli {
namespace {

const Registrar registrar(
    "export",
    "Write a classifier of the workspace (evaluate's choice by default) as TorchScript, loadable with "
    "torch.jit.load",
    [](CLI::App& app, Context& ctx) -> Action {
      auto which = std::make_shared<std::string>("chosen");
      auto output = std::make_shared<std::string>();
      add_common_options(app, ctx);
      app.add_option("-m,--model", *which, "chosen (evaluate's choice), original, baseline, or a lambda (0.1)")
          ->capture_default_str();
      app.add_option("-o,--output", *output, "The file to write (.pt)")->required();
      return [which, output](Context& ctx) {
        Workspace workspace(ctx.workspace);
        auto path = export_model(workspace, *which, *output, c10::Device(c10::kCPU));
        nlohmann::json summary = {{"model", *which}, {"output", path}};
        ctx.result(summary, fmt::format("export: wrote {} as TorchScript to {}", *which, path));
      };
    },
    80);

}  // namespace
}  // namespace defuse::cli
