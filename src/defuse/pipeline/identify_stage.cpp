#include "defuse/pipeline/identify_stage.h"

#include <fmt/format.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/identify/failure_store.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/dist/world.h"
#include "defuse/pipeline/distributed_stage.h"
#include "defuse/report/grid.h"

namespace defuse {
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
    tiles.push_back(
        {tensor_to_image(f.images[i]), fmt::format("{}->{}", seed_label[i], predicted[i]), kTextRed, false});
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
    tiles.push_back(
        {tensor_to_image(seed_images[seed]), std::to_string(r.seed_label[i].item<int64_t>()), kTextGrey, true});
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
    for (size_t j = 0; j < k; ++j)
      out += s.pairs[i][j] ? fmt::format("{:>6}", s.pairs[i][j]) : fmt::format("{:>6}", ".");
    out += "\n";
  }
  return out;
}

}  // namespace

json options_json(const IdentifyStageOptions& o, const std::string& data, bool has_judges,
                  const std::string& precision) {
  const IdentifyOptions& s = o.search;
  json options = {{"data", data},
                  {"split", o.split},
                  {"samples", s.samples},
                  {"keep", s.keep},
                  {"noise", s.noise},
                  {"only_correct", !o.all_seeds},
                  {"check_reconstruction", !o.keep_bad_reconstructions},
                  {"max_seeds", s.max_seeds},
                  {"seed", s.seed},
                  {"grid", o.grid},
                  {"precision", precision}};
  options["gate"] = s.gate == "auto" ? (has_judges ? "genuine" : "none") : s.gate;
  if (has_judges)
    options["verdict"] = {{"agreement", s.verdict.min_agreement}, {"confidence", s.verdict.min_confidence}};
  options["neighbours"] = s.neighbours;
  if (precision == "bf16") options["screen_margin"] = s.screen_margin;
  options["search"] = s.search;
  if (s.search == "growing") options["levels"] = s.levels;
  if (s.noise == "gaussian")
    options["sigma"] = s.sigma;
  else
    options["beta"] = {s.beta_a, s.beta_b};
  return options;
}

