#include "defuse/pipeline/vae_stage.h"

#include <fmt/format.h>

#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/pipeline/distributed_stage.h"

namespace defuse {
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
bool classifier_fits(const StageEnv& env, Classifier& classifier, const Dataset& dataset) {
  try {
    validate_classifier(classifier, dataset, "the workspace's classifier");
    return true;
  } catch (const ModelError& e) {
    env.warn(std::string("train-vae: fidelity not measured: ") + e.what());
    return false;
  }
}

// Below this share of the classifier's own test accuracy, reconstructions are misread often
// enough that many "failures" would be the generator's (DESIGN §3, "Validity").
constexpr double kFidelityWarning = 0.95;

}  // namespace

json options_json(const VaeStageOptions& o, const std::string& data, const Dataset& dataset,
                  const std::string& device) {
  const TrainVaeOptions& t = o.train;
  json options = {{"data", data},
                  {"latent", t.effective_latent(dataset.channels, dataset.height, dataset.width)},
                  {"filters", t.effective_filters(dataset.channels, dataset.height, dataset.width)},
                  {"decoder", t.decoder},
                  {"loss", t.effective_loss(dataset.channels)},
                  {"beta", t.effective_beta(dataset.channels)},
                  {"anneal_steps", t.anneal_steps},
                  {"epochs", t.effective_epochs(dataset.channels)},
                  {"batch_size", t.batch_size},
                  {"lr", t.lr},
                  {"weight_decay", t.weight_decay},
                  {"seed", t.seed},
                  {"device", device}};
  // Recorded only when it is not fp32, so that the fingerprints of fp32 VAEs stay as they were.
  const std::string precision = resolve_precision(t.precision, parse_device(device, "train-vae"));
  if (precision != "fp32") options["precision"] = precision;
  return options;
}

