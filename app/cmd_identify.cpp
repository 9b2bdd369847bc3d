// defuse identify: search the VAE's latent space around seed images for realistic decodes
// the classifier gets wrong (DESIGN §3, "Identification").
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/report/grid.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

// Seed / failure pairs: for up to `count` seeds, the seed image (framed, its label) beside
// its smallest-perturbation failure (seed label -> predicted label, in red).
Image failure_grid(const FailureSet& f, const at::Tensor& seed_images, int64_t count) {
  std::vector<GridTile> tiles;
  auto seed_index = f.seed_index.accessor<int64_t, 1>();
  auto seed_label = f.seed_label.accessor<int64_t, 1>();
  auto predicted = f.predicted.accessor<int64_t, 1>();
  int64_t shown = 0;
  for (int64_t i = 0; i < f.size() && shown < count; ++i) {
    if (i > 0 && seed_index[i] == seed_index[i - 1]) continue;  // first (smallest) failure of each seed
    tiles.push_back({tensor_to_image(seed_images[seed_index[i]]), std::to_string(seed_label[i]), kTextGrey, true});
    tiles.push_back({tensor_to_image(f.images[i]), fmt::format("{}->{}", seed_label[i], predicted[i]), kTextRed, false});
    ++shown;
  }
  GridOptions options;
  options.columns = 10;
  options.scale = seed_images.size(2) <= 32 ? 2 : 1;
  options.title = "seed (framed) | decode: seed label -> prediction";
  return make_grid(tiles, options);
}

// What the gate left out: each seed (framed) beside a decode the judges read as the
// classifier did (seed label -> prediction, in grey: the classifier is right there).
Image rejected_grid(const RejectedExamples& r, const at::Tensor& seed_images, int64_t count) {
  std::vector<GridTile> tiles;
  for (int64_t i = 0; i < r.size() && i < count; ++i) {
    const int64_t seed = r.seed_index[i].item<int64_t>();
    tiles.push_back({tensor_to_image(seed_images[seed]), std::to_string(r.seed_label[i].item<int64_t>()), kTextGrey,
                     true});
    tiles.push_back({tensor_to_image(r.images[i]),
                     fmt::format("{}->{}", r.seed_label[i].item<int64_t>(), r.predicted[i].item<int64_t>()), kTextGrey,
                     false});
  }
  GridOptions options;
  options.columns = 10;
  options.scale = seed_images.size(2) <= 32 ? 2 : 1;
  options.title = "label changes left out: the judges read the decode as the classifier did";
  return make_grid(tiles, options);
}

std::string pair_table(const IdentifySummary& s) {
  std::string out = "failures kept per pair (rows: seed label, columns: predicted):\n     ";
  const size_t k = s.pairs.size();
  for (size_t j = 0; j < k; ++j) out += fmt::format("{:>6}", j);
  out += "\n";
  for (size_t i = 0; i < k; ++i) {
    out += fmt::format("{:>5}", i);
    for (size_t j = 0; j < k; ++j) out += s.pairs[i][j] ? fmt::format("{:>6}", s.pairs[i][j]) : fmt::format("{:>6}", ".");
    out += "\n";
  }
  return out;
}

