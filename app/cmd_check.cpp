// defuse check: score a classifier on a scenario suite (from `defuse export-suite`, or built
// from a workspace on the fly), for model CI: a table, --json, --junit, and an exit code that
// says whether every scenario passed.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <optional>

#include "common.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/train/train_classifier.h"
#include "workspace_suite.h"

namespace defuse::cli {
namespace {

const Registrar registrar(
    "check",
    "Score a classifier on a scenario suite (or a workspace's scenarios): pass or fail per scenario, for model CI "
    "(exit 9 when one fails)",
    [](CLI::App& app, Context& ctx) -> Action {
      auto model_file = std::make_shared<std::string>();
      auto suite_dir = std::make_shared<std::string>();
      auto workspace = std::make_shared<std::string>();
      auto junit = std::make_shared<std::string>();
      auto min_accuracy = std::make_shared<std::optional<double>>();
      auto min_test = std::make_shared<std::optional<double>>();
      auto batch = std::make_shared<int64_t>(500);
      auto request = std::make_shared<SuiteRequest>();
      add_common_options(app, ctx, false);
      add_device_option(app, ctx);
      app.add_option("-m,--model", *model_file, "The classifier to score: TorchScript (or a defuse checkpoint)")
          ->required();
      auto* suite_opt = app.add_option("-s,--suite", *suite_dir, "A suite directory written by `defuse export-suite`");
      auto* ws_opt =
          app.add_option("-w,--workspace", *workspace,
                         "Build the suite from this workspace's scenarios instead (export-suite's defaults)");
      suite_opt->excludes(ws_opt);
      app.add_option("--min-accuracy", *min_accuracy,
                     fmt::format("Pass mark of every scenario, overriding the suite's (default: the suite's, {} "
                                 "unless export-suite was told otherwise)",
                                 kDefaultMinAccuracy));
      app.add_option("--min-test-accuracy", *min_test,
                     "Also fail when the model's accuracy on the dataset's test split is below this (needs the data)");
      app.add_option("-d,--data", request->data,
                     "Dataset spec whose test split the model is also scored on (default with -w: the workspace's)");
      app.add_option("--junit", *junit, "Also write the verdicts as JUnit XML to this file (CI test reports)");
      // The options that shape a suite built from -w; a stored suite is what it is.
      for (CLI::Option* o : add_suite_options(app, *request, false)) o->excludes(suite_opt);
      app.add_option("--batch-size", *batch, "Images per forward pass")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();

      return [=](Context& ctx) {
        const auto start = std::chrono::steady_clock::now();
        if (suite_dir->empty() && workspace->empty())
          throw ConfigError("check: give the suite to score on: --suite DIR (from export-suite) or -w WORKSPACE");
        if (*min_accuracy && !(**min_accuracy >= 0 && **min_accuracy <= 1))
          throw ConfigError("check: --min-accuracy must be in [0, 1]");
        if (*min_test && !(**min_test >= 0 && **min_test <= 1))
          throw ConfigError("check: --min-test-accuracy must be in [0, 1]");
        if (!junit->empty()) {
          std::filesystem::path j(*junit);
          if (j.has_parent_path() && !std::filesystem::is_directory(j.parent_path()))
            throw IoError("check: the directory " + j.parent_path().string() + " of --junit does not exist");
        }
        prepare_compute(ctx);
        auto device = parse_device(ctx.device, "check");
        if (!std::filesystem::is_regular_file(*model_file))
          throw IoError("check: model file " + *model_file + " not found");
        // The model is loaded and checked against the suite's shape and classes before any
        // scoring, so a wrong model costs nothing.
        Suite suite;
        std::optional<Dataset> dataset;
        std::string suite_name;
        std::unique_ptr<Classifier> model;
        if (!suite_dir->empty()) {
          suite = load_suite(*suite_dir);
          suite_name = *suite_dir;
          model = load_classifier(*model_file, device);
          check_model_fits(*model, suite.info, "the model " + *model_file);
          if (!request->data.empty()) dataset = load_dataset_logged(ctx, request->data);
        } else {
          model = load_classifier(*model_file, device);
          Workspace ws(*workspace);
          auto built = workspace_suite(ctx, ws, *request);
          suite = std::move(built.suite);
          check_model_fits(*model, suite.info, "the model " + *model_file);
          dataset = std::move(built.dataset);
          suite_name = "workspace " + *workspace;
        }
        if (dataset &&
            (dataset->num_classes() != suite.info.num_classes() || dataset->channels != suite.info.channels ||
             dataset->height != suite.info.height || dataset->width != suite.info.width))
          throw DataError(fmt::format("check: the dataset has {} classes of {}x{}x{} images, the suite {} of {}",
                                      dataset->num_classes(), dataset->channels, dataset->height, dataset->width,
                                      suite.info.num_classes(), suite.info.shape()));
        if (*min_test && !dataset) throw ConfigError("check: --min-test-accuracy needs the dataset: pass --data SPEC");

        CheckReport report = check_suite(*model, suite, *min_accuracy, device, *batch);
        report.model = *model_file;
        report.suite = suite_name;
        if (dataset) {
          report.test_images = dataset->test.size();
          if (report.test_images > 0)
            report.test_accuracy = evaluate_classifier(*model, dataset->test, *dataset, *batch, ctx.device).accuracy;
          if (*min_test) report.min_test_accuracy = **min_test;
        }
        report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!junit->empty()) write_file_atomic(*junit, junit_xml(report));
        if (!ctx.json) ctx.info(check_table(report));
        const int64_t failed = report.failed();
        ctx.result(check_json(report),
                   report.passed()
                       ? fmt::format("check: pass: all {} scenarios at or above their mark", report.scenarios.size())
                       : fmt::format("check: FAIL: {} of {} checks below their mark", failed,
                                     report.scenarios.size() + (report.min_test_accuracy >= 0 ? 1 : 0)));
        if (!report.passed()) ctx.exit_code = kExitCheckFailed;
      };
    },
    84);

}  // namespace
}  // namespace defuse::cli
