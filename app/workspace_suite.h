// A workspace's labelled scenarios as a test suite (`defuse export-suite`, `defuse check -w`).
#pragma once

#include <string>

#include "cli.h"
#include "defuse/pipeline/correct_inputs.h"
#include "defuse/base/workspace.h"
#include "defuse/data/dataset.h"
#include "defuse/suite/suite.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace defuse::cli {

struct SuiteRequest {
  std::string scenarios = "genuine";  // "genuine" (the judges' verdict) or "labelled" (every labelled scenario)
  std::string data;                   // --data ("" = the workspace's)
  bool all_confirmed = false;         // every confirmed draw, not only the original's failures
  SuiteOptions options;
};

struct WorkspaceSuite {
  Suite suite;
  Dataset dataset;  // the workspace's data (its test split scores a model too)
};

// The options of export-suite that shape the suite (also taken by `check -w`, which has its
// own --min-accuracy and --data: with_mark_and_data false leaves those out). Returns them.
std::vector<CLI::Option*> add_suite_options(CLI::App& app, SuiteRequest& request, bool with_mark_and_data = true);

// The labelled scenarios of `in` that `which` ("genuine" or "labelled") selects. Throws
// StateError("<stage>: ...") when it selects none (no judges, or no genuine one); warns when some
// selected scenario was not judged.
std::vector<LabelledScenario> chosen_scenarios(Context& ctx, const CorrectionInputs& in, const std::string& which,
                                               const std::string& stage);

// Builds the suite of the workspace's scenarios under `request`. Throws StateError when the
// workspace has none to give: nothing labelled, or (scenarios = genuine) no judges or no
// genuine scenario among the labelled ones.
WorkspaceSuite workspace_suite(Context& ctx, Workspace& workspace, const SuiteRequest& request);

}  // namespace defuse::cli