const Registrar registrar(
    "identify", "Search the VAE's latent space around seed images for decodes the classifier gets wrong",
    [](CLI::App& app, Context& ctx) -> Action {
      auto opts = std::make_shared<IdentifyOptions>();
      auto data = std::make_shared<std::string>();
      auto split = std::make_shared<std::string>("train");
      auto all_seeds = std::make_shared<bool>(false);
      auto grid = std::make_shared<int64_t>(50);
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data,
                     "Dataset spec (default: the one the workspace's classifier was trained on)");
      app.add_option("-Q,--samples", opts->samples, "Perturbations decoded per seed")->capture_default_str();
      app.add_option("-M,--keep", opts->keep, "Failures kept per seed, smallest perturbation first")
          ->capture_default_str();
      app.add_option("--noise", opts->noise,
                     "gaussian: zero-mean, σ relative to each latent dimension's spread over the training codes; "
                     "beta: the reference's Beta(a, b) per coordinate (adds +0.5 on average; parity mode)")
          ->check(CLI::IsMember({"gaussian", "beta"}))
          ->capture_default_str();
      app.add_option("--sigma", opts->sigma, "gaussian noise: σ as a multiple of each latent dimension's spread")
          ->capture_default_str();
      app.add_option("--search", opts->search,
                     "fixed: Q draws per seed at --sigma; growing: Q draws at sigma x each of --levels in turn, for "
                     "the seeds without a kept failure yet, so the kept failures are the nearest ones")
          ->check(CLI::IsMember({"fixed", "growing"}))
          ->capture_default_str();
      app.add_option("--levels", opts->levels, "growing search: radii as multiples of --sigma, increasing")
          ->delimiter(',')
          ->capture_default_str();
      app.add_option("--beta-a", opts->beta_a, "beta noise: shape a (the reference: 50 MNIST/GTSRB, 75 SVHN)")
          ->capture_default_str();
      app.add_option("--beta-b", opts->beta_b, "beta noise: shape b")->capture_default_str();
      app.add_option("--split", *split, "Split the seeds come from (train keeps the test split clean for evaluation)")
          ->check(CLI::IsMember({"train", "test"}))
          ->capture_default_str();
      app.add_flag("--all-seeds", *all_seeds,
                   "Seed from every image, not only those the classifier gets right (the reference's behaviour)");
      auto keep_bad = std::make_shared<bool>(false);
      app.add_flag("--keep-bad-reconstructions", *keep_bad,
                   "Also seed from images whose plain VAE reconstruction the classifier misreads (their failures "
                   "are the generator's; the reference's behaviour)");
      app.add_option("--max-seeds", opts->max_seeds, "Seeds to search, drawn at random from the eligible ones (0: all)")
          ->capture_default_str();
      app.add_option("--batch-size", opts->batch_size, "Decodes per forward pass")->capture_default_str();
      app.add_option("--precision", opts->precision,
                     "fp32 (default: the same failures on every CPU); bf16: screen in bfloat16, confirming every failure in fp32; auto: bf16 "
                     "on CPUs with AVX512-BF16, else fp32")
          ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
          ->capture_default_str();
      auto gate = std::make_shared<std::string>("auto");
      app.add_option("--gate", *gate,
                     "Which failing decodes may be kept: genuine (the judges read the seed's label), plausible (all but "
                     "label changes), none (every one, unverified); auto: genuine when the workspace has judges "
                     "(`defuse train-judges`), else none")
          ->check(CLI::IsMember({"auto", "genuine", "plausible", "none"}))
          ->capture_default_str();
      app.add_option("--judge-agreement", opts->verdict.min_agreement,
                     "Share of the judges that must read a class for their reading to count (1: all)")
          ->capture_default_str();
      app.add_option("--judge-confidence", opts->verdict.min_confidence,
                     "Mean probability the judges must give that class for their reading to count")
          ->capture_default_str();
      app.add_option("--neighbours", opts->neighbours,
                     "Nearest training codes whose labels each kept failure's validity shows")
          ->capture_default_str();
      app.add_option("--grid", *grid, "Failures shown in identify/failures.png (one per seed)")->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed (seed subset and noise)")->capture_default_str();

      return [opts, data, split, all_seeds, grid, keep_bad, gate](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        opts->only_correct = !*all_seeds;
        opts->check_reconstruction = !*keep_bad;
        opts->validate();
        check_option(*grid >= 0, "identify", "--grid must be non-negative");
        auto device = parse_device(ctx.device, "identify");
        auto lock = hold_workspace(ctx, "identify");
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        // Upstream stages first: a missing one is named before a dataset is read.
        auto vae = load_workspace_vae(workspace, device);
        auto classifier = load_workspace_classifier(workspace, device);
        std::string judges_fingerprint;
        JudgePanel judges = load_workspace_judges(workspace, device, &judges_fingerprint);
        Dataset dataset = load_dataset_logged(ctx, spec);
        check_vae_fits(*vae.model, dataset, "identify");
        validate_classifier(*classifier.model, dataset, "the workspace's classifier");
        for (int64_t j = 0; j < judges.size(); ++j)
          validate_classifier(judges.model(j), dataset, "judge " + judges.info()[static_cast<size_t>(j)].name);
        opts->gate = *gate;
        if (judges.empty())
          ctx.warn("identify: no judges in the workspace (`defuse train-judges`): the kept failures are not checked, "
                   "and many may be decodes that turned into another class where the classifier is right");
        VaeCodes codes = load_vae_codes(workspace);
        if (codes.train.size(1) != vae.model->spec().latent)
          throw StateError(fmt::format("identify: vae/codes.pt has {} latent dimensions but the VAE has {}: run "
                                       "`defuse train-vae` again",
                                       codes.train.size(1), vae.model->spec().latent));
        const DataSplit& seeds = *split == "train" ? dataset.train : dataset.test;
        at::Tensor seed_images = images_tensor(seeds, dataset), seed_labels = labels_tensor(seeds);

        json options = {{"data", spec},          {"split", *split},           {"samples", opts->samples},
                        {"keep", opts->keep},    {"noise", opts->noise},      {"only_correct", opts->only_correct},
                        {"check_reconstruction", opts->check_reconstruction},
                        {"max_seeds", opts->max_seeds}, {"seed", opts->seed}, {"grid", *grid},
                        {"precision", resolve_precision(opts->precision, device)}};
        options["gate"] = opts->gate == "auto" ? (judges.empty() ? "none" : "genuine") : opts->gate;
        if (!judges.empty())
          options["verdict"] = {{"agreement", opts->verdict.min_agreement}, {"confidence", opts->verdict.min_confidence}};
        options["neighbours"] = opts->neighbours;
        options["search"] = opts->search;
        if (opts->search == "growing") options["levels"] = opts->levels;
        if (opts->noise == "gaussian") options["sigma"] = opts->sigma;
        else options["beta"] = {opts->beta_a, opts->beta_b};
        json inputs = {{"dataset", dataset_fingerprint(dataset)},
                       {"classifier", classifier.record.fingerprint},
                       {"vae", vae.record.fingerprint},
                       {"judges", judges_fingerprint}};

        std::unique_ptr<Progress> bar;
        opts->on_progress = [&](const IdentifyProgress& p) {
          if (!bar) bar = std::make_unique<Progress>(*ctx.err, "identify", p.seeds, ctx.progress());
          bar->update(p.seeds_done, fmt::format("{} decodes, {} failures", p.decodes, p.failures));
        };
        json summary;
        std::string text;
        StageRun run = run_stage(ctx, workspace, "identify", options, inputs, [&](int64_t run_id) {
          LatentReference reference{codes.train, labels_tensor(dataset.train)};
          FailureSet failures = search_latent(*vae.model, *classifier.model, &judges, seed_images, seed_labels,
                                              codes.train_spread(), reference, *opts);
          if (bar) bar->finish();
          failures.seed_split = *split;
          const IdentifySummary& s = failures.summary;
          int64_t distinct = 0;
          for (const auto& row : s.pairs)
            for (auto v : row) distinct += v > 0;
          json metrics = {{"seeds", s.seeds},
                          {"seed_pool", s.seed_pool},
                          {"seeds_checked", s.seeds_checked},
                          {"seed_accuracy", s.seed_accuracy},
                          {"seeds_bad_reconstruction", s.seeds_bad_reconstruction},
                          {"seeds_with_failures", s.seeds_with_failures},
                          {"level_seeds", s.level_seeds},
                          {"decodes", s.decodes},
                          {"failing_decodes", s.failing_decodes},
                          {"failures", s.failures},
                          {"failure_rate", s.failure_rate()},
                          {"decodes_per_failure", s.decodes_per_failure()},
                          {"failures_per_1000_seeds", s.seeds ? 1000.0 * s.failures / s.seeds : 0.0},
                          {"distinct_pairs", distinct},
                          {"pairs", s.pairs},
                          {"decodes_per_second", s.decodes_per_second()},
                          {"precision", s.precision},
                          {"confirmed_decodes", s.confirmed_decodes},
                          {"batch_size", opts->batch_size},
                          {"search_seconds", s.search_seconds},
                          {"seconds", s.seconds},
                          {"seed_split", *split},
                          {"gate", s.gate},
                          {"judges", s.judges}};
          if (s.judges > 0) {
            metrics["failing_verdicts"] = {{"genuine", s.failing_genuine},
                                           {"label_change", s.failing_label_change},
                                           {"ambiguous", s.failing_ambiguous}};
            metrics["kept_verdicts"] = {{"genuine", s.kept_genuine},
                                        {"label_change", s.kept_label_change},
                                        {"ambiguous", s.kept_ambiguous}};
            metrics["genuine_share"] = s.failures ? double(s.kept_genuine) / double(s.failures) : 0.0;
          }
          if (failures.validity.has_neighbours() && failures.size() > 0) {
            metrics["knn_seed_share"] = failures.validity.knn_seed_share.mean().item<double>();
            metrics["realism_median"] = failures.validity.realism.median().item<double>();
          }
          std::vector<std::pair<std::string, std::string>> artifacts{save_failure_tensors(workspace, failures)};
          if (failures.size() > 0 && *grid > 0) {
            auto png = encode_png(failure_grid(failures, seed_images, *grid));
            write_file_atomic(workspace.path(kFailureGridArtifact),
                              std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
            artifacts.emplace_back("grid", kFailureGridArtifact);
            metrics["grid"] = workspace.path(kFailureGridArtifact).string();
          }
          if (failures.rejected.size() > 0 && *grid > 0) {
            auto png = encode_png(rejected_grid(failures.rejected, seed_images, *grid));
            write_file_atomic(workspace.path(kRejectedGridArtifact),
                              std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
            artifacts.emplace_back("rejected_grid", kRejectedGridArtifact);
          }
          summary = metrics;
          text = fmt::format(
              "identify: {} seeds ({} split), {} decodes in {} ({:.0f} decodes/s, {}): {} failing decodes ({}), {} kept "
              "(at most {} per seed, {} seeds with failures), {:.1f} decodes per kept failure, {} distinct "
              "seed->predicted pairs",
              s.seeds, *split, s.decodes, format_duration(s.search_seconds), s.decodes_per_second(), s.precision,
              s.failing_decodes,
              percent(s.failure_rate()), s.failures, opts->keep, s.seeds_with_failures, s.decodes_per_failure(),
              distinct);
          if (s.judges > 0)
            text += fmt::format("; the {} judges read the failing decodes as {} genuine (the seed's label), {} label "
                                "changes (as the classifier did: it is right there), {} ambiguous; gate {}: {} of the "
                                "kept failures are genuine",
                                s.judges, s.failing_genuine, s.failing_label_change, s.failing_ambiguous, s.gate,
                                s.kept_genuine);
          if (s.seeds_bad_reconstruction > 0)
            ctx.info(fmt::format("identify: skipped {} of {} checked seeds because the classifier misreads their "
                                 "plain VAE reconstruction (their failures would be the generator's)",
                                 s.seeds_bad_reconstruction, s.seeds_checked));
          if (!ctx.json && s.failures > 0) ctx.info(pair_table(s));
          return Workspace::StageOutput{metrics, artifacts, failure_rows_writer(run_id, failures)};
        });
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
          text = skipped_text(run.record);
        }
        summary["failures_file"] = workspace.path(kFailuresArtifact).string();
        std::string where = summary.contains("grid") ? " -> " + summary["grid"].get<std::string>() : "";
        ctx.result(summary, text + where);
      };
    },
    30);

}  // namespace
}  // namespace defuse::cli
