#include "defuse/pipeline/report_stage.h"

#include <fmt/format.h>
#include <torch/version.h>

#include <chrono>
#include <ctime>
#include <map>

#include "defuse/annotate/annotation_store.h"
#include "defuse/annotate/scenario_store.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/base/pipeline.h"
#include "defuse/base/progress.h"
#include "defuse/base/system.h"
#include "defuse/base/timing.h"
#include "defuse/correct/correct.h"
#include "defuse/correct/evaluate.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/report/html_report.h"
#include "defuse/report/interpolation.h"
#include "defuse/report/tsne.h"

namespace defuse {
namespace {

using nlohmann::json;

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.6g}", v.get<double>());
  if (v.is_array()) {
    std::vector<std::string> parts;
    for (const auto& e : v) parts.push_back(scalar_text(e));
    return fmt::format("{}", fmt::join(parts, ", "));
  }
  return v.dump();
}

// A stage's settings and results in words, for readers who do not know the option names:
// (where: "o" options or "m" metrics, key, words, how: "" as is, "%" a fraction as a
// percentage, "s" seconds as a duration). Keys a run does not have are left out.
struct Row {
  char where;
  const char* key;
  const char* words;
  const char* how;
};

const std::map<std::string, std::pair<std::string, std::vector<Row>>>& stage_rows() {
  static const std::map<std::string, std::pair<std::string, std::vector<Row>>> rows{
      {"train-classifier",
       {"Classifier",
        {{'o', "data", "data", ""},
         {'o', "classifier", "imported from", ""},
         {'m', "arch", "architecture", ""},
         {'o', "epochs", "training epochs", ""},
         {'o', "augment", "augmentation", ""},
         {'m', "test_accuracy", "test accuracy", "%"},
         {'m', "seconds", "training time", "s"}}}},
      {"train-judges",
       {"Judges",
        {{'o', "archs", "trained judges (architectures)", ""},
         {'o', "files", "your judges", ""},
         {'o', "epochs", "training epochs each", ""},
         {'m', "count", "judges", ""}}}},
      {"train-vae",
       {"Generator (VAE)",
        {{'m', "architecture", "architecture", ""},
         {'o', "loss", "reconstruction loss", ""},
         {'o', "beta", "KL weight β", ""},
         {'o', "epochs", "training epochs", ""},
         {'m', "reconstruction_accuracy", "classifier accuracy on its reconstructions", "%"},
         {'m', "test_elbo", "test ELBO (nats)", ""},
         {'m', "seconds", "training time", "s"}}}},
      {"identify",
       {"Search",
        {{'m', "seeds", "seed images searched", ""},
         {'o', "split", "seeds from the split", ""},
         {'m', "seeds_bad_reconstruction", "seeds skipped (reconstruction misread)", ""},
         {'o', "samples", "perturbations per seed", ""},
         {'o', "sigma", "noise σ (× the latent spread)", ""},
         {'o', "keep", "failures kept per seed at most", ""},
         {'o', "gate", "which failures are kept", ""},
         {'m', "decodes", "decodes", ""},
         {'m', "failing_decodes", "decodes the classifier gets wrong", ""},
         {'m', "failures", "failures kept", ""},
         {'m', "genuine_share", "of them genuine (judges)", "%"},
         {'m', "decodes_per_second", "decodes per second", ""},
         {'m', "seconds", "time", "s"}}}},
      {"distill",
       {"Scenarios (DP-GMM)",
        {{'o', "points", "clustered", ""},
         {'o', "components", "components at most", ""},
         {'o', "min_seeds", "seeds a scenario needs at least", ""},
         {'m', "scenarios", "scenarios", ""},
         {'m', "iterations", "iterations", ""},
         {'m', "seconds", "time", "s"}}}},
      {"annotate",
       {"Labels",
        {{'o', "mode", "decided by", ""},
         {'m', "labelled", "labelled", ""},
         {'m', "rejected", "rejected", ""},
         {'m', "automatic", "automatic decisions", ""}}}},
      {"correct",
       {"Correction",
        {{'o', "lambdas", "λ sweep", ""},
         {'o', "baseline", "baseline", ""},
         {'o', "epochs", "epochs each", ""},
         {'o', "lr", "learning rate", ""},
         {'m', "scenario_samples", "scenario samples trained on", ""},
         {'m', "seconds", "time", "s"}}}},
      {"evaluate",
       {"Evaluation",
        {{'m', "chosen", "chosen model", ""},
         {'m', "rule", "rule", ""},
         {'m', "scenario_images", "held-out draws scored", ""},
         {'m', "test_images", "test images", ""}}}},
  };
  return rows;
}

