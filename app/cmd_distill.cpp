// defuse distill: cluster the identified failures into ranked failure scenarios.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/distill/distill.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"
#include "defuse/model/vae_store.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

json options_json(const DistillOptions& o) {
  return {{"points", o.points}, {"min_seeds", o.min_seeds},
          {"components", o.components}, {"covariance", o.covariance}, {"concentration", o.concentration},
          {"max_iter", o.max_iter},     {"tol", o.tol},               {"reg_covar", o.reg_covar},
          {"n_init", o.n_init},         {"min_weight", o.min_weight}, {"tau", o.tau},
          {"samples", o.samples},       {"shown", o.shown},           {"neighbours", o.neighbours},
          {"min_failure_rate", o.min_failure_rate}, {"seed", o.seed}, {"show_tau", o.show_tau},
          {"verdict", {{"agreement", o.verdict.min_agreement}, {"confidence", o.verdict.min_confidence}}},
          // 2: the truncation is capped by the number of points (distill_truncation)
          {"version", 2}};
}

std::string scenario_table(const ScenarioSet& set) {
  std::string out = fmt::format("{:>3}  {:>7}  {:>8}  {:>7}  {:<28}  {:>9}  {:<13} {:>8}  {}\n", "id", "weight", "fails",
                                "members", "seed label -> predicted", "neighbours", "verdict", "genuine", "judges read");
  for (const auto& s : set.scenarios) {
    std::string pair = fmt::format("{} -> {}", set.class_names.at(static_cast<size_t>(s.seed_label)),
                                   set.class_names.at(static_cast<size_t>(s.predicted_label)));
    const auto& v = s.validity;
    std::string judges = v.judge_label >= 0 ? fmt::format("{} ({})", set.class_names.at(static_cast<size_t>(v.judge_label)),
                                                          percent(v.judge_agreement, 0))
                                            : std::string("-");
    out += fmt::format("{:>3}  {:>7.3f}  {:>8}  {:>7}  {:<28}  {:>9}  {:<13} {:>8}  {}\n", s.id, s.weight,
                       percent(s.failure_rate, 0), s.members, pair,
                       s.neighbour_accuracy < 0 ? "-" : percent(s.neighbour_accuracy, 0),
                       v.known() ? v.verdict : "-", v.genuine_share < 0 ? "-" : percent(v.genuine_share, 0), judges);
  }
  return out;
}

