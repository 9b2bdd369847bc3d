// defuse train-judges: the classifiers other than the one under test that read every found
// failure (DESIGN §3, "Validity"): the user's own (--judge FILE.pt) and zoo models defuse
// trains with other architectures, seeds and augmentation.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/hash.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/judge/judges.h"
#include "defuse/model/device.h"
#include "defuse/train/train_classifier.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

const Registrar registrar(
    "train-judges",
    "Train the judges (classifiers other than the one under test) that tell genuine failures from label changes",
    [](CLI::App& app, Context& ctx) -> Action {
      auto opts = std::make_shared<TrainJudgesOptions>();
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data,
                     "Dataset spec (default: the one the workspace's classifier was trained on, else fashion-mnist)");
      app.add_option("--judge", opts->files,
                     "A classifier you trust more than the one under test (TorchScript or defuse checkpoint, same "
                     "input as the classifier); repeatable. Checked against the data before any training")
          ->take_all();
      app.add_option("--archs", opts->archs,
                     "Zoo architectures of the judges defuse trains, one judge each (auto: two judges, by the "
                     "data's shape; none: train no judge)")
          ->delimiter(',')
          ->capture_default_str();
      app.add_option("--epochs", opts->epochs, "Passes over the training split per trained judge")
          ->capture_default_str();
      app.add_flag("--augment,!--no-augment", opts->augment, "Random ±2 px shifts of the judges' training images")
          ->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed of the trained judges (judge i: derived from it)")
          ->capture_default_str();

      return [opts, data](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        parse_device(ctx.device, "train-judges");
        if (opts->archs.size() == 1 && opts->archs.front() == "none") opts->archs.clear();
        opts->validate();
        auto lock = hold_workspace(ctx, "train-judges");
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        Dataset dataset = load_dataset_logged(ctx, spec);
        std::vector<std::string> archs;
        for (const auto& a : opts->archs)
          if (a == "auto")
            for (const auto& d : default_judge_archs(dataset.channels, dataset.height, dataset.width)) archs.push_back(d);
          else
            archs.push_back(a);
        json files = json::array();
        for (const auto& f : opts->files) files.push_back(hash_file(f));
        json options = {{"data", spec},          {"archs", archs},   {"files", opts->files}, {"epochs", opts->epochs},
                        {"augment", opts->augment}, {"seed", opts->seed}, {"device", ctx.device}};
        json inputs = {{"dataset", dataset_fingerprint(dataset)}, {"files", files}};

        std::unique_ptr<Progress> bar;
        opts->on_progress = [&](int judge, int judges, const TrainProgress& p) {
          if (p.batch == 1) {
            if (bar) bar->finish();
            bar = std::make_unique<Progress>(*ctx.err, fmt::format("judge {}/{} epoch {}/{}", judge, judges, p.epoch,
                                                                   p.epochs),
                                             p.batches, ctx.progress());
          }
          bar->update(p.batch, fmt::format("loss {:.4f}  acc {}", p.loss, percent(p.accuracy)));
        };
        json summary;
        std::string text;
        StageRun run = run_stage(ctx, workspace, kJudgesStage, options, inputs, [&](int64_t) {
          auto result = train_judges(dataset, *opts);
          if (bar) bar->finish();
          json judges = json::array();
          std::vector<std::string> described;
          for (const auto& j : result.panel.info()) {
            judges.push_back({{"name", j.name},
                              {"origin", j.origin},
                              {"arch", j.arch},
                              {"seed", j.seed},
                              {"test_accuracy", j.test_accuracy},
                              {"seconds", j.seconds}});
            described.push_back(fmt::format("{} ({}, test accuracy {})", j.name,
                                            j.origin == "trained" ? j.arch : j.origin, percent(j.test_accuracy)));
          }
          json metrics = {{"judges", judges}, {"count", result.panel.size()}};
          summary = metrics;
          text = result.panel.empty()
                     ? std::string("train-judges: no judges (failures will not be checked)")
                     : fmt::format("train-judges: {}", fmt::join(described, ", "));
          return Workspace::StageOutput{metrics, save_judges(workspace, result.panel), nullptr};
        });
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
          text = skipped_text(run.record);
        }
        ctx.result(summary, text);
      };
    },
    15);

}  // namespace
}  // namespace defuse::cli
