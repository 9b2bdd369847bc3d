// Scenario test suites with their images (the torch half of suite_format.h): building one from
// a workspace's labelled scenarios, moving it to and from a directory, and scoring a model on it.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "defuse/suite/suite_format.h"

namespace defuse {

class Classifier;
class JudgePanel;
class Vae;
struct LabelledScenario;
struct VerdictRule;

// The random stream of the suite's draws (correct.h lists the others): disjoint from
// correct's training draws and evaluate's held-out ones, so a corrected model is scored on
// images it never trained on.
inline constexpr uint64_t kSuiteStream = 4;
// The fresh draws of `defuse export-scenarios` (a dataset users train on: never the suite's).
inline constexpr uint64_t kScenarioExportStream = 5;

struct SuiteOptions {
  int64_t images_per_scenario = 64;           // images kept per scenario (fewer when the draws run out)
  int64_t max_draws = 8192;                   // draws per scenario at most, in rounds of `round_size`
  int64_t round_size = 512;                   // draws decoded and read per round
  bool failing_only = true;                   // keep only the draws the original classifier gets wrong
                                              // (false: every confirmed draw, the scenario's whole spread)
  double min_accuracy = kDefaultMinAccuracy;  // each scenario's pass mark
  uint64_t seed = 0;                          // the draws
  uint64_t stream = kSuiteStream;             // ... from this stream of the seed
  std::string device = "cpu";
  int64_t batch_size = 256;  // decodes and forward passes per batch

  void validate() const;  // throws ConfigError
};

struct Suite {
  SuiteInfo info;
  std::vector<at::Tensor> images;  // per scenario of info.scenario_list: uint8 [n, C, H, W], CPU
  std::vector<at::Tensor> codes;   // ... their latent codes, float32 [n, Z] (build_suite; not stored)
};

// Builds the suite of `scenarios` (labelled; the caller chooses which): per scenario, rounds
// of draws from N(mean, τ·cov) decoded and rounded to 8 bits, kept when `judges` (if not empty)
// read the scenario's label under `rule`, and, with failing_only, when `original` does not;
// until images_per_scenario are kept or max_draws are made. A scenario with none is listed in
// info.left_out with the reason. `info` comes filled with the dataset's shape, classes and the
// provenance; build_suite adds the scenarios. Deterministic for (options.seed, scenario id).
Suite build_suite(Vae& vae, Classifier& original, JudgePanel& judges, const VerdictRule& rule,
                  const std::vector<LabelledScenario>& scenarios, double tau, SuiteInfo info,
                  const SuiteOptions& options);

// Writes the suite into directory `dir` (suite.json and images/), atomically as a whole: it is
// built in a temporary sibling and renamed into place; an existing suite there is replaced, any
// other existing non-empty directory is refused (IoError), so nothing of the user's is lost.
void save_suite(Suite& suite, const std::filesystem::path& dir);

// Reads a suite directory: suite.json (DataError when malformed or of a newer format), every
// image (IoError when missing, DataError when its hash, format or shape is wrong).
Suite load_suite(const std::filesystem::path& dir);

// Checks that `model` takes images of the suite's shape and gives one logit per class, by
// running it on two blank images. Throws ModelError naming `what` and both shapes.
void check_model_fits(Classifier& model, const SuiteInfo& info, const std::string& what);

// Scores `model` on every scenario of the suite: accuracy against the scenario's label, its
// Wilson interval, pass or fail at its mark (`min_accuracy` overrides every scenario's).
CheckReport check_suite(Classifier& model, const Suite& suite, std::optional<double> min_accuracy, c10::Device device,
                        int64_t batch_size = 500);

}  // namespace defuse
