// defuse train-vae: train the β-VAE on the training split and encode both splits.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/train/train_vae.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

json fidelity_json(const Fidelity& f, const std::string& classifier_fingerprint) {
  return {{"reconstruction_accuracy", f.reconstruction_accuracy},
          {"classifier_test_accuracy", f.test_accuracy},
          {"fidelity", f.ratio()},
          {"fidelity_images", f.images},
          {"fidelity_classifier", classifier_fingerprint}};
}

// Whether the workspace's classifier takes this dataset (a VAE may be trained on other data
// than the classifier's; its fidelity is then not measured, and a line says why).
bool classifier_fits(Context& ctx, Classifier& classifier, const Dataset& dataset) {
  try {
    validate_classifier(classifier, dataset, "the workspace's classifier");
    return true;
  } catch (const ModelError& e) {
    ctx.warn(std::string("train-vae: fidelity not measured: ") + e.what());
    return false;
  }
}

// Below this share of the classifier's own test accuracy, reconstructions are misread often
// enough that many "failures" would be the generator's (DESIGN §3, "Validity").
constexpr double kFidelityWarning = 0.95;

const Registrar registrar(
    "train-vae", "Train the β-VAE whose latent space identify searches, and encode both splits",
    [](CLI::App& app, Context& ctx) -> Action {
      auto opts = std::make_shared<TrainVaeOptions>();
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_wait_option(app, ctx);
      add_skip_option(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-d,--data", *data,
                     "Dataset spec (default: the one the workspace's classifier was trained on, else fashion-mnist)");
      app.add_option("--latent", opts->latent, "Latent dimensions Z (0: 16 for grey images, 64 for colour)")
          ->capture_default_str();
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
      app.add_option("--filters", opts->filters,
                     "Channels of every hidden convolution (0: 64 for grey images, 128 for colour)")
          ->capture_default_str();
      app.add_option("--decoder", opts->decoder,
                     "Decoder upsampling: subpixel (3x3 conv + pixel shuffle, fastest here) or transposed (the "
                     "reference's ConvTranspose2d)")
          ->check(CLI::IsMember({"subpixel", "transposed"}))
          ->capture_default_str();
      app.add_option("--seed", opts->seed, "Random seed (initialisation, shuffling, sampling)")->capture_default_str();
      app.add_option("--precision", opts->precision,
                     "fp32, or bf16: the training steps in bfloat16 autocast (CPUs with AVX512-BF16/AMX; evaluation "
                     "and the stored model stay fp32); auto: bf16 where the CPU has it")
          ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
          ->capture_default_str();

      return [opts, data](Context& ctx) {
        prepare_compute(ctx);
        opts->device = ctx.device;
        parse_device(ctx.device, "train-vae");
        opts->validate();
        auto lock = hold_workspace(ctx, "train-vae");
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        Dataset dataset = load_dataset_logged(ctx, spec);
        json options = {{"data", spec},
                        {"latent", opts->effective_latent(dataset.channels, dataset.height, dataset.width)},
                        {"filters", opts->effective_filters(dataset.channels, dataset.height, dataset.width)},
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
        // Recorded only when it is not fp32, so that the fingerprints of fp32 VAEs stay as they were.
        const std::string precision = resolve_precision(opts->precision, parse_device(ctx.device, "train-vae"));
        if (precision != "fp32") options["precision"] = precision;
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
        auto save_artifacts = [&](const TrainVaeResult& result) {
          return std::vector<std::pair<std::string, std::string>>{
              save_vae_artifact(workspace, *result.model),
              save_vae_codes(workspace, VaeCodes{result.train_codes, result.test_codes})};
        };
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
                          {"latent", result.model->spec().latent},
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
          if (auto cls = workspace.latest(kClassifierStage); cls && workspace.artifacts_intact(*cls)) {
            auto device = parse_device(ctx.device, "train-vae");
            auto classifier = load_workspace_classifier(workspace, device);
            if (!classifier_fits(ctx, *classifier.model, dataset)) return Workspace::StageOutput{metrics, save_artifacts(result), nullptr};
            result.model->to(device);
            Fidelity f = measure_fidelity(*result.model, *classifier.model, images_tensor(dataset.test, dataset),
                                          labels_tensor(dataset.test), device);
            result.model->to(torch::kCPU);
            metrics.update(fidelity_json(f, classifier.record.fingerprint));
            summary = metrics;
          }
          return Workspace::StageOutput{metrics, save_artifacts(result), nullptr};
        });
        if (run.reused) {
          summary = run.record.metrics;
          summary["skipped"] = true;
          text = skipped_text(run.record);
        }
        // Fidelity needs the workspace's classifier; the VAE does not depend on it, so a new
        // classifier re-measures fidelity without retraining the VAE (and it is reported, not
        // stored: the stored figure stays the one measured with the classifier it names).
        if (auto cls = workspace.latest(kClassifierStage); cls && workspace.artifacts_intact(*cls) &&
                                                           summary.value("fidelity_classifier", "") != cls->fingerprint) {
          auto device = parse_device(ctx.device, "train-vae");
          auto classifier = load_workspace_classifier(workspace, device);
          auto vae = load_workspace_vae(workspace, device);
          if (classifier_fits(ctx, *classifier.model, dataset)) {
          Fidelity f = measure_fidelity(*vae.model, *classifier.model, images_tensor(dataset.test, dataset),
                                        labels_tensor(dataset.test), device);
          summary.update(fidelity_json(f, classifier.record.fingerprint));
          }
        }
        if (summary.contains("reconstruction_accuracy")) {
          const double ratio = summary["fidelity"].get<double>();
          text += fmt::format("; fidelity: the classifier reads {} of the test reconstructions right ({} of the "
                              "images themselves, ratio {:.3f})",
                              percent(summary["reconstruction_accuracy"].get<double>()),
                              percent(summary["classifier_test_accuracy"].get<double>()), ratio);
          if (ratio < kFidelityWarning)
            ctx.warn(fmt::format("train-vae: the classifier misreads {} of the VAE's test reconstructions (ratio "
                                 "{:.3f} to its own test accuracy): failures around such seeds are the generator's; "
                                 "identify skips seeds whose reconstruction is misread, but a sharper VAE (more "
                                 "--latent, lower --beta, more --epochs) finds more real ones",
                                 percent(1 - summary["reconstruction_accuracy"].get<double>()), ratio));
        }
        summary["model"] = workspace.path(kVaeArtifact).string();
        summary["codes"] = workspace.path(kVaeCodesArtifact).string();
        ctx.result(summary, text + " -> " + workspace.path(kVaeArtifact).string());
      };
    },
    20);

}  // namespace
}  // namespace defuse::cli