// The stage's section: what ran and when, then its rows in words.
ReportSection stage_section(const StageRecord& r) {
  ReportSection s;
  auto it = stage_rows().find(r.stage);
  s.title = it == stage_rows().end() ? r.stage : it->second.first;
  s.rows.push_back(
      {"run", fmt::format("{} #{}, finished {} in {}", r.stage, r.id, r.finished_at, format_duration(r.seconds))});
  if (it == stage_rows().end()) return s;
  for (const Row& row : it->second.second) {
    const json& from = row.where == 'o' ? r.options : r.metrics;
    if (!from.contains(row.key) || from[row.key].is_null()) continue;
    const json& v = from[row.key];
    if (v.is_string() && v.get<std::string>().empty()) continue;
    if (v.is_array() && v.empty()) continue;
    std::string text = scalar_text(v);
    if (std::string(row.how) == "%" && v.is_number()) text = percent(v.get<double>());
    if (std::string(row.how) == "s" && v.is_number()) text = format_duration(v.get<double>());
    if (v.is_boolean()) text = v.get<bool>() ? "yes" : "no";
    s.rows.push_back({row.words, text});
  }
  return s;
}

ReportImage png_file(Workspace& workspace, const std::string& relative, std::string caption, std::string tone = "") {
  return {read_file(workspace.path(relative)), std::move(caption), std::move(tone)};
}

std::string encode(const Image& image) {
  auto png = encode_png(image);
  return std::string(png.begin(), png.end());
}

// A random subset of `n` rows (all when n <= k), sorted.
at::Tensor subset(int64_t n, int64_t k, at::Generator& gen) {
  if (n <= k) return torch::arange(n, torch::kLong);
  return std::get<0>(torch::randperm(n, gen, torch::kLong).slice(0, 0, k).sort());
}

}  // namespace

json options_json(const ReportStageOptions& o, const std::string& output) {
  return {{"map_train", o.map_train},
          {"map_failures", o.map_failures},
          {"perplexity", o.perplexity},
          {"seed", o.seed},
          {"output", output}};
}

