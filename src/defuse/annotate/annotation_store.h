// The annotation store (DESIGN §3 "Annotation"): one decision per failure scenario, by one
// or more annotators, kept in the workspace catalogue with its full history. Torch-free.
//
// An annotation is (scenario, annotator, either a label or a rejection "unrealistic" /
// "ambiguous", an optional note, whether it was made automatically, time). Every write is
// its own transaction (or one transaction for a whole import), committed before the call
// returns. Nothing is ever updated or deleted: an annotator who changes their mind adds a
// new annotation, and the history stays.
//
// Resolution rule (resolve_annotations), per scenario of a distill run:
//  1. Each annotator's vote is their latest annotation of the scenario: the greatest
//     created_at, ties broken by the greater id (ids grow with insertion). Ordering by time
//     rather than by id alone keeps imported history in its true order. Earlier annotations
//     are history and do not count.
//  2. Human votes (automatic = false) win over automatic ones: if at least one human voted,
//     automatic votes are ignored; otherwise the automatic votes are counted and the result
//     is flagged `automatic`.
//  3. The options are the class labels and "reject" (both rejection reasons pooled). The
//     option with strictly more votes than every other option wins:
//       - a label    → status kLabelled, `label` = that label;
//       - "reject"   → status kRejected (the scenario is left out of correction);
//                      `reject_reason` = the more frequent reason ("unrealistic" on a tie);
//       - no strict winner (two or more options share the top count) → status kTie, no label;
//       - no votes   → status kUnlabelled.
//  4. `agreement` = votes for the top option / votes counted (0 with no votes); `disputed`
//     is set when the counted votes are not unanimous (so a majority label that some
//     annotator rejected, or a rejection some annotator labelled, is visible).
// A scenario is *decided* when its status is kLabelled or kRejected; annotation is complete
// when every scenario is decided.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "defuse/annotate/scenario_store.h"

namespace defuse {

class Database;
class Workspace;

inline constexpr size_t kMaxAnnotatorChars = 64;  // characters (UTF-8 code points)
inline constexpr size_t kMaxNoteChars = 1000;     // characters (UTF-8 code points)
inline constexpr const char* kRejectUnrealistic = "unrealistic";
inline constexpr const char* kRejectAmbiguous = "ambiguous";
// "The classifier is right: not a bug": the scenario's decodes are what the classifier says
// they are (a label change, DESIGN §3 "Validity"); left out of correction like a rejection.
inline constexpr const char* kRejectNotABug = "not-a-bug";

struct Annotation {
  int64_t id = 0;              // assigned by the store; grows with time
  int64_t distill_run_id = 0;  // the distill run whose scenario this labels (0 = the given set's)
  int64_t scenario_id = 0;
  std::string annotator;         // 1..kMaxAnnotatorChars characters, no control characters
  std::optional<int64_t> label;  // a class index; exactly one of label and reject is set
  std::string reject;            // "" or kRejectUnrealistic, kRejectAmbiguous or kRejectNotABug
  std::string note;              // 0..kMaxNoteChars characters
  bool automatic = false;        // made by `--auto`, not by a person
  std::string created_at;        // "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC); "" = now (on add); other
                                 // ISO-8601 UTC forms are normalised to this one
};

enum class Resolution { kUnlabelled, kLabelled, kRejected, kTie };
// "unlabelled", "labelled", "rejected", "tie"
std::string to_string(Resolution resolution);

// The outcome of the resolution rule above for one scenario.
struct ResolvedScenario {
  int64_t scenario_id = 0;
  Resolution status = Resolution::kUnlabelled;
  std::optional<int64_t> label;                           // set iff status == kLabelled
  std::string reject_reason;                              // set iff status == kRejected
  std::vector<int64_t> votes;                             // [classes] counted label votes per class
  int64_t unrealistic = 0, ambiguous = 0, not_a_bug = 0;  // counted rejections by reason
  int64_t voters = 0;                                     // votes counted (after rule 2)
  double agreement = 0;                                   // top option's share of the counted votes
  bool automatic = false;                                 // decided by automatic votes only
  bool disputed = false;                                  // counted votes not unanimous

