#include "model_export.h"

#include <fmt/format.h>

#include <cstdlib>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/correct/correct.h"
#include "defuse/correct/correct_store.h"
#include "defuse/correct/evaluate.h"
#include "defuse/model/classifier.h"
#include "defuse/model/classifier_store.h"

namespace defuse::cli {

std::string export_model(Workspace& workspace, const std::string& which_in, const std::string& file,
                         c10::Device device) {
  if (file.empty()) throw ConfigError("export: no output file given");
  std::string which = which_in;
  if (which == "chosen") {
    StageRecord evaluation = workspace.require(kEvaluateStage, "evaluate");
    which = evaluation.metrics.value("chosen", std::string());
    if (which.empty()) throw StateError("export: the evaluation recorded no choice: run `defuse evaluate` again");
  } else if (!which.empty() && which.find('=') == std::string::npos && which != "original" && which != "baseline") {
    char* end = nullptr;
    double lambda = std::strtod(which.c_str(), &end);
    if (end == which.c_str() || *end != '\0')
      throw ConfigError("export: unknown model '" + which +
                        "' (expected chosen, original, baseline, lambda=<λ> or <λ>)");
    which = lambda_name(lambda);
  }
  std::unique_ptr<Classifier> model;
  if (which == "original") {
    model = load_workspace_classifier(workspace, device).model;
  } else {
    auto corrected = load_corrected_models(workspace, device);
    std::string names;
    for (auto& m : corrected.models) {
      names += (names.empty() ? "" : ", ") + m.name;
      if (m.name == which) model = std::move(m.model);
    }
    if (!model)
      throw ConfigError(fmt::format("export: the correct stage has no model '{}' (it has original, {})", which, names));
  }
  std::filesystem::path out(file);
  if (out.has_parent_path() && !std::filesystem::exists(out.parent_path()))
    throw IoError("export: the directory " + out.parent_path().string() + " does not exist");
  write_atomic_via(out, [&](const std::filesystem::path& tmp) { export_torchscript(*model, tmp); });
  return out.string();
}

}  // namespace defuse::cli
