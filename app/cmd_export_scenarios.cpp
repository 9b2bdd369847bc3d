// defuse export-scenarios: the workspace's scenarios as data a PyTorch user loads: an
// ImageFolder tree of PNGs (members and fresh draws), a manifest (CSV and JSON) with the
// provenance of every image, and the failures and the scenario catalogue as .npy arrays.
//
//   OUT/<class>/s<id>-member-<nnnn>.png   identified failures of the scenario (the classifier's own misreadings)
//   OUT/<class>/s<id>-draw-<nnnn>.png     fresh draws from its Gaussian (judge-confirmed by default)
//   OUT/manifest.csv, OUT/manifest.json   one row per image
//   OUT/failures_*.npy                    every failure identify kept (latent, images, seeds, predictions, ...)
//   OUT/scenarios_*.npy                   every scenario of the distill run (id, mean, covariance, label, ...)
// <class> is the scenario's label, named by the dataset's class (made safe as a file name:
// "T-shirt/top" becomes "T-shirt_top"; the manifest's class_folder says which). The
// arrays are files beside the class folders, not a folder: ImageFolder takes every folder for a class.
// torchvision's ImageFolder numbers the class folders it finds in sorted order, which is not
// the dataset's numbering when some classes have no scenario: the manifest's class_index is.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "common.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/csv.h"
#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/base/npy.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/verdict.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "workspace_suite.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

// Folder names for the classes: the class name with '/', '\\' and control characters replaced,
// never empty, "." or "..", and unique.
std::vector<std::string> class_folders(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::set<std::string> used;
  for (size_t i = 0; i < names.size(); ++i) {
    std::string f;
    for (unsigned char c : names[i]) f += (c < 0x20 || c == 0x7f || c == '/' || c == '\\') ? '_' : static_cast<char>(c);
    if (f.empty() || f == "." || f == ".." || used.count(f)) f = fmt::format("class_{}{}", i, f.empty() ? "" : "_" + f);
    used.insert(f);
    out.push_back(f);
  }
  return out;
}

template <typename T>
std::string npy_of(const at::Tensor& t, const char* descr) {
  auto c = t.contiguous();
  std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
  return npy_bytes(descr, shape, c.data_ptr<T>(), static_cast<size_t>(c.numel()) * sizeof(T));
}

std::string latent_text(const at::Tensor& row) {
  auto r = row.contiguous();
  std::string out;
  for (int64_t i = 0; i < r.numel(); ++i) out += fmt::format("{}{:.6g}", i ? " " : "", r.data_ptr<float>()[i]);
  return out;
}

struct Row {
  std::string file, kind, seed_split, verdict, scenario_verdict;
  int64_t class_index = -1, scenario = 0, seed_index = -1, seed_label = -1, prediction = -1, judge_label = -1;
  double probability = 0;
  at::Tensor latent;
};