  int64_t rejections() const { return unrealistic + ambiguous + not_a_bug; }
  bool tie() const { return status == Resolution::kTie; }
  bool rejected() const { return status == Resolution::kRejected; }
  bool decided() const { return status == Resolution::kLabelled || status == Resolution::kRejected; }
};

// Counts over a set of resolved scenarios (what `defuse annotate --json` prints).
struct AnnotationProgress {
  int64_t scenarios = 0, labelled = 0, rejected = 0, ties = 0, unlabelled = 0;
  int64_t automatic = 0;  // decided by automatic votes only
  bool complete() const { return scenarios > 0 && labelled + rejected == scenarios; }
};
AnnotationProgress annotation_progress(const std::vector<ResolvedScenario>& resolved);

// Creates the annotations table (and the scenario tables it refers to) if needed.
void ensure_annotation_tables(Database& db);

// Checks `annotation` against `scenarios`: its run is the set's (or 0), the scenario exists,
// exactly one of label (in 0..classes-1) and reject ("unrealistic"/"ambiguous") is set, the
// annotator is 1..kMaxAnnotatorChars characters of valid UTF-8 without control characters or
// surrounding spaces, the note is valid UTF-8 of at most kMaxNoteChars characters without
// control characters other than tab and newline, and created_at is "" or ISO-8601 UTC.
// Throws ConfigError("annotate: ...") naming the problem.
void validate_annotation(const ScenarioSet& scenarios, const Annotation& annotation);

// Validates and stores one annotation in its own transaction (joining an enclosing one);
// returns it as stored (id, run id and created_at filled in).
Annotation add_annotation(Database& db, const ScenarioSet& scenarios, Annotation annotation);

// Every annotation of distill run `distill_run_id`, oldest first (the history).
std::vector<Annotation> list_annotations(Database& db, int64_t distill_run_id);
// Only the latest annotation (rule 1) of each annotator for each scenario, or for scenario
// `scenario_id` alone when it is not 0, ordered by scenario then annotator.
std::vector<Annotation> latest_annotations(Database& db, int64_t distill_run_id, int64_t scenario_id = 0);

// Applies the resolution rule to `annotations` (any subset of a run's history, in any
// order; only those of scenarios.run_id count). One entry per scenario, in scenario order.
std::vector<ResolvedScenario> resolve_annotations(const ScenarioSet& scenarios,
                                                  const std::vector<Annotation>& annotations);
// Resolves the stored annotations of `scenarios`' run.
std::vector<ResolvedScenario> resolve_annotations(Database& db, const ScenarioSet& scenarios);
// Resolves the annotations of the latest complete distill run (what `defuse correct` uses:
// scenarios with status kLabelled carry their label). Throws StateError without one.
std::vector<ResolvedScenario> resolved_labels(Workspace& workspace);

// A content hash of the decisions (each scenario's status and label or rejection), for the
// input fingerprint of later stages: `defuse correct` re-runs when it changes, and not when
// only notes or the vote history change.
std::string resolution_fingerprint(int64_t distill_run_id, const std::vector<ResolvedScenario>& resolved);

// JSON form of a resolution and of an annotation (the page's API and the exports).
nlohmann::json resolution_json(const ResolvedScenario& resolved);
nlohmann::json annotation_json(const Annotation& annotation, const ScenarioSet& scenarios);

// Export / import, for labelling elsewhere (annotation_io.cpp).
//   JSON: {"format": "defuse-annotations", "version": 1, "distill_run_id", "class_names",
//          "scenarios": [{id, seed_label, predicted_label, failure_rate, members, samples:
//          [paths], resolution}], "annotations": [{scenario, annotator, label, label_name,
//          reject, note, automatic, created_at}]}
//   CSV (RFC 4180, header row): distill_run,scenario,annotator,label,label_name,reject,note,
//          automatic,created_at — one row per annotation of the history, then one blank row
//          (no annotator, label or reject) per scenario nobody has annotated yet, to be filled
//          in a spreadsheet.
// On import, `label` may be a class index or a class name (a number is read as an index), or
// `label_name` may stand alone; rows with neither label nor reject are skipped as blank; an
// empty annotator becomes `default_annotator` (an error if that is empty too); an empty
// created_at becomes now.
// Columns and fields not listed are ignored. The file must be for the same distill run and
// the same classes when it says so. Every row is validated before anything is written, and
// all rows are written in one transaction: a bad file changes nothing. Rows identical to a
// stored annotation (same scenario, annotator, label, reject, note, automatic and
// created_at) are skipped, so importing the same file twice adds nothing the second time.
enum class AnnotationFormat { kJson, kCsv };
// From the file name: ".json" → kJson, ".csv" → kCsv; else ConfigError.
AnnotationFormat annotation_format_for(const std::filesystem::path& file);
std::string export_annotations(Database& db, const ScenarioSet& scenarios, AnnotationFormat format);

struct ImportResult {
  int64_t imported = 0;    // annotations added
  int64_t duplicates = 0;  // identical to stored ones, skipped
  int64_t blank = 0;       // rows with neither label nor reject, skipped
};
// Throws DataError("annotate: <source_name>: <row>: ...") for a malformed or invalid file.
ImportResult import_annotations(Database& db, const ScenarioSet& scenarios, std::string_view text,
                                AnnotationFormat format, const std::string& source_name,
                                const std::string& default_annotator = "");

// What `--auto judges` decides for a scenario (DESIGN §3, "Validity"), from its validity:
// the judges' consensus label when it differs from the classifier's prediction and at least
// kAutoJudgesMinAgreement of the members are read so; "not a bug" when the judges read what
// the classifier read; "ambiguous" otherwise. nullopt when the scenario was not judged.
inline constexpr double kAutoJudgesMinAgreement = 0.5;
struct AutoDecision {
  std::optional<int64_t> label;
  std::string reject;
  std::string note;  // the reason, in words, stored with the annotation
};
std::optional<AutoDecision> judges_decision(const Scenario& scenario, const std::vector<std::string>& class_names);

// Automatic annotations by `annotator` for unattended runs, from `source`:
//   "judges"  judges_decision() for every scenario (StateError when a scenario was not judged)
//   "seed"    its dominant seed label, unchecked ("source" is accepted as a synonym): a decode
//             that turned into another class is then labelled as its seed, and correction
//             teaches the classifier that a clear 9 is a 4
// Scenarios whose latest annotation by `annotator` already says the same are left alone.
// Returns how many annotations were added. Throws ConfigError for another source.
int64_t auto_label(Database& db, const ScenarioSet& scenarios, const std::string& source = "seed",
                   const std::string& annotator = "auto");

}  // namespace defuse