VaeStageResult run_vae_stage(const StageEnv& env, VaeStageOptions o) {
  prepare_compute(env);
  o.train.device = env.device;
  parse_device(env.device, "train-vae");
  o.train.validate();
  auto lock = hold_workspace(env, "train-vae");
  Workspace workspace(env.workspace);
  const std::string spec = resolve_data_spec(workspace, o.data);
  Dataset dataset = load_dataset_logged(env, spec);
  const json options = options_json(o, spec, dataset, env.device);
  json inputs = {{"dataset", dataset_fingerprint(dataset)}};

  std::unique_ptr<Progress> bar;
  o.train.on_progress = [&](const VaeProgress& p) {
    if (p.batch == 1) {
      if (bar) bar->finish();
      bar = std::make_unique<Progress>(env.log(), fmt::format("epoch {}/{}", p.epoch, p.epochs), p.batches,
                                       env.progress());
    }
    const std::string line =
        fmt::format("reconstruction {:.3f}  KL {:.3f}  β·annealing {:.2f}", p.reconstruction, p.kl, p.kl_weight);
    bar->update(p.batch, line);
    // One line per epoch as it ends (the bar shows only on a terminal).
    if (p.batch == p.batches) {
      if (env.progress())
        bar->finish(line);
      else if (!env.json)
        env.info(
            fmt::format("epoch {:>3}/{}: {} ({})", p.epoch, p.epochs, line, format_duration(bar->elapsed_seconds())));
    }
  };
  VaeStageResult r;
  PlanSender plan(kVaeStage);
  json& summary = r.summary;
  std::string& text = r.text;
  auto save_artifacts = [&](const TrainVaeResult& result) {
    return std::vector<std::pair<std::string, std::string>>{
        save_vae_artifact(workspace, *result.model),
        save_vae_codes(workspace, VaeCodes{result.train_codes, result.test_codes})};
  };
  StageRun run = run_stage(env, workspace, kVaeStage, options, inputs, [&](int64_t) {
    plan.send({kVaeStage, true, plan_info(options, spec, inputs["dataset"].get<std::string>())});
    auto result = train_vae(dataset, o.train);
    if (bar) bar->finish();
    const int epochs = options.at("epochs").get<int>();
    json history = json::array();
    for (const auto& e : result.epochs)
      history.push_back({{"epoch", e.epoch},
                         {"reconstruction", e.reconstruction},
                         {"kl", e.kl},
                         {"loss", e.loss},
                         {"kl_weight", e.kl_weight},
                         {"seconds", e.seconds}});
    json metrics = {{"test_reconstruction", result.test.reconstruction},
                    {"test_kl", result.test.kl},
                    {"test_elbo", result.test.elbo},
                    {"test_loss", result.test.loss},
                    {"loss", options.at("loss")},
                    {"latent", result.model->spec().latent},
                    {"architecture", result.model->spec().describe()},
                    {"epochs", epochs},
                    {"steps", result.steps},
                    {"anneal_steps", result.anneal_steps},
                    {"seconds", result.seconds},
                    {"seconds_per_epoch", result.seconds / epochs},
                    {"history", history}};
    if (result.ranks > 1)
      metrics["distributed"] = distributed_json(result.ranks, result.comm_seconds, result.comm_bytes, result.steps);
    text = fmt::format(
        "train-vae: {} on {}, {} epochs in {}: test reconstruction {:.3f} ({}), KL {:.3f} nats, ELBO {:.3f}",
        result.model->spec().describe(), dataset.name, epochs, format_duration(result.seconds),
        result.test.reconstruction, options.at("loss").get<std::string>(), result.test.kl, result.test.elbo);
    if (auto cls = workspace.latest(kClassifierStage); cls && workspace.artifacts_intact(*cls)) {
      auto device = parse_device(env.device, "train-vae");
      auto classifier = load_workspace_classifier(workspace, device);
      if (!classifier_fits(env, *classifier.model, dataset))
        return Workspace::StageOutput{metrics, save_artifacts(result), nullptr};
      result.model->to(device);
      Fidelity f = measure_fidelity(*result.model, *classifier.model, images_tensor(dataset.test, dataset),
                                    labels_tensor(dataset.test), device);
      result.model->to(torch::kCPU);
      metrics.update(fidelity_json(f, classifier.record.fingerprint));
    }
    return Workspace::StageOutput{metrics, save_artifacts(result), nullptr};
  });
  take_run(r, run);
  // Fidelity needs the workspace's classifier; the VAE does not depend on it, so a new
  // classifier re-measures fidelity without retraining the VAE (and it is reported, not
  // stored: the stored figure stays the one measured with the classifier it names).
  if (auto cls = workspace.latest(kClassifierStage);
      cls && workspace.artifacts_intact(*cls) && summary.value("fidelity_classifier", "") != cls->fingerprint) {
    auto device = parse_device(env.device, "train-vae");
    auto classifier = load_workspace_classifier(workspace, device);
    auto vae = load_workspace_vae(workspace, device);
    if (classifier_fits(env, *classifier.model, dataset)) {
      Fidelity f = measure_fidelity(*vae.model, *classifier.model, images_tensor(dataset.test, dataset),
                                    labels_tensor(dataset.test), device);
      summary.update(fidelity_json(f, classifier.record.fingerprint));
    }
  }
  if (summary.contains("reconstruction_accuracy")) {
    const double ratio = summary["fidelity"].get<double>();
    text += fmt::format(
        "; fidelity: the classifier reads {} of the test reconstructions right ({} of the "
        "images themselves, ratio {:.3f})",
        percent(summary["reconstruction_accuracy"].get<double>()),
        percent(summary["classifier_test_accuracy"].get<double>()), ratio);
    if (ratio < kFidelityWarning)
      env.warn(
          fmt::format("train-vae: the classifier misreads {} of the VAE's test reconstructions (ratio "
                      "{:.3f} to its own test accuracy): failures around such seeds are the generator's; "
                      "identify skips seeds whose reconstruction is misread, but a sharper VAE (more "
                      "--latent, lower --beta, more --epochs) finds more real ones",
                      percent(1 - summary["reconstruction_accuracy"].get<double>()), ratio));
  }
  summary["model"] = workspace.path(kVaeArtifact).string();
  summary["codes"] = workspace.path(kVaeCodesArtifact).string();
  r.test_reconstruction = need(summary, "test_reconstruction", "train-vae").get<double>();
  r.test_kl = need(summary, "test_kl", "train-vae").get<double>();
  if (summary.contains("reconstruction_accuracy"))
    r.reconstruction_accuracy = summary["reconstruction_accuracy"].get<double>();
  text += " -> " + workspace.path(kVaeArtifact).string();
  return r;
}

void run_vae_worker(const StageEnv& env, VaeStageOptions o, const StagePlan& plan) {
  prepare_compute(env);
  o.train.device = env.device;
  o.train.validate();
  o.train.encode_splits = false;
  Dataset dataset = worker_dataset(env, o.data, plan);
  check_options(options_json(o, plan.info.at("data").get<std::string>(), dataset, env.device), plan);
  train_vae(dataset, o.train);
}

}  // namespace defuse
