// The scenario catalogue (DESIGN §2, "distill" → "annotate"): the failure scenarios that the
// distillation stage found, as rows of the workspace catalogue, with the PNG thumbnails of
// their decoded samples and of their nearest real training images. Torch-free, so that the
// labelling page and the report read scenarios without LibTorch.
//
// Writer: `defuse distill` calls write_scenarios() inside the StageOutput::extra callback of
// Workspace::run_stage, so the scenarios appear in the same transaction that marks the
// stage complete (or not at all). Readers: load_scenarios() for the latest complete,
// intact "distill" run.
//
// Tables (created on demand by ensure_scenario_tables):
//   scenario_sets   (run_id PK → stage_runs, class_names JSON array, latent_dim)
//   scenarios       (run_id, id, component, weight, failure_rate, seed_label, seed_label_share,
//                    predicted_label, predicted_share, members, neighbour_accuracy, score,
//                    mean BLOB, covariance BLOB; PK (run_id, id))
//   scenario_images (run_id, scenario_id, kind 'sample'|'member'|'neighbour', idx, path,
//                    predicted, label, judge; PK (run_id, scenario_id, kind, idx)); tables of
//                    older workspaces (no 'member' kind, no judge column) are rebuilt on open
//   scenario_validity (run_id, scenario_id, verdict, judges, genuine_share, label_change_share,
//                    ambiguous_share, judge_label, judge_agreement, knn_label, knn_seed_share,
//                    knn_predicted_share, realism, draw_genuine_rate; PK (run_id, scenario_id)):
//                    what tells a genuine scenario from a label change (absent: not measured)
//   scenario_members (run_id, scenario_id, failures BLOB int64[]; PK (run_id, scenario_id)):
//                    the indices, into the identify run's failure set, of the failures the
//                    DP-GMM assigned to the scenario (the baseline of `defuse correct` trains
//                    on them)
// `mean` and `covariance` are float32 arrays in the machine's byte order (little-endian on
// every platform defuse builds for).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace defuse {

class Database;
class Workspace;

// Thumbnails live under this directory of the workspace (for example
// "scenarios/run-12/s01-sample-00.png"); the labelling page serves nothing else from disk.
inline constexpr const char* kScenarioImageDir = "scenarios";

struct ScenarioImage {
  std::string path;        // PNG, relative to the workspace, under kScenarioImageDir
  int64_t predicted = -1;  // the classifier's prediction on this image
  int64_t label = -1;      // true label for real neighbours, the seed's label for member failures,
                           // -1 for decoded samples
  int64_t judge = -1;      // the judges' consensus reading of the image; -1 when not read
};

// What tells a genuine scenario from a label change (DESIGN §3, "Validity"), aggregated
// over its member failures and its draws. Fractions in [0, 1]; -1 where not measured.
struct ScenarioValidity {
  std::string verdict;  // "genuine", "label-change" or "ambiguous" (judge/verdict.h); "" = unknown
  int64_t judges = 0;   // judges that read the members and draws
  double genuine_share = -1, label_change_share = -1, ambiguous_share = -1;  // verdicts of the members
  int64_t judge_label = -1;                                                  // the members' most common judge reading
  double judge_agreement = -1;                                               // share of members read so
  int64_t knn_label = -1;           // the most common label of the members' nearest training codes
  double knn_seed_share = -1;       // mean share of those neighbours with the seed label
  double knn_predicted_share = -1;  // ... with the classifier's prediction
  double realism = -1;              // median realism score of the members (identify.h, FailureValidity)
  double draw_genuine_rate = -1;    // share of draws at the scenario's own spread that the judges read as
                                    // the seed label while the classifier does not

  bool known() const { return !verdict.empty(); }
  bool genuine() const { return verdict == "genuine"; }
};

struct Scenario {
  int64_t id = 0;                            // 1-based rank, 1 = most important
  int64_t component = 0;                     // index of the DP-GMM component it came from
  double weight = 0;                         // mixture weight of that component
  double failure_rate = 0;                   // share of fresh samples from the scenario that are misclassified
  int64_t seed_label = -1;                   // most common true label of the seeds of its failures
  double seed_label_share = 0;               // share of its failures with that seed label
  int64_t predicted_label = -1;              // most common (wrong) prediction on its failures
  double predicted_share = 0;                // share of its failures with that prediction
  int64_t members = 0;                       // failures assigned to the component
  double neighbour_accuracy = -1;            // classifier accuracy on the nearest real training images, -1 if unknown
  double score = 0;                          // the ranking score distillation sorted by
  std::vector<float> mean;                   // [Z] component mean in latent space
  std::vector<float> covariance;             // [Z*Z] row-major component covariance
  std::vector<ScenarioImage> samples;        // decoded draws shown to annotators (at the scenario's own spread)
  std::vector<ScenarioImage> member_images;  // decodes of some of its member failures: their real variety
  std::vector<ScenarioImage> neighbours;     // nearest real training images
  ScenarioValidity validity;
  std::vector<int64_t> member_failures;  // indices into identify's failure set of its members
                                         // (empty for sets stored before memberships were kept)
};

struct ScenarioSet {
  int64_t run_id = 0;                    // the "distill" stage run that produced them
  std::vector<std::string> class_names;  // the dataset's classes, index = label
  std::vector<Scenario> scenarios;       // ordered by id (rank)

  // The scenario with this id, or nullptr.
  const Scenario* find(int64_t id) const;
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

// A scenario's validity as JSON (the page's API, distill's metrics): null when neither the
// judges nor the neighbourhood were measured; -1 for what was not.
nlohmann::json validity_json(const ScenarioValidity& validity);

// Whether `path` is a normalised relative path: not empty, no leading '/', no '\\', no
// control characters, and no empty, "." or ".." segment. (Used for thumbnail paths here and
// for the page's /thumbs/ requests.)
bool is_normalised_relative_path(std::string_view path);

// Creates the scenario tables if they do not exist (idempotent; cheap when they do).
void ensure_scenario_tables(Database& db);

// Checks a scenario set before it is stored: at least one class; ids 1..n in order;
// labels within the classes (or -1 where allowed); shares and rates in [0, 1]; mean of the
// same size Z for every scenario and covariance of Z*Z; member failure indices
// non-negative and at most `members` of them; image paths relative, normalised,
// under kScenarioImageDir, and PNG. Throws Error("scenarios: ...") on the first problem:
// a violation is a bug in the stage that built the set, not bad user input.
void validate_scenarios(const ScenarioSet& set);

// Validates `set` and writes it as the scenarios of stage run `run_id` (set.run_id is
// ignored), replacing any rows of that run. Creates the tables if needed. Call it inside
// Workspace::run_stage's StageOutput::extra so that it joins the completing transaction;
// called elsewhere, it runs in its own transaction.
void write_scenarios(Database& db, int64_t run_id, const ScenarioSet& set);

// The scenarios of stage run `run_id`. Throws StateError if that run stored none.
ScenarioSet load_scenarios(Database& db, int64_t run_id);

// The scenarios of the latest complete "distill" run whose files are intact
// (Workspace::require). Throws StateError telling to run `defuse distill` when there is none.
ScenarioSet load_scenarios(Workspace& workspace);

}  // namespace defuse