const Registrar registrar(
    "distill", "Cluster the identified failures (DP-GMM) into ranked failure scenarios with thumbnails",
    [](CLI::App& app, Context& ctx) -> Action {
      auto o = std::make_shared<DistillOptions>();
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data, "Dataset spec (default: the one the workspace's classifier was trained on)");
      app.add_option("--points", o->points,
                     "What the DP-GMM clusters: seeds (one point per seed: the mean code of its failures) or failures "
                     "(every failure, the reference's)")
          ->check(CLI::IsMember({"seeds", "failures"}))
          ->capture_default_str();
      app.add_option("--min-seeds", o->min_seeds, "Scenarios need failures of at least this many seeds")
          ->capture_default_str();
      app.add_option("--components", o->components, "DP-GMM truncation K (most scenarios it can find)")->capture_default_str();
      app.add_option("--covariance", o->covariance, "Component covariance: full, diag, spherical, tied")
          ->check(CLI::IsMember({"full", "diag", "spherical", "tied"}))
          ->capture_default_str();
      app.add_option("--concentration", o->concentration, "Weight concentration prior (0 = 1/K)")->capture_default_str();
      app.add_option("--max-iter", o->max_iter, "DP-GMM iterations at most")->capture_default_str();
      app.add_option("--tol", o->tol, "DP-GMM convergence tolerance on the lower bound")->capture_default_str();
      app.add_option("--n-init", o->n_init, "DP-GMM fits from different initialisations")->capture_default_str();
      app.add_option("--min-weight", o->min_weight, "Components heavier than this become scenario candidates")
          ->capture_default_str();
      app.add_option("--tau", o->tau, "Scenario samples come from N(mean, tau * covariance)")->capture_default_str();
      app.add_option("--samples", o->samples, "Samples per scenario to measure its failure rate")->capture_default_str();
      app.add_option("--shown", o->shown,
                     "Thumbnails kept per scenario: draws at its own spread, and as many member failures")
          ->capture_default_str();
      app.add_option("--show-tau", o->show_tau,
                     "The shown draws come from N(mean, show_tau * covariance) (1: the scenario's own spread)")
          ->capture_default_str();
      app.add_option("--neighbours", o->neighbours, "Nearest real training images per scenario")->capture_default_str();
      app.add_option("--min-failure-rate", o->min_failure_rate,
                     "Drop scenarios whose samples (at --tau around the mean) fail less often than this (0: keep "
                     "all, the reference's)")
          ->capture_default_str();
      app.add_option("--seed", o->seed, "Random seed (k-means, scenario samples)")->capture_default_str();
      app.add_option("--batch-size", o->batch_size, "Decodes per forward pass")->capture_default_str();

      return [o, data](Context& ctx) {
        prepare_compute(ctx);
        o->device = ctx.device;
        o->validate();
        auto device = parse_device(ctx.device, "distill");
        auto lock = hold_workspace(ctx, "distill");
        Workspace workspace(ctx.workspace);
        auto classifier = load_workspace_classifier(workspace, device);
        auto vae = load_workspace_vae(workspace, device);
        std::string judges_fingerprint;
        JudgePanel judges = load_workspace_judges(workspace, device, &judges_fingerprint);
        auto identify = workspace.require(kIdentifyStage, "identify");
        FailureSet failures = load_failures(workspace, identify);
        VaeCodes codes = load_vae_codes(workspace);
        Dataset dataset = load_dataset_logged(ctx, resolve_data_spec(workspace, *data));
        check_vae_fits(*vae.model, dataset, "distill");
        validate_classifier(*classifier.model, dataset, "the workspace's classifier");
        if (codes.train.size(0) != dataset.train.size())
          throw StateError(fmt::format("distill: the VAE's codes cover {} training images but the dataset has {}: "
                                       "run train-vae with this dataset", codes.train.size(0), dataset.train.size()));
        json inputs = {{"dataset", dataset_fingerprint(dataset)},
                       {"classifier", classifier.record.fingerprint},
                       {"vae", vae.record.fingerprint},
                       {"identify", identify.fingerprint},
                       {"judges", judges_fingerprint}};
        if (!judges.empty() && !failures.validity.judged())
          ctx.warn("distill: the failures were identified without the workspace's judges: run `defuse identify` "
                   "again for verdicts");
        ctx.info(fmt::format("distill: fitting a DP-GMM (K at most {}, {} covariances) to {} failures ({})",
                             o->components, o->covariance, failures.size(),
                             o->points == "seeds" ? "one point per seed" : "one point each"));
        Progress bar(*ctx.err, "DP-GMM", o->max_iter, ctx.progress());
        o->on_iteration = [&](int it, double lb) { bar.update(it, fmt::format("lower bound {:.2f}", lb)); };

        json summary;
        ScenarioSet stored;
        StageRun run = run_stage(ctx, workspace, kDistillStage, options_json(*o), inputs, [&](int64_t run_id) {
          auto train_images = images_tensor(dataset.train, dataset);
          auto result = distill_scenarios(*vae.model, *classifier.model, failures, codes.train, train_images,
                                          labels_tensor(dataset.train), *o, &judges);
          bar.finish(fmt::format("{} iterations, {}", result.iterations, result.converged ? "converged" : "not converged"));
          stored = save_scenario_thumbnails(workspace, run_id, result, train_images, dataset.class_names, failures);
          json scenarios = json::array();
          for (const auto& s : stored.scenarios)
            scenarios.push_back({{"id", s.id},
                                 {"component", s.component},
                                 {"weight", s.weight},
                                 {"failure_rate", s.failure_rate},
                                 {"seed_label", s.seed_label},
                                 {"seed_label_name", dataset.class_names[static_cast<size_t>(s.seed_label)]},
                                 {"predicted_label", s.predicted_label},
                                 {"predicted_label_name", dataset.class_names[static_cast<size_t>(s.predicted_label)]},
                                 {"seed_label_share", s.seed_label_share},
                                 {"predicted_share", s.predicted_share},
                                 {"members", s.members},
                                 {"neighbour_accuracy", s.neighbour_accuracy},
                                 {"score", s.score},
                                 {"validity", validity_json(s.validity)}});
          summary = {{"scenarios", static_cast<int64_t>(stored.scenarios.size())},
                     {"candidates", result.candidates},
                     {"single_seed", result.single_seed},
                     {"points", result.points},
                     {"failures", result.failures},
                     {"components_used", result.components_used},
                     {"truncation", result.truncation},
                     {"iterations", result.iterations},
                     {"converged", result.converged},
                     {"lower_bound", result.lower_bound},
                     {"fit_seconds", result.fit_seconds},
                     {"seconds", result.seconds},
                     {"per_scenario", scenarios}};
          if (!judges.empty()) {
            int64_t genuine = 0, changes = 0, ambiguous = 0;
            for (const auto& sc : stored.scenarios) {
              genuine += sc.validity.verdict == "genuine";
              changes += sc.validity.verdict == "label-change";
              ambiguous += sc.validity.verdict == "ambiguous";
            }
            summary["verdicts"] = {{"genuine", genuine}, {"label_change", changes}, {"ambiguous", ambiguous}};
          }
          Workspace::StageOutput out;
          out.metrics = summary;
          for (const auto& s : stored.scenarios) {
            for (const auto& img : s.samples) out.artifacts.emplace_back(img.path, img.path);
            for (const auto& img : s.member_images) out.artifacts.emplace_back(img.path, img.path);
            for (const auto& img : s.neighbours) out.artifacts.emplace_back(img.path, img.path);
          }
          out.extra = [&stored, run_id](Database& db) { write_scenarios(db, run_id, stored); };
          return out;
        });
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
        }
        if (!ctx.json && !stored.scenarios.empty()) ctx.info(scenario_table(stored));
        std::string verdicts;
        if (summary.contains("verdicts"))
          verdicts = fmt::format(": {} genuine, {} label changes (the classifier is right there), {} ambiguous",
                                 summary["verdicts"]["genuine"].get<int64_t>(),
                                 summary["verdicts"]["label_change"].get<int64_t>(),
                                 summary["verdicts"]["ambiguous"].get<int64_t>());
        ctx.result(summary, fmt::format("distill: {} scenarios from {} failures ({} candidate components, {} iterations, {}){}",
                                        summary["scenarios"].get<int64_t>(), failures.size(),
                                        summary["candidates"].get<int64_t>(), summary["iterations"].get<int>(),
                                        format_duration(summary["seconds"].get<double>()), verdicts));
      };
    },
    40);

}  // namespace
}  // namespace defuse::cli