const Registrar registrar(
    "export-scenarios",
    "Write the scenarios as an ImageFolder tree of PNGs with a provenance manifest (CSV, JSON), and the failures "
    "and scenarios as .npy arrays",
    [](CLI::App& app, Context& ctx) -> Action {
      auto output = std::make_shared<std::string>();
      auto which = std::make_shared<std::string>("genuine");
      auto members = std::make_shared<bool>(true);
      auto draws = std::make_shared<int64_t>(64);
      auto confirm = std::make_shared<std::string>("judges");
      auto seed = std::make_shared<uint64_t>(0);
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_device_option(app, ctx);
      app.add_option("-o,--output", *output, "The directory to write (replaced if it holds an earlier export)")
          ->required();
      app.add_option("--scenarios", *which,
                     "genuine: the labelled scenarios the judges call genuine; labelled: every labelled scenario")
          ->check(CLI::IsMember({"genuine", "labelled"}))
          ->capture_default_str();
      app.add_flag("--members,!--no-members", *members, "Include the scenarios' identified failures")
          ->capture_default_str();
      app.add_option("--draws", *draws, "Fresh draws per scenario from its Gaussian (0: none)")
          ->check(CLI::NonNegativeNumber)
          ->capture_default_str();
      app.add_option("--confirm", *confirm,
                     "judges: keep only the draws the judges read as the scenario's label; none: every draw")
          ->check(CLI::IsMember({"judges", "none"}))
          ->capture_default_str();
      app.add_option("--seed", *seed, "Random seed of the draws (a stream of their own)")->capture_default_str();
      app.add_option("-d,--data", *data, "Dataset spec (default: the one the workspace's classifier was trained on)");

      return [=](Context& ctx) {
        if (!*members && *draws == 0) throw ConfigError("export-scenarios: --no-members and --draws 0 leave nothing");
        prepare_compute(ctx);
        parse_device(ctx.device, "export-scenarios");  // a bad --device fails before any work
        Workspace workspace(ctx.workspace);
        DirectoryWrite out(*output, "manifest.json", "export-scenarios");
        CorrectionInputs in = load_correction_inputs(ctx, workspace, *data, false, "export-scenarios");
        std::vector<LabelledScenario> chosen = chosen_scenarios(ctx, in, *which, "export-scenarios");
        FailureSet failures = load_failures(workspace, workspace.require(kIdentifyStage, "identify"));
        const auto folders = class_folders(in.dataset.class_names);
        std::vector<Row> rows;
        auto write_png = [&](const std::string& file, const at::Tensor& chw) {
          auto png = encode_png(tensor_to_image(chw));
          out.write(file, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
        };

        Suite drawn;
        if (*draws > 0) {
          SuiteOptions o;
          o.images_per_scenario = *draws;
          o.max_draws = std::max<int64_t>(*draws, 16 * *draws);
          o.failing_only = false;
          o.seed = *seed;
          o.stream = kScenarioExportStream;
          o.device = ctx.device;
          JudgePanel none;
          SuiteInfo info;
          info.class_names = in.dataset.class_names;
          drawn = build_suite(*in.vae, *in.classifier, *confirm == "judges" ? in.judges : none, in.verdict, chosen,
                              in.distill_tau, info, o);
          for (const auto& l : drawn.info.left_out)
            ctx.warn(fmt::format("note: scenario {} has no draws: {}", l.id, l.reason));
        }
        const bool judged = failures.validity.judged();
        for (const auto& s : chosen) {
          const std::string folder = folders.at(static_cast<size_t>(s.label));
          if (*members) {
            int64_t n = 0;
            for (int64_t f : s.member_failures) {
              if (f < 0 || f >= failures.size())
                throw StateError(fmt::format("export-scenarios: scenario {} lists failure {} of {}: run distill again",
                                             s.id, f, failures.size()));
              Row r;
              r.file = fmt::format("{}/s{:02d}-member-{:04d}.png", folder, s.id, n++);
              r.kind = "member";
              r.class_index = s.label;
              r.scenario = s.id;
              r.scenario_verdict = s.verdict;
              r.seed_index = failures.seed_index[f].item<int64_t>();
              r.seed_split = failures.seed_split;
              r.seed_label = failures.seed_label[f].item<int64_t>();
              r.prediction = failures.predicted[f].item<int64_t>();
              r.probability = failures.probability[f].item<float>();
              r.latent = failures.latent[f];
              if (judged) {
                r.judge_label = failures.validity.judge_label[f].item<int64_t>();
                r.verdict = verdict_names().name(static_cast<Verdict>(failures.validity.verdict[f].item<int8_t>()));
              }
              write_png(r.file, failures.images[f]);
              rows.push_back(std::move(r));
            }
          }
          for (size_t k = 0; k < drawn.info.scenario_list.size(); ++k) {
            const auto& sc = drawn.info.scenario_list[k];
            if (sc.id != s.id) continue;
            for (size_t i = 0; i < sc.images.size(); ++i) {
              Row r;
              r.file = fmt::format("{}/s{:02d}-draw-{:04d}.png", folder, s.id, i);
              r.kind = "draw";
              r.class_index = s.label;
              r.scenario = s.id;
              r.scenario_verdict = s.verdict;
              r.prediction = sc.images[i].original_prediction;
              r.probability = sc.images[i].original_probability;
              r.latent = drawn.codes[k][static_cast<int64_t>(i)];
              if (*confirm == "judges" && !in.judges.empty()) r.judge_label = s.label;
              write_png(r.file, drawn.images[k][static_cast<int64_t>(i)]);
              rows.push_back(std::move(r));
            }
          }
        }
        if (rows.empty()) throw StateError("export-scenarios: the chosen scenarios gave no image to write");

        // The manifest: one row per image, the same fields in CSV and JSON.
        const auto& names = in.dataset.class_names;
        auto name_of = [&](int64_t label) { return label >= 0 ? names.at(static_cast<size_t>(label)) : std::string(); };
        auto num = [](int64_t v) { return v >= 0 ? std::to_string(v) : std::string(); };
        std::string csv = csv_record({"file", "class_index", "class_name", "class_folder", "scenario", "kind",
                                      "scenario_verdict", "verdict", "judge_label", "seed_index", "seed_split",
                                      "seed_label", "prediction", "prediction_name", "probability", "latent"});
        json manifest = json::array();
        for (const auto& r : rows) {
          csv += csv_record({r.file, num(r.class_index), name_of(r.class_index),
                             folders.at(static_cast<size_t>(r.class_index)), std::to_string(r.scenario), r.kind,
                             r.scenario_verdict, r.verdict, num(r.judge_label), num(r.seed_index), r.seed_split,
                             num(r.seed_label), num(r.prediction), name_of(r.prediction),
                             fmt::format("{:.6f}", r.probability), latent_text(r.latent)});
          auto lat = r.latent.contiguous();
          manifest.push_back(
              {{"file", r.file},
               {"class_index", r.class_index},
               {"class_name", name_of(r.class_index)},
               {"class_folder", folders.at(static_cast<size_t>(r.class_index))},
               {"scenario", r.scenario},
               {"kind", r.kind},
               {"scenario_verdict", r.scenario_verdict},
               {"verdict", r.verdict.empty() ? json(nullptr) : json(r.verdict)},
               {"judge_label", r.judge_label >= 0 ? json(r.judge_label) : json(nullptr)},
               {"seed_index", r.seed_index >= 0 ? json(r.seed_index) : json(nullptr)},
               {"seed_split", r.seed_split.empty() ? json(nullptr) : json(r.seed_split)},
               {"seed_label", r.seed_label >= 0 ? json(r.seed_label) : json(nullptr)},
               {"prediction", r.prediction},
               {"probability", r.probability},
               {"latent", std::vector<float>(lat.data_ptr<float>(), lat.data_ptr<float>() + lat.numel())}});
        }
        out.write("manifest.csv", csv);

        // The failures and the catalogue as arrays (every failure and scenario, not only the exported ones).
        out.write("failures_latent.npy", npy_of<float>(failures.latent, "<f4"));
        out.write("failures_noise.npy", npy_of<float>(failures.noise, "<f4"));
        out.write("failures_images.npy", npy_of<uint8_t>(failures.images, "|u1"));
        out.write("failures_seed_index.npy", npy_of<int64_t>(failures.seed_index, "<i8"));
        out.write("failures_seed_label.npy", npy_of<int64_t>(failures.seed_label, "<i8"));
        out.write("failures_predicted.npy", npy_of<int64_t>(failures.predicted, "<i8"));
        out.write("failures_probability.npy", npy_of<float>(failures.probability, "<f4"));
        if (judged) {
          out.write("failures_judge_label.npy", npy_of<int64_t>(failures.validity.judge_label, "<i8"));
          out.write("failures_verdict.npy", npy_of<int8_t>(failures.validity.verdict, "|i1"));
        }
        const auto& set = in.scenarios.scenarios;
        const auto k = static_cast<int64_t>(set.size());
        const auto z = k > 0 ? static_cast<int64_t>(set.front().mean.size()) : 0;
        auto ids = torch::empty({k}, torch::kLong), labels = torch::full({k}, -1, torch::kLong);
        auto weights = torch::empty({k}, torch::kFloat32), means = torch::empty({k, z}, torch::kFloat32);
        auto covs = torch::empty({k, z, z}, torch::kFloat32);
        auto member_of = torch::zeros({failures.size()}, torch::kLong);  // scenario id per failure, 0 = none
        std::map<int64_t, int64_t> resolved;
        for (const auto& r : in.resolved)
          if (r.label) resolved[r.scenario_id] = *r.label;
        for (int64_t i = 0; i < k; ++i) {
          const auto& s = set[static_cast<size_t>(i)];
          ids[i] = s.id;
          if (resolved.count(s.id)) labels[i] = resolved[s.id];
          weights[i] = static_cast<float>(s.weight);
          std::memcpy(means[i].data_ptr<float>(), s.mean.data(), sizeof(float) * static_cast<size_t>(z));
          std::memcpy(covs[i].data_ptr<float>(), s.covariance.data(), sizeof(float) * static_cast<size_t>(z * z));
          for (int64_t f : s.member_failures)
            if (f >= 0 && f < failures.size()) member_of[f] = s.id;
        }
        out.write("scenarios_id.npy", npy_of<int64_t>(ids, "<i8"));
        out.write("scenarios_label.npy", npy_of<int64_t>(labels, "<i8"));
        out.write("scenarios_weight.npy", npy_of<float>(weights, "<f4"));
        out.write("scenarios_mean.npy", npy_of<float>(means, "<f4"));
        out.write("scenarios_covariance.npy", npy_of<float>(covs, "<f4"));
        out.write("failures_scenario.npy", npy_of<int64_t>(member_of, "<i8"));

        json doc = {
            {"format", "defuse-scenarios"},
            {"version", 1},
            {"class_names", names},
            {"shape", {{"channels", in.dataset.channels}, {"height", in.dataset.height}, {"width", in.dataset.width}}},
            {"scenarios_kept", *which},
            {"confirm", *confirm},
            {"tau", in.distill_tau},
            {"seed", *seed},
            {"fingerprints", in.fingerprints},
            {"images", manifest}};
        out.write("manifest.json", doc.dump(1) + "\n");
        out.commit();
        int64_t member_rows = 0;
        for (const auto& r : rows) member_rows += r.kind == "member" ? 1 : 0;
        json summary = {{"output", *output},
                        {"scenarios", chosen.size()},
                        {"images", rows.size()},
                        {"members", member_rows},
                        {"draws", static_cast<int64_t>(rows.size()) - member_rows}};
        ctx.result(summary, fmt::format("export-scenarios: wrote {} images of {} scenarios ({} members, {} draws) and "
                                        "the arrays to {}",
                                        rows.size(), chosen.size(), member_rows,
                                        static_cast<int64_t>(rows.size()) - member_rows, *output));
      };
    },
    83);

}  // namespace
}  // namespace defuse::cli
