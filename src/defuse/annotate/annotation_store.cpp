#include "defuse/annotate/annotation_store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "defuse/annotate/annotation_rows.h"
#include "defuse/base/error.h"
#include "defuse/base/hash.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/utf8.h"
#include "defuse/base/workspace.h"

namespace defuse {

namespace annotation_rows {

std::string now_iso_ms() {
  auto now = std::chrono::system_clock::now();
  auto seconds = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(ms));
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::string> normalise_timestamp(std::string_view t) {
  if (t.size() < 20) return std::nullopt;
  std::string_view date = t.substr(0, 10), time = t.substr(11, 8);
  if (!(all_digits(date.substr(0, 4)) && date[4] == '-' && all_digits(date.substr(5, 2)) && date[7] == '-' &&
        all_digits(date.substr(8, 2))))
    return std::nullopt;
  if (t[10] != 'T' && t[10] != 't' && t[10] != ' ') return std::nullopt;
  if (!(all_digits(time.substr(0, 2)) && time[2] == ':' && all_digits(time.substr(3, 2)) && time[5] == ':' &&
        all_digits(time.substr(6, 2))))
    return std::nullopt;
  int month = std::stoi(std::string(date.substr(5, 2))), day = std::stoi(std::string(date.substr(8, 2)));
  int hour = std::stoi(std::string(time.substr(0, 2))), minute = std::stoi(std::string(time.substr(3, 2)));
  int second = std::stoi(std::string(time.substr(6, 2)));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  std::string_view rest = t.substr(19);
  std::string fraction;
  if (!rest.empty() && rest.front() == '.') {
    size_t n = 1;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    if (n == 1 || n > 10) return std::nullopt;
    fraction = std::string(rest.substr(1, n - 1));
    rest = rest.substr(n);
  }
  if (rest != "Z" && rest != "z" && rest != "+00:00") return std::nullopt;
  fraction = (fraction + "000").substr(0, 3);
  return std::string(date) + "T" + std::string(time) + "." + fraction + "Z";
}

}  // namespace annotation_rows

namespace {

using nlohmann::json;

std::string scenario_range(const ScenarioSet& set) {
  if (set.scenarios.empty()) return "no scenarios";
  return "scenarios " + std::to_string(set.scenarios.front().id) + ".." + std::to_string(set.scenarios.back().id);
}

Annotation read_annotation(const Statement& s) {
  Annotation a;
  a.id = s.column_int(0);
  a.distill_run_id = s.column_int(1);
  a.scenario_id = s.column_int(2);
  a.annotator = s.column_text(3);
  if (!s.column_is_null(4)) a.label = s.column_int(4);
  a.reject = s.column_text(5);
  a.note = s.column_text(6);
  a.automatic = s.column_int(7) != 0;
  a.created_at = s.column_text(8);
  return a;
}

constexpr const char* kAnnotationColumns =
    "id, distill_run_id, scenario_id, annotator, label, reject, note, automatic, created_at";

// Whether `a` comes after `b` in rule 1's order.
bool later(const Annotation& a, const Annotation& b) {
  return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
}

// Binds the eight stored fields of `a`, in the table's column order, to parameters 1..8.
void bind_fields(Statement& s, const Annotation& a) {
  s.bind(1, a.distill_run_id).bind(2, a.scenario_id).bind(3, a.annotator);
  if (a.label)
    s.bind(4, *a.label);
  else
    s.bind_null(4);
  s.bind(5, a.reject.empty() ? std::optional<std::string>() : std::optional<std::string>(a.reject));
  s.bind(6, a.note).bind(7, static_cast<int64_t>(a.automatic)).bind(8, a.created_at);
}

}  // namespace

namespace annotation_rows {

[[noreturn]] void invalid(const std::string& message) { throw ConfigError("annotate: " + message); }

bool is_stored(Database& db, const Annotation& a) {
  Statement s = db.prepare(
      "SELECT 1 FROM annotations WHERE distill_run_id = ? AND scenario_id = ? AND annotator = ? AND label IS ?"
      " AND reject IS ? AND note = ? AND automatic = ? AND created_at = ? LIMIT 1");
  bind_fields(s, a);
  return s.step();
}

Annotation insert_annotation(Database& db, Annotation a) {
  if (a.created_at.empty()) a.created_at = now_iso_ms();
  Statement s = db.prepare(
      "INSERT INTO annotations (distill_run_id, scenario_id, annotator, label, reject, note, automatic, created_at)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  bind_fields(s, a);
  s.run();
  a.id = db.last_insert_id();
  return a;
}

}  // namespace annotation_rows

using annotation_rows::insert_annotation;
using annotation_rows::invalid;
using annotation_rows::normalise_timestamp;

std::string to_string(Resolution resolution) {
  switch (resolution) {
    case Resolution::kUnlabelled:
      return "unlabelled";
    case Resolution::kLabelled:
      return "labelled";
    case Resolution::kRejected:
      return "rejected";
    case Resolution::kTie:
      return "tie";
  }
  return "unknown";
}

AnnotationProgress annotation_progress(const std::vector<ResolvedScenario>& resolved) {
  AnnotationProgress p;
  p.scenarios = static_cast<int64_t>(resolved.size());
  for (const auto& r : resolved) {
    switch (r.status) {
      case Resolution::kUnlabelled:
        ++p.unlabelled;
        break;
      case Resolution::kLabelled:
        ++p.labelled;
        break;
      case Resolution::kRejected:
        ++p.rejected;
        break;
      case Resolution::kTie:
        ++p.ties;
        break;
    }
    if (r.decided() && r.automatic) ++p.automatic;
  }
  return p;
}

namespace {

constexpr const char* kAnnotationsTable = R"sql(
      id INTEGER PRIMARY KEY,
      distill_run_id INTEGER NOT NULL,
      scenario_id INTEGER NOT NULL,
      annotator TEXT NOT NULL CHECK (length(annotator) > 0),
      label INTEGER,
      reject TEXT CHECK (reject IN ('unrealistic', 'ambiguous', 'not-a-bug')),
      note TEXT NOT NULL DEFAULT '',
      automatic INTEGER NOT NULL DEFAULT 0 CHECK (automatic IN (0, 1)),
      created_at TEXT NOT NULL,
      CHECK ((label IS NULL) <> (reject IS NULL)),
      FOREIGN KEY (distill_run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE
)sql";

// Catalogues written before the "not a bug" decision have an annotations table whose CHECK
// refuses it. SQLite cannot alter a CHECK: copy the rows into a table of the new shape and put
// it in the old one's place (SQLite's documented procedure, foreign keys off meanwhile so
// that dropping the old table cascades nowhere; the vote trigger is made again below).
void upgrade_annotations(Database& db) {
  {
    Statement s = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'annotations'");
    if (!s.step() || s.column_text(0).find("'not-a-bug'") != std::string::npos) return;
  }
  db.exec("PRAGMA foreign_keys=OFF");
  try {
    db.transaction([&] {
      db.exec(std::string("CREATE TABLE annotations_new (") + kAnnotationsTable + ");");
      db.exec(
          "INSERT INTO annotations_new SELECT id, distill_run_id, scenario_id, annotator, label, reject, note, "
          "automatic, created_at FROM annotations;"
          "DROP TABLE annotations;"
          "ALTER TABLE annotations_new RENAME TO annotations;");
    });
  } catch (...) {
    db.exec("PRAGMA foreign_keys=ON");
    throw;
  }
  db.exec("PRAGMA foreign_keys=ON");
}

}  // namespace

void ensure_annotation_tables(Database& db) {
  ensure_scenario_tables(db);
  upgrade_annotations(db);
  db.exec(std::string("CREATE TABLE IF NOT EXISTS annotations (") + kAnnotationsTable + ");");
  db.exec(R"sql(
    -- Each annotator's current vote per scenario (rule 1), kept by a trigger on every insert
    -- so that reading the votes costs O(voters), not O(history): the page reads them after
    -- every write.
    CREATE TABLE IF NOT EXISTS annotation_votes (
      distill_run_id INTEGER NOT NULL,
      scenario_id INTEGER NOT NULL,
      annotator TEXT NOT NULL,
      annotation_id INTEGER NOT NULL REFERENCES annotations (id) ON DELETE CASCADE,
      created_at TEXT NOT NULL,
      PRIMARY KEY (distill_run_id, scenario_id, annotator)
    ) WITHOUT ROWID;
    CREATE TRIGGER IF NOT EXISTS annotations_keep_votes AFTER INSERT ON annotations
    BEGIN
      INSERT INTO annotation_votes (distill_run_id, scenario_id, annotator, annotation_id, created_at)
        VALUES (NEW.distill_run_id, NEW.scenario_id, NEW.annotator, NEW.id, NEW.created_at)
        ON CONFLICT (distill_run_id, scenario_id, annotator) DO UPDATE
          SET annotation_id = excluded.annotation_id, created_at = excluded.created_at
          WHERE excluded.created_at > annotation_votes.created_at
             OR (excluded.created_at = annotation_votes.created_at
                 AND excluded.annotation_id > annotation_votes.annotation_id);
    END;
  )sql");
}

void validate_annotation(const ScenarioSet& set, const Annotation& a) {
  if (a.distill_run_id != 0 && a.distill_run_id != set.run_id)
    invalid("annotation is for distill run " + std::to_string(a.distill_run_id) + " but the scenarios are from run " +
            std::to_string(set.run_id));
  if (!set.find(a.scenario_id))
    invalid("unknown scenario " + std::to_string(a.scenario_id) + " (distill run " + std::to_string(set.run_id) +
            " has " + scenario_range(set) + ")");
  if (a.label.has_value() == !a.reject.empty())
    invalid(a.label ? "an annotation has a label or a rejection, not both"
                    : "an annotation needs a label or a rejection (\"unrealistic\", \"ambiguous\" or \"not-a-bug\")");
  if (a.label && (*a.label < 0 || *a.label >= set.num_classes()))
    invalid("label " + std::to_string(*a.label) + " is not a class (0.." + std::to_string(set.num_classes() - 1) + ")");
  if (!a.reject.empty() && a.reject != kRejectUnrealistic && a.reject != kRejectAmbiguous && a.reject != kRejectNotABug)
    invalid("rejection '" + a.reject + "' is not \"unrealistic\", \"ambiguous\" or \"not-a-bug\"");
  if (a.annotator.empty()) invalid("the annotator's name is empty");
  if (!is_valid_utf8(a.annotator)) invalid("the annotator's name is not valid UTF-8");
  if (utf8_length(a.annotator) > kMaxAnnotatorChars)
    invalid("the annotator's name has " + std::to_string(utf8_length(a.annotator)) + " characters, at most " +
            std::to_string(kMaxAnnotatorChars));
  if (has_control_characters(a.annotator, false)) invalid("the annotator's name contains control characters");
  if (a.annotator.front() == ' ' || a.annotator.back() == ' ')
    invalid("the annotator's name starts or ends with a space");
  if (!is_valid_utf8(a.note)) invalid("the note is not valid UTF-8");
  if (utf8_length(a.note) > kMaxNoteChars)
    invalid("the note has " + std::to_string(utf8_length(a.note)) + " characters, at most " +
            std::to_string(kMaxNoteChars));
  if (has_control_characters(a.note, true)) invalid("the note contains control characters");
  if (!a.created_at.empty() && !normalise_timestamp(a.created_at))
    invalid("created_at '" + a.created_at + "' is not an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS[.mmm]Z)");
}

Annotation add_annotation(Database& db, const ScenarioSet& scenarios, Annotation annotation) {
  validate_annotation(scenarios, annotation);
  annotation.distill_run_id = scenarios.run_id;
  if (!annotation.created_at.empty()) annotation.created_at = *normalise_timestamp(annotation.created_at);
  Annotation stored;
  db.transaction([&] {
    ensure_annotation_tables(db);
    stored = insert_annotation(db, annotation);
  });
  return stored;
}

std::vector<Annotation> list_annotations(Database& db, int64_t distill_run_id) {
  ensure_annotation_tables(db);
  Statement s = db.prepare(std::string("SELECT ") + kAnnotationColumns +
                           " FROM annotations WHERE distill_run_id = ? ORDER BY id");
  s.bind(1, distill_run_id);
  std::vector<Annotation> out;
  while (s.step()) out.push_back(read_annotation(s));
  return out;
}

std::vector<Annotation> latest_annotations(Database& db, int64_t distill_run_id, int64_t scenario_id) {
  ensure_annotation_tables(db);
  // annotation_votes holds rule 1's choice (see ensure_annotation_tables).
  const std::string select =
      "SELECT a.id, a.distill_run_id, a.scenario_id, a.annotator, a.label, a.reject, a.note, a.automatic, a.created_at"
      " FROM annotation_votes v JOIN annotations a ON a.id = v.annotation_id WHERE v.distill_run_id = ?1";
  Statement s = db.prepare(scenario_id ? select + " AND v.scenario_id = ?2 ORDER BY v.annotator"
                                       : select + " ORDER BY v.scenario_id, v.annotator");
  s.bind(1, distill_run_id);
  if (scenario_id) s.bind(2, scenario_id);
  std::vector<Annotation> out;
  while (s.step()) out.push_back(read_annotation(s));
  return out;
}

std::vector<ResolvedScenario> resolve_annotations(const ScenarioSet& set, const std::vector<Annotation>& annotations) {
  // Rule 1: each annotator's latest annotation per scenario.
  std::map<std::pair<int64_t, std::string>, const Annotation*> latest;
  for (const auto& a : annotations) {
    if (a.distill_run_id != set.run_id && a.distill_run_id != 0) continue;
    auto& slot = latest[{a.scenario_id, a.annotator}];
    if (!slot || later(a, *slot)) slot = &a;
  }
  std::map<int64_t, std::vector<const Annotation*>> by_scenario;
  for (const auto& [key, a] : latest) by_scenario[key.first].push_back(a);

  std::vector<ResolvedScenario> out;
  out.reserve(set.scenarios.size());
  for (const auto& scenario : set.scenarios) {
    ResolvedScenario r;
    r.scenario_id = scenario.id;
    r.votes.assign(set.class_names.size(), 0);
    std::vector<const Annotation*> votes = by_scenario[scenario.id];
    // Rule 2: human votes first.
    bool any_human = std::any_of(votes.begin(), votes.end(), [](const Annotation* a) { return !a->automatic; });
    if (any_human)
      votes.erase(std::remove_if(votes.begin(), votes.end(), [](const Annotation* a) { return a->automatic; }),
                  votes.end());
    r.automatic = !votes.empty() && !any_human;
    for (const Annotation* a : votes) {
      if (a->label) {
        if (*a->label >= 0 && *a->label < static_cast<int64_t>(r.votes.size()))
          ++r.votes[*a->label];
        else
          continue;  // not a class of this set (cannot be stored; guards hand-made lists)
      } else if (a->reject == kRejectAmbiguous) {
        ++r.ambiguous;
      } else if (a->reject == kRejectNotABug) {
        ++r.not_a_bug;
      } else {
        ++r.unrealistic;
      }
      ++r.voters;
    }
    // Rule 3: the strict top option among the labels and "reject".
    int64_t best_label = -1;
    for (size_t k = 0; k < r.votes.size(); ++k)
      if (r.votes[k] > 0 && (best_label < 0 || r.votes[k] > r.votes[best_label])) best_label = static_cast<int64_t>(k);
    const int64_t top = std::max(r.rejections(), best_label >= 0 ? r.votes[best_label] : int64_t{0});
    int64_t options_at_top = top > 0 && r.rejections() == top;
    for (int64_t v : r.votes) options_at_top += top > 0 && v == top;
    if (r.voters == 0) {
      r.status = Resolution::kUnlabelled;
    } else if (options_at_top > 1) {
      r.status = Resolution::kTie;
    } else if (r.rejections() == top) {
      r.status = Resolution::kRejected;
      // The most frequent reason; ties: unrealistic, then not a bug, then ambiguous.
      r.reject_reason = kRejectUnrealistic;
      if (r.not_a_bug > r.unrealistic) r.reject_reason = kRejectNotABug;
      if (r.ambiguous > std::max(r.unrealistic, r.not_a_bug)) r.reject_reason = kRejectAmbiguous;
    } else {
      r.status = Resolution::kLabelled;
      r.label = best_label;
    }
    // Rule 4.
    r.agreement = r.voters ? static_cast<double>(top) / static_cast<double>(r.voters) : 0.0;
    r.disputed = r.voters > 0 && top < r.voters;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<ResolvedScenario> resolve_annotations(Database& db, const ScenarioSet& scenarios) {
  return resolve_annotations(scenarios, latest_annotations(db, scenarios.run_id));
}

std::vector<ResolvedScenario> resolved_labels(Workspace& workspace) {
  ScenarioSet scenarios = load_scenarios(workspace);
  return resolve_annotations(workspace.db(), scenarios);
}

std::string resolution_fingerprint(int64_t distill_run_id, const std::vector<ResolvedScenario>& resolved) {
  json decisions = json::array();
  for (const auto& r : resolved)
    decisions.push_back({r.scenario_id, to_string(r.status), r.label ? *r.label : -1, r.reject_reason});
  Hasher h;
  h.update("annotations").update(std::to_string(distill_run_id)).update(decisions.dump());
  return h.hex();
}

json resolution_json(const ResolvedScenario& r) {
  return {{"scenario", r.scenario_id},
          {"status", to_string(r.status)},
          {"label", r.label ? json(*r.label) : json(nullptr)},
          {"reject_reason", r.reject_reason.empty() ? json(nullptr) : json(r.reject_reason)},
          {"votes", r.votes},
          {"unrealistic", r.unrealistic},
          {"ambiguous", r.ambiguous},
          {"not_a_bug", r.not_a_bug},
          {"voters", r.voters},
          {"agreement", r.agreement},
          {"tie", r.tie()},
          {"rejected", r.rejected()},
          {"automatic", r.automatic},
          {"disputed", r.disputed}};
}

json annotation_json(const Annotation& a, const ScenarioSet& set) {
  json label_name = nullptr;
  if (a.label && *a.label >= 0 && *a.label < set.num_classes()) label_name = set.class_names[*a.label];
  return {{"id", a.id},
          {"distill_run_id", a.distill_run_id},
          {"scenario", a.scenario_id},
          {"annotator", a.annotator},
          {"label", a.label ? json(*a.label) : json(nullptr)},
          {"label_name", label_name},
          {"reject", a.reject.empty() ? json(nullptr) : json(a.reject)},
          {"note", a.note},
          {"automatic", a.automatic},
          {"created_at", a.created_at}};
}

std::optional<AutoDecision> judges_decision(const Scenario& s, const std::vector<std::string>& class_names) {
  const ScenarioValidity& v = s.validity;
  if (!v.known() || v.judge_label < 0) return std::nullopt;
  auto name = [&](int64_t label) {
    return label >= 0 && label < static_cast<int64_t>(class_names.size()) ? class_names[static_cast<size_t>(label)]
                                                                          : std::to_string(label);
  };
  const int share = static_cast<int>(v.judge_agreement * 100 + 0.5);
  AutoDecision d;
  if (v.judge_label == s.predicted_label) {
    d.reject = kRejectNotABug;
    d.note = "automatic: the judges read " + std::to_string(share) + "% of its failures as " + name(v.judge_label) +
             ", as the classifier does: not a bug";
  } else if (v.judge_agreement >= kAutoJudgesMinAgreement && v.verdict != "label-change") {
    d.label = v.judge_label;
    d.note = "automatic: the judges read " + std::to_string(share) + "% of its failures as " + name(v.judge_label) +
             " (the classifier: " + name(s.predicted_label) + ")";
  } else {
    d.reject = kRejectAmbiguous;
    d.note =
        "automatic: the judges do not agree on its failures (at most " + std::to_string(share) + "% read as one class)";
  }
  return d;
}

int64_t auto_label(Database& db, const ScenarioSet& set, const std::string& source, const std::string& annotator) {
  const bool judges = source == "judges";
  if (source != "seed" && source != "source" && !judges)
    throw ConfigError("annotate: --auto " + source +
                      ": the automatic sources are 'judges' (the judges' reading of "
                      "each scenario's failures) and 'seed' (each scenario's dominant seed label)");
  if (judges)
    for (const auto& s : set.scenarios)
      if (!s.validity.known())
        throw StateError("annotate: --auto judges: scenario " + std::to_string(s.id) +
                         " was not read by judges (the workspace has none, or distill ran before them): run `defuse "
                         "train-judges`, identify and distill, or use --auto seed");
  int64_t added = 0;
  db.transaction([&] {
    ensure_annotation_tables(db);
    std::map<int64_t, Annotation> mine;
    for (auto& a : latest_annotations(db, set.run_id))
      if (a.annotator == annotator) mine[a.scenario_id] = a;
    for (const auto& s : set.scenarios) {
      Annotation a;
      a.scenario_id = s.id;
      a.annotator = annotator;
      a.automatic = true;
      if (judges) {
        AutoDecision d = *judges_decision(s, set.class_names);
        a.label = d.label;
        a.reject = d.reject;
        a.note = d.note;
      } else {
        a.label = s.seed_label;
        a.note = "automatic: dominant seed label (" + std::to_string(static_cast<int>(s.seed_label_share * 100 + 0.5)) +
                 "% of the scenario's failures), not checked";
      }
      auto it = mine.find(s.id);
      if (it != mine.end() && it->second.automatic && it->second.label == a.label && it->second.reject == a.reject)
        continue;
      add_annotation(db, set, a);
      ++added;
    }
  });
  return added;
}

}  // namespace defuse
