// defuse export-suite: the workspace's genuine scenarios frozen as a test suite directory that
// `defuse check` scores any next model version on (suite_format.h describes it).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "workspace_suite.h"

namespace defuse::cli {
namespace {

const Registrar registrar(
    "export-suite",
    "Freeze the workspace's genuine scenarios as a test suite (PNG images and suite.json) for `defuse check`",
    [](CLI::App& app, Context& ctx) -> Action {
      auto request = std::make_shared<SuiteRequest>();
      auto output = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-o,--output", *output, "The suite directory to write (replaced if it holds an earlier suite)")
          ->required();
      add_suite_options(app, *request);
      return [request, output](Context& ctx) {
        prepare_compute(ctx);
        Workspace workspace(ctx.workspace);
        auto built = workspace_suite(ctx, workspace, *request);
        save_suite(built.suite, *output);
        const auto& info = built.suite.info;
        nlohmann::json scenarios = nlohmann::json::array();
        int64_t images = 0;
        for (const auto& s : info.scenario_list) {
          images += static_cast<int64_t>(s.images.size());
          scenarios.push_back({{"id", s.id},
                               {"label", info.class_names.at(static_cast<size_t>(s.label))},
                               {"images", s.images.size()},
                               {"draws", s.draws}});
        }
        nlohmann::json summary = {{"suite", *output},
                                  {"scenarios", scenarios},
                                  {"images", images},
                                  {"left_out", info.left_out.size()},
                                  {"kept", info.images}};
        ctx.result(summary, fmt::format("export-suite: wrote {} scenarios ({} images{}) to {}; score a model with "
                                        "`defuse check --suite {} --model MODEL.pt`",
                                        info.scenario_list.size(), images,
                                        info.images == "failing" ? ", each a failure of the original classifier" : "",
                                        *output, *output));
      };
    },
    82);

}  // namespace
}  // namespace defuse::cli