ReportStageResult run_report_stage(const StageEnv& env, const ReportStageOptions& options) {
  prepare_compute(env);
  const ReportStageOptions* o = &options;
  check_option(o->map_train >= 0 && o->map_failures >= 0, "report", "--map-train and --map-failures must be >= 0");
  check_option(o->perplexity > 0, "report", "--perplexity must be positive");
  auto device = parse_device(env.device, "report");
  Workspace workspace(env.workspace);
  std::vector<std::string> stages;  // what the report reads: every stage before it
  for (const auto& s : pipeline())
    if (s.name != kReportStage) stages.emplace_back(s.name);
  std::map<std::string, StageRecord> latest;
  json inputs = json::object();
  for (const auto& s : stages)
    if (auto r = workspace.latest(s); r && workspace.artifacts_intact(*r)) {
      latest[s] = *r;
      inputs[s] = r->fingerprint;
    }
  if (!latest.count(kClassifierStage))
    throw StateError("report: the workspace " + env.workspace +
                     " has no classifier yet: run `defuse run` or "
                     "`defuse train-classifier` first");
  std::optional<ScenarioSet> scenarios;
  std::vector<ResolvedScenario> resolved;
  if (latest.count("distill")) {
    scenarios = load_scenarios(workspace.db(), latest["distill"].id);
    resolved = resolve_annotations(workspace.db(), *scenarios);
    inputs["annotations"] = resolution_fingerprint(latest["distill"].id, resolved);
  }
  const std::string output = o->output.empty() ? workspace.path(kReportArtifact).string() : o->output;
  const json fingerprint = options_json(options, output);

  ReportStageResult r;
  json& summary = r.summary;
  StageRun run = run_stage(env, workspace, kReportStage, fingerprint, inputs, [&](int64_t) {
    const auto start = std::chrono::steady_clock::now();
    ReportData report;
    report.title = "defuse report: " + env.workspace;
    {
      std::time_t now = std::time(nullptr);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
      report.generated_at = buf;
    }
    Dataset dataset = load_dataset_logged(env, resolve_data_spec(workspace, options.data));
    report.class_names = dataset.class_names;
    auto name = [&](int64_t label) {
      return label >= 0 && label < dataset.num_classes() ? dataset.class_names[static_cast<size_t>(label)]
                                                         : std::string("?");
    };
    for (const auto& s : stages)
      if (latest.count(s)) report.summary.push_back(stage_section(latest[s]));
    ReportSection versions;
    versions.title = "versions";
    versions.rows = {{"defuse", DEFUSE_VERSION},
                     {"LibTorch", TORCH_VERSION},
                     {"BLAS", detect_blas().name},
                     {"data", dataset.source}};
    report.summary.push_back(versions);

    // Evaluation: models and per-scenario accuracies.
    std::map<int64_t, std::pair<double, double>> before_after;  // scenario id -> (original, chosen)
    if (latest.count(kEvaluateStage)) {
      const json& ev = latest[kEvaluateStage].metrics;
      report.choice_rule = ev.value("rule", std::string());
      const std::string chosen = ev.value("chosen", std::string());
      json original_per, chosen_per;
      for (const auto& m : ev.value("models", json::array())) {
        ReportModel rm;
        rm.name = m.value("name", std::string());
        rm.lambda = m["lambda"].is_number() ? m["lambda"].get<double>() : -1.0;
        rm.test_accuracy = m.value("test_accuracy", 0.0);
        rm.scenario_accuracy = m.value("scenario_accuracy", 0.0);
        rm.failure_accuracy = m["failure_accuracy"].is_number() ? m["failure_accuracy"].get<double>() : -1.0;
        rm.genuine_scenario_accuracy =
            m.contains("genuine_scenario_accuracy") && m["genuine_scenario_accuracy"].is_number()
                ? m["genuine_scenario_accuracy"].get<double>()
                : -1.0;
        rm.chosen = rm.name == chosen;
        if (rm.name == "original") original_per = m.value("per_scenario", json::object());
        if (rm.chosen) chosen_per = m.value("per_scenario", json::object());
        report.models.push_back(rm);
      }
      for (const auto& [id, acc] : original_per.items())
        before_after[std::stoll(id)] = {acc.get<double>(), chosen_per.value(id, -1.0)};
      ReportFindings& f = report.findings;
      for (const auto& rm : report.models) {
        if (rm.name == "original") {
          f.original_genuine = rm.genuine_scenario_accuracy;
          f.original_scenario = rm.scenario_accuracy;
        }
        if (rm.chosen) {
          f.chosen = rm.name;
          f.chosen_test_accuracy = rm.test_accuracy;
          f.chosen_genuine = rm.genuine_scenario_accuracy;
          f.chosen_scenario = rm.scenario_accuracy;
        }
      }
    } else {
      report.notes.push_back(
          "The classifier has not been corrected and evaluated yet (`defuse correct`, "
          "`defuse evaluate`): no λ curves or before/after figures.");
    }

    // Scenarios.
    if (scenarios) {
      int64_t automatic = 0;
      for (const auto& s : scenarios->scenarios) {
        ReportScenario rs;
        rs.id = s.id;
        rs.seed_label = name(s.seed_label);
        rs.predicted_label = name(s.predicted_label);
        rs.weight = s.weight;
        rs.failure_rate = s.failure_rate;
        rs.members = s.members;
        rs.neighbour_accuracy = s.neighbour_accuracy;
        for (const auto& r : resolved)
          if (r.scenario_id == s.id) {
            rs.automatic = r.automatic && r.decided();
            automatic += rs.automatic;
            if (r.status == Resolution::kLabelled)
              rs.annotation = "labelled: " + name(*r.label);
            else if (r.status == Resolution::kRejected)
              rs.annotation = "rejected: " + r.reject_reason;
            else
              rs.annotation = to_string(r.status);
          }
        if (auto it = before_after.find(s.id); it != before_after.end())
          std::tie(rs.accuracy_before, rs.accuracy_after) = it->second;
        auto reading = [&](const ScenarioImage& img) {
          return img.judge >= 0 ? "; judges: " + name(img.judge) : std::string();
        };
        for (const auto& img : s.samples)
          rs.samples.push_back(png_file(workspace, img.path, "→ " + name(img.predicted) + reading(img),
                                        img.predicted == s.seed_label ? "good" : "bad"));
        for (const auto& img : s.member_images)
          rs.member_images.push_back(
              png_file(workspace, img.path, name(img.label) + " → " + name(img.predicted) + reading(img), "bad"));
        const ScenarioValidity& v = s.validity;
        rs.verdict = v.verdict;
        if (v.judge_label >= 0)
          rs.judges_read = fmt::format("{} ({} of its failures)", name(v.judge_label), percent(v.judge_agreement, 0));
        rs.genuine_share = v.genuine_share;
        rs.knn_seed_share = v.knn_seed_share;
        rs.realism = v.realism;
        rs.draw_genuine_rate = v.draw_genuine_rate;
        for (const auto& img : s.neighbours)
          rs.neighbours.push_back(png_file(
              workspace, img.path, name(img.label) + (img.predicted == img.label ? "" : " → " + name(img.predicted)),
              img.predicted == img.label ? "good" : "bad"));
        report.scenarios.push_back(std::move(rs));
      }
      ReportFindings& f = report.findings;
      f.scenarios = static_cast<int64_t>(scenarios->scenarios.size());
      const bool judged = std::any_of(scenarios->scenarios.begin(), scenarios->scenarios.end(),
                                      [](const Scenario& sc) { return sc.validity.known(); });
      if (judged) {
        f.genuine = f.label_change = f.ambiguous = 0;
        for (const auto& sc : scenarios->scenarios) {
          f.genuine += sc.validity.verdict == "genuine";
          f.label_change += sc.validity.verdict == "label-change";
          f.ambiguous += sc.validity.verdict == "ambiguous";
        }
      }
      const std::string mode = latest.count("annotate") ? latest["annotate"].options.value("mode", "") : "";
      if (automatic > 0) {
        if (mode == "auto-judges") {
          f.labels_from = "the judges (automatic, no person looked)";
          report.notes.push_back(
              fmt::format("{} of {} scenarios were decided automatically from the judges' "
                          "reading, not by a person.",
                          automatic, scenarios->scenarios.size()));
        } else {
          f.labels_from = "each scenario's seed label (automatic and unchecked)";
          report.notes.push_back(
              fmt::format("{} of {} scenarios were labelled automatically with their "
                          "dominant seed label, unchecked: some may teach the classifier a "
                          "wrong label.",
                          automatic, scenarios->scenarios.size()));
        }
      } else if (latest.count("annotate")) {
        f.labels_from = "people";
      }
    }

    if (latest.count(kIdentifyStage)) {
      const json& m = latest[kIdentifyStage].metrics;
      ReportFindings& f = report.findings;
      f.failing_decodes = m.value("failing_decodes", int64_t{-1});
      f.failures = m.value("failures", int64_t{-1});
      f.gate = m.value("gate", std::string("none"));
      f.seeds_checked = m.value("seeds_checked", int64_t{-1});
      f.seeds_bad_reconstruction = m.value("seeds_bad_reconstruction", int64_t{-1});
      if (m.contains("failing_verdicts")) {
        f.failing_genuine = m["failing_verdicts"].value("genuine", int64_t{-1});
        f.failing_label_change = m["failing_verdicts"].value("label_change", int64_t{-1});
        f.failing_ambiguous = m["failing_verdicts"].value("ambiguous", int64_t{-1});
      }
      if (std::filesystem::exists(workspace.path(kRejectedGridArtifact)) &&
          latest[kIdentifyStage].artifact("rejected_grid"))
        report.label_change_grid = png_file(workspace, kRejectedGridArtifact,
                                            "Seeds (framed) beside decodes the judges read as the classifier "
                                            "did, marked seed label → prediction");
    }
    if (latest.count(kJudgesStage)) {
      std::vector<std::string> parts;
      for (const auto& j : latest[kJudgesStage].metrics.value("judges", json::array()))
        parts.push_back(fmt::format("{} ({})",
                                    j.value("origin", "") == "trained" ? j.value("arch", std::string("?"))
                                                                       : j.value("origin", std::string("?")),
                                    percent(j.value("test_accuracy", 0.0))));
      report.findings.judges =
          fmt::format("read by {} judge{}: {}", parts.size(), parts.size() == 1 ? "" : "s", fmt::join(parts, ", "));
    }
    if (latest.count("train-vae")) {
      const json& m = latest["train-vae"].metrics;
      report.findings.reconstruction_accuracy = m.value("reconstruction_accuracy", -1.0);
      report.findings.test_accuracy = m.value("classifier_test_accuracy", -1.0);
    }

    // Figures from identify.
    if (latest.count(kIdentifyStage) && std::filesystem::exists(workspace.path(kFailureGridArtifact)))
      report.failure_grid = png_file(workspace, kFailureGridArtifact,
                                     "Failures: each seed (framed) beside a decode the classifier gets wrong, "
                                     "marked seed label → prediction");

    // The latent map and the interpolation strip need the models.
    if (latest.count("train-vae")) {
      auto vae = load_workspace_vae(workspace, device);
      auto classifier = load_workspace_classifier(workspace, device);
      check_vae_fits(*vae.model, dataset, "report");
      VaeCodes codes = load_vae_codes(workspace);
      auto gen = at::detail::createCPUGenerator(o->seed);
      auto train_labels = labels_tensor(dataset.train);
      std::vector<at::Tensor> blocks;
      std::vector<at::Tensor> block_labels;
      auto train_rows = subset(codes.train.size(0), o->map_train, gen);
      blocks.push_back(codes.train.index_select(0, train_rows));
      block_labels.push_back(train_labels.index_select(0, train_rows));
      std::optional<FailureSet> failures;
      if (latest.count(kIdentifyStage)) failures = load_failures(workspace, latest[kIdentifyStage]);
      int64_t n_fail = 0;
      if (failures && failures->size() > 0) {
        auto rows = subset(failures->size(), o->map_failures, gen);
        blocks.push_back(failures->latent.index_select(0, rows));
        block_labels.push_back(failures->seed_label.index_select(0, rows));
        n_fail = rows.size(0);
      }
      int64_t n_means = 0;
      if (scenarios)
        for (const auto& s : scenarios->scenarios) {
          blocks.push_back(torch::tensor(s.mean).view({1, -1}));
          block_labels.push_back(torch::tensor({s.seed_label}, torch::kLong));
          report.map.scenario_ids.push_back(s.id);
          ++n_means;
        }
      auto points = torch::cat(blocks).to(torch::kFloat64).contiguous();
      auto labels = torch::cat(block_labels).to(torch::kLong).contiguous();
      const int64_t n_train = train_rows.size(0);
      if (points.size(0) >= 4) {
        TsneOptions t;
        t.perplexity = o->perplexity;
        t.clamp_perplexity = true;
        t.seed = o->seed;
        Progress bar(env.log(), "t-SNE", t.iterations, env.progress());
        t.on_progress = [&](const TsneProgress& p) {
          bar.update(p.iteration, fmt::format("KL {:.3f}", p.kl_divergence));
        };
        auto result = tsne(points.data_ptr<double>(), points.size(0), points.size(1), t);
        bar.finish(fmt::format("KL {:.3f}", result.kl_divergence));
        const auto* lab = labels.data_ptr<int64_t>();
        for (int64_t i = 0; i < points.size(0); ++i) {
          ReportPoint p{static_cast<float>(result.embedding[static_cast<size_t>(2 * i)]),
                        static_cast<float>(result.embedding[static_cast<size_t>(2 * i + 1)]),
                        static_cast<int32_t>(lab[i])};
          if (i < n_train)
            report.map.train.push_back(p);
          else if (i < n_train + n_fail)
            report.map.failures.push_back(p);
          else
            report.map.scenario_means.push_back(p);
        }
        report.map.note = fmt::format(
            "t-SNE ({}, perplexity {:.0f}, KL {:.3f}) of {} training codes, {} failure codes and {} scenario "
            "means, coloured by class (failures and scenarios by their seed's class)",
            to_string(result.method), result.perplexity, result.kl_divergence, n_train, n_fail, n_means);
      }

      // Interpolation: from the seed image of the top scenario's member nearest its mean
      // to the training image of its predicted class nearest the mean.
      if (scenarios && !scenarios->scenarios.empty() && failures && failures->size() > 0 &&
          failures->seed_split == "train") {
        const Scenario& top = scenarios->scenarios.front();
        auto mean = torch::tensor(top.mean).view({1, -1});
        int64_t seed_row = -1;
        if (!top.member_failures.empty()) {
          auto members = torch::tensor(top.member_failures, torch::kLong);
          auto d = (failures->latent.index_select(0, members) - mean).pow(2).sum(1);
          seed_row = failures->seed_index[top.member_failures[static_cast<size_t>(d.argmin().item<int64_t>())]]
                         .item<int64_t>();
        }
        auto same = train_labels.eq(top.predicted_label).nonzero().view(-1);
        if (seed_row >= 0 && same.size(0) > 0) {
          auto d = (codes.train.index_select(0, same) - mean).pow(2).sum(1);
          const int64_t other = same[d.argmin().item<int64_t>()].item<int64_t>();
          auto images = images_tensor(dataset.train, dataset);
          auto ends = images.index_select(0, torch::tensor({seed_row, other}, torch::kLong));
          auto strip =
              interpolation_strip(*vae.model, *classifier.model, ends, top.seed_label, top.predicted_label, 10, device);
          report.interpolation = ReportImage{
              encode(strip.strip),
              fmt::format("Interpolation through scenario {} ({} → {}): from a seed of its failures to the "
                          "nearest {} in latent space; red tiles are predicted as neither end's label",
                          top.id, name(top.seed_label), name(top.predicted_label), name(top.predicted_label)),
              ""};
        }
      }
    }

    const std::string html = render_report(report);
    write_file_atomic(output, html);
    summary = {{"report", output},
               {"bytes", static_cast<int64_t>(html.size())},
               {"scenarios", static_cast<int64_t>(report.scenarios.size())},
               {"map_points", static_cast<int64_t>(report.map.train.size() + report.map.failures.size() +
                                                   report.map.scenario_means.size())},
               {"models", static_cast<int64_t>(report.models.size())},
               {"seconds", seconds_since(start)}};
    Workspace::StageOutput out;
    out.metrics = summary;
    if (o->output.empty()) out.artifacts = {{"report", kReportArtifact}};
    return out;
  });
  take_run(r, run);
  r.path = need(summary, "report", "report").get<std::string>();
  r.text = fmt::format("report: {} ({} scenarios, {} map points) — open it in a browser", r.path,
                       summary.value("scenarios", 0), summary.value("map_points", 0));
  return r;
}

}  // namespace defuse