IdentifyStageResult run_identify_stage(const StageEnv& env, IdentifyStageOptions o) {
  prepare_compute(env);
  o.search.device = env.device;
  o.search.only_correct = !o.all_seeds;
  o.search.check_reconstruction = !o.keep_bad_reconstructions;
  o.search.validate();
  check_option(o.grid >= 0, "identify", "--grid must be non-negative");
  check_option(o.split == "train" || o.split == "test", "identify", "--split must be train or test");
  auto device = parse_device(env.device, "identify");
  auto lock = hold_workspace(env, "identify");
  Workspace workspace(env.workspace);
  const std::string spec = resolve_data_spec(workspace, o.data);
  // Upstream stages first: a missing one is named before a dataset is read.
  auto vae = load_workspace_vae(workspace, device);
  auto classifier = load_workspace_classifier(workspace, device);
  std::string judges_fingerprint;
  JudgePanel judges = load_workspace_judges(workspace, device, &judges_fingerprint);
  Dataset dataset = load_dataset_logged(env, spec);
  check_vae_fits(*vae.model, dataset, "identify");
  validate_classifier(*classifier.model, dataset, "the workspace's classifier");
  for (int64_t j = 0; j < judges.size(); ++j)
    validate_classifier(judges.model(j), dataset, "judge " + judges.info()[static_cast<size_t>(j)].name);
  if (judges.empty())
    env.warn(
        "identify: no judges in the workspace (`defuse train-judges`): the kept failures are not checked, "
        "and many may be decodes that turned into another class where the classifier is right");
  VaeCodes codes = load_vae_codes(workspace);
  if (codes.train.size(1) != vae.model->spec().latent)
    throw StateError(
        fmt::format("identify: vae/codes.pt has {} latent dimensions but the VAE has {}: run "
                    "`defuse train-vae` again",
                    codes.train.size(1), vae.model->spec().latent));
  const DataSplit& seeds = o.split == "train" ? dataset.train : dataset.test;
  at::Tensor seed_images = images_tensor(seeds, dataset), seed_labels = labels_tensor(seeds);

  const json options = options_json(o, spec, !judges.empty(), resolve_precision(o.search.precision, device));
  json inputs = {{"dataset", dataset_fingerprint(dataset)},
                 {"classifier", classifier.record.fingerprint},
                 {"vae", vae.record.fingerprint},
                 {"judges", judges_fingerprint}};

  std::unique_ptr<Progress> bar;
  o.search.on_progress = [&](const IdentifyProgress& p) {
    if (!bar) bar = std::make_unique<Progress>(env.log(), "identify", p.seeds, env.progress());
    bar->update(p.seeds_done, fmt::format("{} decodes, {} failures", p.decodes, p.failures));
  };
  IdentifyStageResult r;
  json& summary = r.summary;
  std::string& text = r.text;
  PlanSender plan(kIdentifyStage);
  StageRun run = run_stage(env, workspace, kIdentifyStage, options, inputs, [&](int64_t run_id) {
    if (root_of_many()) {
      // The other ranks get the models as their files and the codes' spread: they never read
      // the workspace.
      StagePlan p{kIdentifyStage, true, plan_info(options, spec, inputs["dataset"].get<std::string>())};
      p.files = {read_file(workspace.path(kClassifierArtifact)), read_file(workspace.path(kVaeArtifact))};
      json judge_names = json::array();
      for (const auto& [info, path] : workspace_judge_files(workspace)) {
        p.files.push_back(read_file(path));
        judge_names.push_back(info.name);
      }
      p.info["judges"] = judge_names;
      p.tensors = {codes.train_spread()};
      plan.send(std::move(p));
    }
    LatentReference reference{codes.train, labels_tensor(dataset.train)};
    FailureSet failures = search_latent(*vae.model, *classifier.model, &judges, seed_images, seed_labels,
                                        codes.train_spread(), reference, o.search);
    if (bar) bar->finish();
    failures.seed_split = o.split;
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
                    {"batch_size", o.search.batch_size},
                    {"search_seconds", s.search_seconds},
                    {"seconds", s.seconds},
                    {"seed_split", o.split},
                    {"gate", s.gate},
                    {"judges", s.judges}};
    if (s.judges > 0) {
      metrics["failing_verdicts"] = {
          {"genuine", s.failing_genuine}, {"label_change", s.failing_label_change}, {"ambiguous", s.failing_ambiguous}};
      metrics["kept_verdicts"] = {
          {"genuine", s.kept_genuine}, {"label_change", s.kept_label_change}, {"ambiguous", s.kept_ambiguous}};
      metrics["genuine_share"] = s.failures ? double(s.kept_genuine) / double(s.failures) : 0.0;
    }
    if (failures.validity.has_neighbours() && failures.size() > 0) {
      metrics["knn_seed_share"] = failures.validity.knn_seed_share.mean().item<double>();
      metrics["realism_median"] = failures.validity.realism.median().item<double>();
    }
    std::vector<std::pair<std::string, std::string>> artifacts{save_failure_tensors(workspace, failures)};
    if (failures.size() > 0 && o.grid > 0) {
      auto png = encode_png(failure_grid(failures, seed_images, o.grid));
      write_file_atomic(workspace.path(kFailureGridArtifact),
                        std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
      artifacts.emplace_back("grid", kFailureGridArtifact);
      metrics["grid"] = workspace.path(kFailureGridArtifact).string();
    }
    if (failures.rejected.size() > 0 && o.grid > 0) {
      auto png = encode_png(rejected_grid(failures.rejected, seed_images, o.grid));
      write_file_atomic(workspace.path(kRejectedGridArtifact),
                        std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
      artifacts.emplace_back("rejected_grid", kRejectedGridArtifact);
    }
    text = fmt::format(
        "identify: {} seeds ({} split), {} decodes in {} ({:.0f} decodes/s, {}): {} failing decodes ({}), {} kept "
        "(at most {} per seed, {} seeds with failures), {:.1f} decodes per kept failure, {} distinct "
        "seed->predicted pairs",
        s.seeds, o.split, s.decodes, format_duration(s.search_seconds), s.decodes_per_second(), s.precision,
        s.failing_decodes, percent(s.failure_rate()), s.failures, o.search.keep, s.seeds_with_failures,
        s.decodes_per_failure(), distinct);
    if (s.judges > 0)
      text += fmt::format(
          "; the {} judges read the failing decodes as {} genuine (the seed's label), {} label "
          "changes (as the classifier did: it is right there), {} ambiguous; gate {}: {} of the "
          "kept failures are genuine",
          s.judges, s.failing_genuine, s.failing_label_change, s.failing_ambiguous, s.gate, s.kept_genuine);
    if (s.seeds_bad_reconstruction > 0)
      env.info(
          fmt::format("identify: skipped {} of {} checked seeds because the classifier misreads their "
                      "plain VAE reconstruction (their failures would be the generator's)",
                      s.seeds_bad_reconstruction, s.seeds_checked));
    if (!env.json && s.failures > 0) env.info(pair_table(s));
    return Workspace::StageOutput{metrics, artifacts, failure_rows_writer(run_id, failures)};
  });
  take_run(r, run);
  summary["failures_file"] = workspace.path(kFailuresArtifact).string();
  if (summary.contains("grid")) text += " -> " + summary["grid"].get<std::string>();
  r.seeds = need(summary, "seeds", "identify").get<int64_t>();
  r.failures = need(summary, "failures", "identify").get<int64_t>();
  r.decodes_per_second = need(summary, "decodes_per_second", "identify").get<double>();
  return r;
}

void run_identify_worker(const StageEnv& env, IdentifyStageOptions o, const StagePlan& plan) {
  prepare_compute(env);
  o.search.device = env.device;
  o.search.only_correct = !o.all_seeds;
  o.search.check_reconstruction = !o.keep_bad_reconstructions;
  o.search.validate();
  auto device = parse_device(env.device, "identify");
  const auto judge_names = plan.info.at("judges").get<std::vector<std::string>>();
  check_options(options_json(o, plan.info.at("data").get<std::string>(), !judge_names.empty(),
                             resolve_precision(o.search.precision, device)),
                plan);
  if (plan.files.size() != 2 + judge_names.size() || plan.tensors.size() != 1)
    throw dist::DistError("identify: rank 0's plan does not carry the models it should (a different defuse version?)");
  ScratchDir scratch;
  auto classifier = load_classifier(scratch.write("classifier.pt", plan.files[0]), device);
  auto vae = load_vae(scratch.write("vae.pt", plan.files[1]), device);
  JudgePanel judges;
  for (size_t j = 0; j < judge_names.size(); ++j) {
    JudgeInfo info;
    info.name = judge_names[j];
    judges.add(load_classifier(scratch.write(info.name + ".pt", plan.files[2 + j]), device), info);
  }
  Dataset dataset = worker_dataset(env, o.data, plan);
  const DataSplit& seeds = o.split == "train" ? dataset.train : dataset.test;
  search_latent(*vae, *classifier, &judges, images_tensor(seeds, dataset), labels_tensor(seeds), plan.tensors[0],
                LatentReference{}, o.search);
}

}  // namespace defuse
