// Export and import of annotations for labelling elsewhere (annotation_store.h: "Export /
// import"): the defuse-annotations JSON document and RFC 4180 CSV, read into rows that are
// validated as annotations before any is written.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "defuse/annotate/annotation_rows.h"
#include "defuse/annotate/annotation_store.h"
#include "defuse/base/csv.h"
#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"

namespace defuse {
namespace {

using annotation_rows::all_digits;
using annotation_rows::insert_annotation;
using annotation_rows::invalid;
using annotation_rows::is_stored;
using annotation_rows::normalise_timestamp;
using annotation_rows::now_iso_ms;
using nlohmann::json;

constexpr const char* kExportFormat = "defuse-annotations";
constexpr int kExportVersion = 1;
const std::vector<std::string> kCsvColumns = {"distill_run", "scenario", "annotator", "label",     "label_name",
                                              "reject",      "note",     "automatic", "created_at"};

// ---- import rows ----

// One row of an import file before validation: what the file said.
struct ImportRow {
  std::string where;  // "line 3" or "annotation 2"
  std::optional<int64_t> distill_run;
  int64_t scenario = 0;
  std::string annotator, label, label_name, reject, note, automatic, created_at;
};

std::optional<int64_t> parse_int(std::string_view text) {
  std::string s(text);
  if (s.empty()) return std::nullopt;
  size_t start = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (!all_digits(std::string_view(s).substr(start)) || s.size() - start > 18) return std::nullopt;
  return std::stoll(s);
}

std::optional<int64_t> class_index(const ScenarioSet& set, const std::string& name) {
  for (size_t i = 0; i < set.class_names.size(); ++i)
    if (set.class_names[i] == name) return static_cast<int64_t>(i);
  return std::nullopt;
}

// Turns a row into an annotation (validated), or nullopt for a blank row.
std::optional<Annotation> row_annotation(const ScenarioSet& set, const ImportRow& row,
                                         const std::string& default_annotator) {
  auto fail = [&](const std::string& message) -> void { invalid(row.where + ": " + message); };
  if (row.distill_run && *row.distill_run != set.run_id)
    fail("is for distill run " + std::to_string(*row.distill_run) + " but the workspace's scenarios are from run " +
         std::to_string(set.run_id));
  Annotation a;
  a.distill_run_id = set.run_id;
  a.scenario_id = row.scenario;
  std::string label = row.label;
  if (label.empty() && !row.label_name.empty()) label = row.label_name;
  if (label.empty() && row.reject.empty()) return std::nullopt;  // blank: not annotated yet
  if (!label.empty()) {
    if (auto index = parse_int(label)) {
      a.label = *index;
    } else if (auto by_name = class_index(set, label)) {
      a.label = *by_name;
    } else {
      fail("label '" + label + "' is neither a class index nor a class name");
    }
    if (!row.label_name.empty() && row.label_name != label) {
      auto named = class_index(set, row.label_name);
      if (!named || *named != *a.label)
        fail("label " + label + " and label_name '" + row.label_name +
             "' disagree (are the classes in the same order?)");
    }
  }
  a.reject = row.reject;
  a.annotator = row.annotator.empty() ? default_annotator : row.annotator;
  if (a.annotator.empty()) fail("no annotator (give one with --annotator)");
  a.note = row.note;
  if (row.automatic.empty() || row.automatic == "0" || row.automatic == "false") {
    a.automatic = false;
  } else if (row.automatic == "1" || row.automatic == "true") {
    a.automatic = true;
  } else {
    fail("automatic is '" + row.automatic + "', not true/false/1/0");
  }
  a.created_at = row.created_at;
  try {
    validate_annotation(set, a);
  } catch (const ConfigError& e) {
    std::string message = e.what();
    const std::string prefix = "annotate: ";
    if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
    fail(message);
  }
  if (!a.created_at.empty()) a.created_at = *normalise_timestamp(a.created_at);
  return a;
}

std::vector<ImportRow> rows_from_csv(std::string_view text, const std::string& source) {
  auto records = read_csv(text, "annotate: " + source);
  if (records.empty()) throw DataError("annotate: " + source + ": empty file (expected a header row)");
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < records[0].fields.size(); ++i) {
    std::string name = records[0].fields[i];
    // Trim spaces a spreadsheet may add around header names.
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(name.begin());
    column.emplace(name, i);
  }
  if (!column.count("scenario"))
    throw DataError("annotate: " + source + ": no 'scenario' column in the header (expected " +
                    "distill_run,scenario,annotator,label,label_name,reject,note,automatic,created_at)");
  if (!column.count("label") && !column.count("label_name") && !column.count("reject"))
    throw DataError("annotate: " + source + ": the header has none of 'label', 'label_name', 'reject'");
  std::vector<ImportRow> rows;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& rec = records[r];
    ImportRow row;
    row.where = "line " + std::to_string(rec.line);
    auto get = [&](const char* name) -> std::string {
      auto it = column.find(name);
      return it != column.end() && it->second < rec.fields.size() ? rec.fields[it->second] : std::string();
    };
    if (rec.fields.size() > records[0].fields.size())
      throw DataError("annotate: " + source + ": " + row.where + ": " + std::to_string(rec.fields.size()) +
                      " fields but the header has " + std::to_string(records[0].fields.size()));
    auto scenario = parse_int(get("scenario"));
    if (!scenario)
      throw DataError("annotate: " + source + ": " + row.where + ": scenario '" + get("scenario") +
                      "' is not a number");
    row.scenario = *scenario;
    if (std::string run = get("distill_run"); !run.empty()) {
      auto id = parse_int(run);
      if (!id)
        throw DataError("annotate: " + source + ": " + row.where + ": distill_run '" + run + "' is not a number");
      row.distill_run = *id;
    }
    row.annotator = get("annotator");
    row.label = get("label");
    row.label_name = get("label_name");
    row.reject = get("reject");
    row.note = get("note");
    row.automatic = get("automatic");
    row.created_at = get("created_at");
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<ImportRow> rows_from_json(const ScenarioSet& set, std::string_view text, const std::string& source) {
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) throw DataError("annotate: " + source + ": not valid JSON");
  auto bad = [&](const std::string& message) { throw DataError("annotate: " + source + ": " + message); };
  json list;
  if (doc.is_array()) {
    list = doc;
  } else if (doc.is_object()) {
    if (doc.contains("format") && doc["format"] != kExportFormat) bad("format is not \"defuse-annotations\"");
    if (doc.contains("version") &&
        (!doc["version"].is_number_integer() || doc["version"].get<int64_t>() > kExportVersion))
      bad("version " + doc["version"].dump() + " is newer than this defuse reads (" + std::to_string(kExportVersion) +
          ")");
    if (doc.contains("distill_run_id") && !doc["distill_run_id"].is_null()) {
      if (!doc["distill_run_id"].is_number_integer()) bad("distill_run_id is not an integer");
      if (doc["distill_run_id"].get<int64_t>() != set.run_id)
        bad("the annotations are for distill run " + doc["distill_run_id"].dump() +
            " but the workspace's scenarios are from run " + std::to_string(set.run_id));
    }
    if (doc.contains("class_names") && doc["class_names"] != json(set.class_names))
      bad("its class names differ from the workspace's (" + json(set.class_names).dump() + ")");
    if (!doc.contains("annotations") || !doc["annotations"].is_array()) bad("no \"annotations\" array");
    list = doc["annotations"];
  } else {
    bad("expected an object with an \"annotations\" array");
  }
  std::vector<ImportRow> rows;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& item = list[i];
    ImportRow row;
    row.where = "annotation " + std::to_string(i + 1);
    auto bad_row = [&](const std::string& message) { bad(row.where + ": " + message); };
    if (!item.is_object()) bad_row("not an object");
    auto text_field = [&](const char* key) -> std::string {
      if (!item.contains(key) || item[key].is_null()) return "";
      if (!item[key].is_string()) bad_row(std::string(key) + " is not a string");
      return item[key].get<std::string>();
    };
    const char* scenario_key = item.contains("scenario") ? "scenario" : "scenario_id";
    if (!item.contains(scenario_key) || !item[scenario_key].is_number_integer()) bad_row("scenario is not an integer");
    row.scenario = item[scenario_key].get<int64_t>();
    if (item.contains("distill_run_id") && !item["distill_run_id"].is_null()) {
      if (!item["distill_run_id"].is_number_integer()) bad_row("distill_run_id is not an integer");
      row.distill_run = item["distill_run_id"].get<int64_t>();
    }
    if (item.contains("label") && !item["label"].is_null()) {
      if (item["label"].is_number_integer())
        row.label = std::to_string(item["label"].get<int64_t>());
      else if (item["label"].is_string())
        row.label = item["label"].get<std::string>();
      else
        bad_row("label is neither an integer, a class name nor null");
    }
    row.annotator = text_field("annotator");
    row.label_name = text_field("label_name");
    row.reject = text_field("reject");
    row.note = text_field("note");
    row.created_at = text_field("created_at");
    if (item.contains("automatic") && !item["automatic"].is_null()) {
      if (!item["automatic"].is_boolean()) bad_row("automatic is not true or false");
      row.automatic = item["automatic"].get<bool>() ? "true" : "false";
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

AnnotationFormat annotation_format_for(const std::filesystem::path& file) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".json") return AnnotationFormat::kJson;
  if (ext == ".csv") return AnnotationFormat::kCsv;
  throw ConfigError("annotate: cannot tell the format of '" + file.string() + "': name it .json or .csv");
}

std::string export_annotations(Database& db, const ScenarioSet& set, AnnotationFormat format) {
  std::vector<Annotation> history = list_annotations(db, set.run_id);
  if (format == AnnotationFormat::kJson) {
    auto resolved = resolve_annotations(set, history);
    json scenarios = json::array();
    for (size_t i = 0; i < set.scenarios.size(); ++i) {
      const Scenario& s = set.scenarios[i];
      json samples = json::array();
      for (const auto& image : s.samples) samples.push_back(image.path);
      scenarios.push_back({{"id", s.id},
                           {"seed_label", s.seed_label},
                           {"seed_label_name", set.class_names[s.seed_label]},
                           {"predicted_label", s.predicted_label},
                           {"predicted_label_name", set.class_names[s.predicted_label]},
                           {"failure_rate", s.failure_rate},
                           {"members", s.members},
                           {"samples", samples},
                           {"resolution", resolution_json(resolved[i])}});
    }
    json annotations = json::array();
    for (const auto& a : history) {
      json item = annotation_json(a, set);
      item.erase("id");
      annotations.push_back(std::move(item));
    }
    json doc = {{"format", kExportFormat},           {"version", kExportVersion},
                {"distill_run_id", set.run_id},      {"class_names", set.class_names},
                {"scenarios", std::move(scenarios)}, {"annotations", std::move(annotations)}};
    return doc.dump(2) + "\n";
  }
  std::string out = csv_record(kCsvColumns);
  std::set<int64_t> annotated;
  for (const auto& a : history) {
    annotated.insert(a.scenario_id);
    std::string label = a.label ? std::to_string(*a.label) : "";
    std::string name = a.label ? set.class_names[*a.label] : "";
    out += csv_record({std::to_string(a.distill_run_id), std::to_string(a.scenario_id), a.annotator, label, name,
                       a.reject, a.note, a.automatic ? "true" : "false", a.created_at});
  }
  // One blank row per scenario nobody has annotated: its run and id, every other field empty.
  for (const auto& s : set.scenarios) {
    if (annotated.count(s.id)) continue;
    std::vector<std::string> blank(kCsvColumns.size());
    blank[0] = std::to_string(set.run_id);
    blank[1] = std::to_string(s.id);
    out += csv_record(blank);
  }
  return out;
}

ImportResult import_annotations(Database& db, const ScenarioSet& set, std::string_view text, AnnotationFormat format,
                                const std::string& source_name, const std::string& default_annotator) {
  std::vector<ImportRow> rows =
      format == AnnotationFormat::kJson ? rows_from_json(set, text, source_name) : rows_from_csv(text, source_name);
  ImportResult result;
  std::vector<Annotation> annotations;
  for (const auto& row : rows) {
    std::optional<Annotation> a;
    try {
      a = row_annotation(set, row, default_annotator);
    } catch (const ConfigError& e) {
      std::string message = e.what();
      throw DataError("annotate: " + source_name + ": " + message.substr(std::string("annotate: ").size()));
    }
    if (a)
      annotations.push_back(std::move(*a));
    else
      ++result.blank;
  }
  db.transaction([&] {
    ensure_annotation_tables(db);
    // Rows without a time get the same "now": they were decided together, and file order
    // breaks the tie (ids grow in file order).
    std::string now = now_iso_ms();
    for (auto& a : annotations) {
      if (a.created_at.empty()) a.created_at = now;
      if (is_stored(db, a)) {
        ++result.duplicates;
        continue;
      }
      insert_annotation(db, a);
      ++result.imported;
    }
  });
  return result;
}

}  // namespace defuse
