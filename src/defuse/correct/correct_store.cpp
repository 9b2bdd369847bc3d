#include "defuse/correct/correct_store.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/model/classifier.h"

namespace defuse {

std::string corrected_model_path(const std::string& name) {
  std::string file = name;
  for (char& c : file)
    if (c == '=') c = '-';
  return "correct/" + file + ".pt";
}

std::vector<std::pair<std::string, std::string>> save_corrected_models(Workspace& workspace,
                                                                       const CorrectResult& result) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : result.models) {
    const std::string path = corrected_model_path(m.name);
    write_atomic_via(workspace.path(path), [&](const std::filesystem::path& tmp) { m.model->save(tmp); });
    out.emplace_back("model:" + m.name, path);
  }
  return out;
}

WorkspaceCorrected load_corrected_models(Workspace& workspace, c10::Device device) {
  WorkspaceCorrected out;
  out.record = workspace.require(kCorrectStage, "correct");
  const auto& models = out.record.metrics.value("models", nlohmann::json::array());
  for (const auto& m : models) {
    StoredModel s;
    s.name = m.at("name").get<std::string>();
    s.lambda = m.at("lambda").is_null() ? -1.0 : m.at("lambda").get<double>();
    const ArtifactRecord* artifact = out.record.artifact("model:" + s.name);
    if (!artifact)
      throw StateError(
          fmt::format("correct: run {} lists model {} but recorded no file for it: run `defuse correct` "
                      "again",
                      out.record.id, s.name));
    s.model = load_classifier(workspace.path(artifact->path), device);
    out.models.push_back(std::move(s));
  }
  if (out.models.empty())
    throw StateError(fmt::format("correct: run {} stored no models: run `defuse correct` again", out.record.id));
  return out;
}

void save_held_out(Workspace& workspace, const LabelledImages& held_out, const std::vector<bool>& genuine,
                   const std::vector<std::pair<std::string, at::Tensor>>& predictions) {
  write_atomic_via(workspace.path(kHeldOutArtifact), [&](const std::filesystem::path& tmp) {
    torch::serialize::OutputArchive archive;
    const int64_t n = held_out.size();
    auto images = n > 0 ? held_out.images : torch::empty({0}, torch::kUInt8);
    auto labels = n > 0 ? held_out.labels : torch::empty({0}, torch::kLong);
    auto scenario = n > 0 ? held_out.scenario : torch::empty({0}, torch::kLong);
    std::vector<uint8_t> flags(genuine.begin(), genuine.end());
    auto per_scenario = torch::tensor(std::vector<int64_t>(flags.begin(), flags.end()), torch::kLong);
    auto is_genuine = n > 0 && per_scenario.numel() > 0 ? per_scenario.index_select(0, scenario).to(torch::kBool)
                                                        : torch::zeros({n}, torch::kBool);
    archive.write("images", images.contiguous());
    archive.write("labels", labels.contiguous());
    archive.write("scenario", scenario.contiguous());
    archive.write("genuine", is_genuine.contiguous());
    // Attribute names allow neither '=' nor '.': "lambda=0.1" is stored as pred_lambda_0p1,
    // and `models` maps the stored names back (JSON: {"pred_lambda_0p1": "lambda=0.1"}).
    nlohmann::json names = nlohmann::json::object();
    for (const auto& [name, pred] : predictions) {
      std::string key = "pred_" + name;
      for (char& c : key) c = c == '=' ? '_' : c == '.' ? 'p' : c == '-' ? 'm' : c;
      names[key] = name;
      archive.write(key, (pred.defined() ? pred : torch::empty({0}, torch::kLong)).contiguous());
    }
    archive.write("models", c10::IValue(names.dump()));
    archive.save_to(tmp.string());
  });
}

}  // namespace defuse
