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
      throw StateError(fmt::format("correct: run {} lists model {} but recorded no file for it: run `defuse correct` "
                                   "again", out.record.id, s.name));
    s.model = load_classifier(workspace.path(artifact->path), device);
    out.models.push_back(std::move(s));
  }
  if (out.models.empty())
    throw StateError(fmt::format("correct: run {} stored no models: run `defuse correct` again", out.record.id));
  return out;
}

}  // namespace defuse
