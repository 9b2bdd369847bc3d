// defuse train-vae: train the β-VAE on the training split and encode both splits.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/device.h"
#include "defuse/model/vae_store.h"
#include "defuse/train/train_vae.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

const Registrar registrar(
    "train-vae", "Train the β-VAE whose latent space identify searches, and encode both splits",
    [](CLI::App& app, Context& ctx) -> Action {
      auto opts = std::make_shared<TrainVaeOptions>();
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data,
                     "Dataset spec (default: the one the workspace's classifier was trained on, else fashion-mnist)");
      app.add_option("--latent", opts->latent, "Latent dimensions Z")->capture_default_str();
      app.add_option("--epochs", opts->epochs, "Passes over the training split")->capture_default_str();
      app.add_option("--batch-size", opts->batch_size, "Training batch size")->capture_default_str();
      app.add_option("--lr", opts->lr, "Adam learning rate")->capture_default_str();
      app.add_option("--weight-decay", opts->weight_decay, "Adam L2 weight decay")->capture_default_str();
      app.add_option("--beta", opts->beta, "KL weight β of the β-VAE")->capture_default_str();
      app.add_option("--anneal-steps", opts->anneal_steps,
                     "Steps over which the KL weight rises linearly from 0 to β (0: half of all training steps)")
          ->capture_default_str();
      app.add_option("--loss", opts->loss,
                     "Reconstruction loss: bce, mse, or ssim (1 - SSIM, 11x11 Gaussian window, σ = 1.5; the "
                     "reference's)")
          ->check(CLI::IsMember({"bce", "mse", "ssim"}))
          ->capture_default_str();
      app.add_option("--filters", opts->filters, "Channels of every hidden convolution")->capture_default_str();
      app.add_option("--decoder", opts->decoder,
                     "Decoder upsampling: subpixel (3x3 conv + pixel shuffle, fastest here) or transposed (the "
                     "reference's ConvTranspose2d)")
          ->check(CLI::IsMember({"subpixel", "transposed"}))
          ->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed (initialisation, shuffling, sampling)")->capture_default_str();

      return [opts, data](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        parse_device(ctx.device, "train-vae");
        opts->validate();
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        Dataset dataset = load_dataset_logged(ctx, spec);
        json options = {{"data", spec},
                        {"latent", opts->latent},
                        {"filters", opts->filters},
                        {"decoder", opts->decoder},
                        {"loss", opts->loss},
                        {"beta", opts->beta},
                        {"anneal_steps", opts->anneal_steps},
                        {"epochs", opts->epochs},
                        {"batch_size", opts->batch_size},
                        {"lr", opts->lr},
                        {"weight_decay", opts->weight_decay},
                        {"seed", opts->seed},
                        {"device", ctx.device}};
        json inputs = {{"dataset", dataset_fingerprint(dataset)}};

        std::unique_ptr<Progress> bar;
        opts->on_progress = [&](const VaeProgress& p) {
          if (p.batch == 1) {
            if (bar) bar->finish();
            bar = std::make_unique<Progress>(*ctx.err, fmt::format("epoch {}/{}", p.epoch, p.epochs), p.batches,
                                             ctx.progress());
          }
          const std::string line = fmt::format("reconstruction {:.3f}  KL {:.3f}  β·annealing {:.2f}",
                                               p.reconstruction, p.kl, p.kl_weight);
          bar->update(p.batch, line);
          // One line per epoch as it ends (the bar shows only on a terminal).
          if (p.batch == p.batches) {
            if (ctx.progress()) bar->finish(line);
            else if (!ctx.json) ctx.info(fmt::format("epoch {:>3}/{}: {} ({})", p.epoch, p.epochs, line,
                                                     format_duration(bar->elapsed_seconds())));
          }
        };
        json summary;
        std::string text;
        StageRun run = run_stage(ctx, workspace, "train-vae", options, inputs, [&](int64_t) {
          auto result = train_vae(dataset, *opts);
          if (bar) bar->finish();
          json history = json::array();
          for (const auto& e : result.epochs)
            history.push_back({{"epoch", e.epoch}, {"reconstruction", e.reconstruction}, {"kl", e.kl},
                               {"loss", e.loss}, {"kl_weight", e.kl_weight}, {"seconds", e.seconds}});
          json metrics = {{"test_reconstruction", result.test.reconstruction},
                          {"test_kl", result.test.kl},
                          {"test_elbo", result.test.elbo},
                          {"test_loss", result.test.loss},
                          {"loss", opts->loss},
                          {"latent", opts->latent},
                          {"architecture", result.model->spec().describe()},
                          {"epochs", opts->epochs},
                          {"steps", result.steps},
                          {"anneal_steps", result.anneal_steps},
                          {"seconds", result.seconds},
                          {"seconds_per_epoch", result.seconds / opts->epochs},
                          {"history", history}};
          summary = metrics;
          text = fmt::format(
              "train-vae: {} on {}, {} epochs in {}: test reconstruction {:.3f} ({}), KL {:.3f} nats, ELBO {:.3f}",
              result.model->spec().describe(), dataset.name, opts->epochs, format_duration(result.seconds),
              result.test.reconstruction, opts->loss, result.test.kl, result.test.elbo);
          std::vector<std::pair<std::string, std::string>> artifacts{
              save_vae_artifact(workspace, *result.model),
              save_vae_codes(workspace, VaeCodes{result.train_codes, result.test_codes})};
          return Workspace::StageOutput{metrics, artifacts, nullptr};
        });
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
          text = skipped_text(run.record);
        }
        summary["model"] = workspace.path(kVaeArtifact).string();
        summary["codes"] = workspace.path(kVaeCodesArtifact).string();
        ctx.result(summary, text + " -> " + workspace.path(kVaeArtifact).string());
      };
    },
    20);

}  // namespace
}  // namespace defuse::cli
