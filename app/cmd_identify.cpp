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
      app.add_option("--beta-a", opts->beta_a, "beta noise: shape a (the reference: 50 MNIST/GTSRB, 75 SVHN)")
          ->capture_default_str();
      app.add_option("--beta-b", opts->beta_b, "beta noise: shape b")->capture_default_str();
      app.add_option("--split", *split, "Split the seeds come from (train keeps the test split clean for evaluation)")
          ->check(CLI::IsMember({"train", "test"}))
          ->capture_default_str();
      app.add_flag("--all-seeds", *all_seeds,
                   "Seed from every image, not only those the classifier gets right (the reference's behaviour)");
      app.add_option("--max-seeds", opts->max_seeds, "Seeds to search, drawn at random from the eligible ones (0: all)")
          ->capture_default_str();
      app.add_option("--batch-size", opts->batch_size, "Decodes per forward pass")->capture_default_str();
      app.add_option("--precision", opts->precision,
                     "fp32 (default: the same failures on every CPU); bf16: screen in bfloat16, confirming every failure in fp32; auto: bf16 "
                     "on CPUs with AVX512-BF16, else fp32")
          ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
          ->capture_default_str();
      app.add_option("--grid", *grid, "Failures shown in identify/failures.png (one per seed)")->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed (seed subset and noise)")->capture_default_str();

      return [opts, data, split, all_seeds, grid](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        opts->only_correct = !*all_seeds;
        opts->validate();
        check_option(*grid >= 0, "identify", "--grid must be non-negative");
        auto device = parse_device(ctx.device, "identify");
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        // Upstream stages first: a missing one is named before a dataset is read.
        auto vae = load_workspace_vae(workspace, device);
        auto classifier = load_workspace_classifier(workspace, device);
        Dataset dataset = load_dataset_logged(ctx, spec);
        check_vae_fits(*vae.model, dataset, "identify");
        validate_classifier(*classifier.model, dataset, "the workspace's classifier");
        VaeCodes codes = load_vae_codes(workspace);
        if (codes.train.size(1) != vae.model->spec().latent)
          throw StateError(fmt::format("identify: vae/codes.pt has {} latent dimensions but the VAE has {}: run "
                                       "`defuse train-vae` again",
                                       codes.train.size(1), vae.model->spec().latent));
        const DataSplit& seeds = *split == "train" ? dataset.train : dataset.test;
        at::Tensor seed_images = images_tensor(seeds, dataset), seed_labels = labels_tensor(seeds);

        json options = {{"data", spec},          {"split", *split},           {"samples", opts->samples},
                        {"keep", opts->keep},    {"noise", opts->noise},      {"only_correct", opts->only_correct},
                        {"max_seeds", opts->max_seeds}, {"seed", opts->seed}, {"grid", *grid},
                        {"precision", resolve_precision(opts->precision, device)}};
        if (opts->noise == "gaussian") options["sigma"] = opts->sigma;
        else options["beta"] = {opts->beta_a, opts->beta_b};
        json inputs = {{"dataset", dataset_fingerprint(dataset)},
                       {"classifier", classifier.record.fingerprint},
                       {"vae", vae.record.fingerprint}};

        std::unique_ptr<Progress> bar;
        opts->on_progress = [&](const IdentifyProgress& p) {
          if (!bar) bar = std::make_unique<Progress>(*ctx.err, "identify", p.seeds, ctx.progress());
          bar->update(p.seeds_done, fmt::format("{} decodes, {} failures", p.decodes, p.failures));
        };
        json summary;
        std::string text;
        StageRun run = run_stage(ctx, workspace, "identify", options, inputs, [&](int64_t run_id) {
          FailureSet failures =
              search_latent(*vae.model, *classifier.model, seed_images, seed_labels, codes.train_spread(), *opts);
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
                          {"seeds_with_failures", s.seeds_with_failures},
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
                          {"seed_split", *split}};
          std::vector<std::pair<std::string, std::string>> artifacts{save_failure_tensors(workspace, failures)};
          if (failures.size() > 0 && *grid > 0) {
            auto png = encode_png(failure_grid(failures, seed_images, *grid));
            write_file_atomic(workspace.path(kFailureGridArtifact),
                              std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
            artifacts.emplace_back("grid", kFailureGridArtifact);
            metrics["grid"] = workspace.path(kFailureGridArtifact).string();
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
