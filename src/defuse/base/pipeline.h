// The pipeline as data (DESIGN §2): its stages in the order they run, each with what it
// reads and what it is for. `defuse run` runs them in this order, `status` lists what has
// not run yet from it, and `report` reads the stages it shows from it: one list, not three.
// Torch-free, so that every layer can use it; the torch modules' stage-name constants
// (kIdentifyStage, ...) are checked against it by tests/e2e/cli_test.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace defuse {

struct PipelineStage {
  std::string_view name;                // the stage's name in the catalogue, and its command
  std::string_view does;                // one line, for help and status
  std::vector<std::string_view> reads;  // the stages whose results it reads
};

inline const std::vector<PipelineStage>& pipeline() {
  static const std::vector<PipelineStage> stages{
      {"train-classifier", "train (or import) the classifier under test", {}},
      {"train-judges", "train the judges that tell genuine failures from label changes", {"train-classifier"}},
      {"train-vae", "train the VAE whose latent space the search explores", {"train-classifier"}},
      {"identify",
       "search the latent space for decodes the classifier gets wrong",
       {"train-classifier", "train-judges", "train-vae"}},
      {"distill", "cluster the failures into scenarios", {"identify", "train-vae", "train-classifier"}},
      {"annotate", "give each scenario its correct label, or reject it", {"distill"}},
      {"correct",
       "fine-tune the classifier on the labelled scenarios for a sweep of lambda",
       {"annotate", "distill", "train-vae", "train-classifier", "train-judges"}},
      {"evaluate",
       "score every model on the test split and held-out scenario draws; choose lambda",
       {"correct", "annotate", "distill", "train-vae", "train-judges"}},
      {"report",
       "write the HTML report",
       {"train-classifier", "train-judges", "train-vae", "identify", "distill", "annotate", "correct", "evaluate"}},
  };
  return stages;
}

// The stages' names in order.
inline std::vector<std::string> pipeline_stage_names() {
  std::vector<std::string> names;
  for (const auto& s : pipeline()) names.emplace_back(s.name);
  return names;
}

}  // namespace defuse
