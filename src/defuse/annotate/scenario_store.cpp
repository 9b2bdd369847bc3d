#include "defuse/annotate/scenario_store.h"

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"

namespace defuse {
namespace {

using nlohmann::json;

std::string floats_blob(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::vector<float> blob_floats(const std::string& bytes, const std::string& what) {
  if (bytes.size() % sizeof(float) != 0)
    throw StateError("scenarios: " + what + " holds " + std::to_string(bytes.size()) +
                     " bytes, not a whole number of float32 values");
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

void fail(const std::string& message) { throw Error("scenarios: " + message); }

void check_share(double value, const std::string& what) {
  if (!(value >= 0.0 && value <= 1.0)) fail(what + " is " + std::to_string(value) + ", not in [0, 1]");
}

void check_label(int64_t label, int64_t classes, bool allow_unknown, const std::string& what) {
  if (allow_unknown && label == -1) return;
  if (label < 0 || label >= classes)
    fail(what + " is " + std::to_string(label) + ", not a class (0.." + std::to_string(classes - 1) + ")");
}

enum class ImageKind { kSample, kMember, kNeighbour };

void check_images(const std::vector<ScenarioImage>& images, int64_t classes, ImageKind kind, const std::string& what) {
  const std::string prefix = std::string(kScenarioImageDir) + "/";
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& image = images[i];
    const std::string where = what + " image " + std::to_string(i);
    if (!is_normalised_relative_path(image.path) || image.path.rfind(prefix, 0) != 0 ||
        image.path.size() <= prefix.size() + 4 || image.path.compare(image.path.size() - 4, 4, ".png") != 0)
      fail(where + ": path '" + image.path + "' is not a normalised relative .png path under " + prefix);
    check_label(image.predicted, classes, true, where + " prediction");
    check_label(image.label, classes, kind == ImageKind::kSample, where + " label");
    check_label(image.judge, classes, true, where + " judges' reading");
    if (kind == ImageKind::kSample && image.label != -1) fail(where + ": decoded samples have no true label (-1)");
  }
}

}  // namespace

const Scenario* ScenarioSet::find(int64_t id) const {
  // Ids are ranks 1..n in order; fall back to a scan if a set was built otherwise.
  if (id >= 1 && id <= static_cast<int64_t>(scenarios.size()) && scenarios[id - 1].id == id) return &scenarios[id - 1];
  for (const auto& s : scenarios)
    if (s.id == id) return &s;
  return nullptr;
}

bool is_normalised_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    for (unsigned char c : segment)
      if (c < 0x20 || c == 0x7f || c == '\\') return false;
    start = end + 1;
  }
  return true;
}

constexpr const char* kScenarioImagesTable = R"sql(
      run_id INTEGER NOT NULL,
      scenario_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('sample', 'member', 'neighbour')),
      idx INTEGER NOT NULL,
      path TEXT NOT NULL,
      predicted INTEGER NOT NULL,
      label INTEGER NOT NULL,
      judge INTEGER NOT NULL DEFAULT -1,
      PRIMARY KEY (run_id, scenario_id, kind, idx),
      FOREIGN KEY (run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE
)sql";

// Workspaces written before member thumbnails and judge readings have a scenario_images
// table whose CHECK allows only 'sample' and 'neighbour' and that has no judge column.
// SQLite cannot alter a CHECK: rebuild the table with its rows (the standard procedure), in
// one transaction.
void upgrade_scenario_images(Database& db) {
  std::string sql;
  {
    Statement s = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'scenario_images'");
    if (!s.step()) return;
    sql = s.column_text(0);
  }
  if (sql.find("'member'") != std::string::npos) return;
  db.transaction([&] {
    db.exec("ALTER TABLE scenario_images RENAME TO scenario_images_old");
    db.exec(std::string("CREATE TABLE scenario_images (") + kScenarioImagesTable + ");");
    db.exec(R"sql(
      INSERT INTO scenario_images (run_id, scenario_id, kind, idx, path, predicted, label)
        SELECT run_id, scenario_id, kind, idx, path, predicted, label FROM scenario_images_old;
      DROP TABLE scenario_images_old;
    )sql");
  });
}

void ensure_scenario_tables(Database& db) {
  upgrade_scenario_images(db);
  db.exec(std::string("CREATE TABLE IF NOT EXISTS scenario_images (") + kScenarioImagesTable + ");");
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS scenario_sets (
      run_id INTEGER PRIMARY KEY REFERENCES stage_runs (id) ON DELETE CASCADE,
      class_names TEXT NOT NULL,
      latent_dim INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS scenarios (
      run_id INTEGER NOT NULL REFERENCES scenario_sets (run_id) ON DELETE CASCADE,
      id INTEGER NOT NULL,
      component INTEGER NOT NULL,
      weight REAL NOT NULL,
      failure_rate REAL NOT NULL,
      seed_label INTEGER NOT NULL,
      seed_label_share REAL NOT NULL,
      predicted_label INTEGER NOT NULL,
      predicted_share REAL NOT NULL,
      members INTEGER NOT NULL,
      neighbour_accuracy REAL NOT NULL,
      score REAL NOT NULL,
      mean BLOB NOT NULL,
      covariance BLOB NOT NULL,
      PRIMARY KEY (run_id, id)
    );
    CREATE TABLE IF NOT EXISTS scenario_validity (
      run_id INTEGER NOT NULL,
      scenario_id INTEGER NOT NULL,
      verdict TEXT NOT NULL,
      judges INTEGER NOT NULL,
      genuine_share REAL NOT NULL,
      label_change_share REAL NOT NULL,
      ambiguous_share REAL NOT NULL,
      judge_label INTEGER NOT NULL,
      judge_agreement REAL NOT NULL,
      knn_label INTEGER NOT NULL,
      knn_seed_share REAL NOT NULL,
      knn_predicted_share REAL NOT NULL,
      realism REAL NOT NULL,
      draw_genuine_rate REAL NOT NULL,
      PRIMARY KEY (run_id, scenario_id),
      FOREIGN KEY (run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE
    );
    CREATE TABLE IF NOT EXISTS scenario_members (
      run_id INTEGER NOT NULL,
      scenario_id INTEGER NOT NULL,
      failures BLOB NOT NULL,
      PRIMARY KEY (run_id, scenario_id),
      FOREIGN KEY (run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE
    );
  )sql");
}

nlohmann::json validity_json(const ScenarioValidity& v) {
  if (!v.known() && v.knn_label < 0) return nullptr;
  return {{"verdict", v.known() ? json(v.verdict) : json(nullptr)},
          {"judges", v.judges},
          {"genuine_share", v.genuine_share},
          {"label_change_share", v.label_change_share},
          {"ambiguous_share", v.ambiguous_share},
          {"judge_label", v.judge_label},
          {"judge_agreement", v.judge_agreement},
          {"knn_label", v.knn_label},
          {"knn_seed_share", v.knn_seed_share},
          {"knn_predicted_share", v.knn_predicted_share},
          {"realism", v.realism},
          {"draw_genuine_rate", v.draw_genuine_rate}};
}

void validate_scenarios(const ScenarioSet& set) {
  const int64_t classes = set.num_classes();
  if (classes < 1) fail("no class names");
  for (const auto& name : set.class_names)
    if (name.empty()) fail("empty class name");
  size_t latent = set.scenarios.empty() ? 0 : set.scenarios.front().mean.size();
  for (size_t i = 0; i < set.scenarios.size(); ++i) {
    const Scenario& s = set.scenarios[i];
    const std::string what = "scenario " + std::to_string(s.id);
    if (s.id != static_cast<int64_t>(i) + 1)
      fail("scenario ids must be the ranks 1..n in order; position " + std::to_string(i + 1) + " has id " +
           std::to_string(s.id));
    check_label(s.seed_label, classes, false, what + " seed label");
    check_label(s.predicted_label, classes, false, what + " predicted label");
    check_share(s.weight, what + " weight");
    check_share(s.failure_rate, what + " failure rate");
    check_share(s.seed_label_share, what + " seed label share");
    check_share(s.predicted_share, what + " predicted share");
    if (s.neighbour_accuracy != -1.0) check_share(s.neighbour_accuracy, what + " neighbour accuracy");
    if (s.members < 0) fail(what + " has a negative member count");
    if (!std::isfinite(s.score)) fail(what + " has a non-finite score");
    if (s.mean.size() != latent)
      fail(what + " mean has " + std::to_string(s.mean.size()) + " values, scenario 1 has " + std::to_string(latent));
    if (s.covariance.size() != latent * latent)
      fail(what + " covariance has " + std::to_string(s.covariance.size()) + " values, expected " +
           std::to_string(latent * latent));
    if (static_cast<int64_t>(s.member_failures.size()) > s.members)
      fail(what + " lists " + std::to_string(s.member_failures.size()) + " member failures but has " +
           std::to_string(s.members) + " members");
    for (int64_t f : s.member_failures)
      if (f < 0) fail(what + " has a negative member failure index");
    check_images(s.samples, classes, ImageKind::kSample, what + " sample");
    check_images(s.member_images, classes, ImageKind::kMember, what + " member");
    check_images(s.neighbours, classes, ImageKind::kNeighbour, what + " neighbour");
    const ScenarioValidity& v = s.validity;
    if (v.known()) {
      if (v.verdict != "genuine" && v.verdict != "label-change" && v.verdict != "ambiguous")
        fail(what + " has an unknown verdict '" + v.verdict + "'");
      if (v.judges < 1) fail(what + " has a verdict but no judges");
      for (double share :
           {v.genuine_share, v.label_change_share, v.ambiguous_share, v.judge_agreement, v.draw_genuine_rate})
        if (share != -1.0) check_share(share, what + " validity share");
      check_label(v.judge_label, classes, true, what + " judges' reading");
    }
    if (v.knn_label != -1) check_label(v.knn_label, classes, false, what + " neighbours' label");
    for (double share : {v.knn_seed_share, v.knn_predicted_share, v.realism})
      if (share != -1.0) check_share(share, what + " neighbourhood share");
  }
}

void write_scenarios(Database& db, int64_t run_id, const ScenarioSet& set) {
  validate_scenarios(set);
  db.transaction([&] {
    ensure_scenario_tables(db);
    // Replacing a run's scenarios: delete children first (the cascade would do it, but only
    // with foreign keys on, which a foreign connection may not have).
    db.prepare("DELETE FROM scenario_members WHERE run_id = ?").bind(1, run_id).run();
    db.prepare("DELETE FROM scenario_validity WHERE run_id = ?").bind(1, run_id).run();
    db.prepare("DELETE FROM scenario_images WHERE run_id = ?").bind(1, run_id).run();
    db.prepare("DELETE FROM scenarios WHERE run_id = ?").bind(1, run_id).run();
    db.prepare("DELETE FROM scenario_sets WHERE run_id = ?").bind(1, run_id).run();
    const int64_t latent = set.scenarios.empty() ? 0 : static_cast<int64_t>(set.scenarios.front().mean.size());
    db.prepare("INSERT INTO scenario_sets (run_id, class_names, latent_dim) VALUES (?, ?, ?)")
        .bind(1, run_id)
        .bind(2, json(set.class_names).dump())
        .bind(3, latent)
        .run();
    Statement scenario = db.prepare(
        "INSERT INTO scenarios (run_id, id, component, weight, failure_rate, seed_label, seed_label_share,"
        " predicted_label, predicted_share, members, neighbour_accuracy, score, mean, covariance)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    Statement image = db.prepare(
        "INSERT INTO scenario_images (run_id, scenario_id, kind, idx, path, predicted, label, judge)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    Statement validity = db.prepare(
        "INSERT INTO scenario_validity (run_id, scenario_id, verdict, judges, genuine_share, label_change_share,"
        " ambiguous_share, judge_label, judge_agreement, knn_label, knn_seed_share, knn_predicted_share, realism,"
        " draw_genuine_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const Scenario& s : set.scenarios) {
      std::string mean = floats_blob(s.mean), covariance = floats_blob(s.covariance);
      scenario.bind(1, run_id)
          .bind(2, s.id)
          .bind(3, s.component)
          .bind(4, s.weight)
          .bind(5, s.failure_rate)
          .bind(6, s.seed_label)
          .bind(7, s.seed_label_share)
          .bind(8, s.predicted_label)
          .bind(9, s.predicted_share)
          .bind(10, s.members)
          .bind(11, s.neighbour_accuracy)
          .bind(12, s.score)
          .bind_blob(13, mean.data(), mean.size())
          .bind_blob(14, covariance.data(), covariance.size())
          .run();
      auto add = [&](const std::vector<ScenarioImage>& images, const char* kind) {
        for (size_t i = 0; i < images.size(); ++i)
          image.bind(1, run_id)
              .bind(2, s.id)
              .bind(3, kind)
              .bind(4, static_cast<int64_t>(i))
              .bind(5, images[i].path)
              .bind(6, images[i].predicted)
              .bind(7, images[i].label)
              .bind(8, images[i].judge)
              .run();
      };
      add(s.samples, "sample");
      add(s.member_images, "member");
      add(s.neighbours, "neighbour");
      const ScenarioValidity& v = s.validity;
      if (v.known() || v.knn_label != -1)
        validity.bind(1, run_id)
            .bind(2, s.id)
            .bind(3, v.verdict)
            .bind(4, v.judges)
            .bind(5, v.genuine_share)
            .bind(6, v.label_change_share)
            .bind(7, v.ambiguous_share)
            .bind(8, v.judge_label)
            .bind(9, v.judge_agreement)
            .bind(10, v.knn_label)
            .bind(11, v.knn_seed_share)
            .bind(12, v.knn_predicted_share)
            .bind(13, v.realism)
            .bind(14, v.draw_genuine_rate)
            .run();
      if (!s.member_failures.empty())
        db.prepare("INSERT INTO scenario_members (run_id, scenario_id, failures) VALUES (?, ?, ?)")
            .bind(1, run_id)
            .bind(2, s.id)
            .bind_blob(3, s.member_failures.data(), s.member_failures.size() * sizeof(int64_t))
            .run();
    }
  });
}

ScenarioSet load_scenarios(Database& db, int64_t run_id) {
  ensure_scenario_tables(db);
  ScenarioSet set;
  set.run_id = run_id;
  {
    Statement s = db.prepare("SELECT class_names FROM scenario_sets WHERE run_id = ?");
    s.bind(1, run_id);
    if (!s.step())
      throw StateError("scenarios: distill run " + std::to_string(run_id) +
                       " stored no scenarios: run `defuse distill` again");
    json names = json::parse(s.column_text(0), nullptr, false);
    if (!names.is_array()) throw StateError("scenarios: run " + std::to_string(run_id) + " has malformed class names");
    for (const auto& n : names) {
      if (!n.is_string()) throw StateError("scenarios: run " + std::to_string(run_id) + " has malformed class names");
      set.class_names.push_back(n.get<std::string>());
    }
  }
  Statement s = db.prepare(
      "SELECT id, component, weight, failure_rate, seed_label, seed_label_share, predicted_label, predicted_share,"
      " members, neighbour_accuracy, score, mean, covariance FROM scenarios WHERE run_id = ? ORDER BY id");
  s.bind(1, run_id);
  while (s.step()) {
    Scenario sc;
    sc.id = s.column_int(0);
    sc.component = s.column_int(1);
    sc.weight = s.column_double(2);
    sc.failure_rate = s.column_double(3);
    sc.seed_label = s.column_int(4);
    sc.seed_label_share = s.column_double(5);
    sc.predicted_label = s.column_int(6);
    sc.predicted_share = s.column_double(7);
    sc.members = s.column_int(8);
    sc.neighbour_accuracy = s.column_double(9);
    sc.score = s.column_double(10);
    const std::string what = "scenario " + std::to_string(sc.id);
    sc.mean = blob_floats(s.column_blob(11), what + " mean");
    sc.covariance = blob_floats(s.column_blob(12), what + " covariance");
    set.scenarios.push_back(std::move(sc));
  }
  Statement images = db.prepare(
      "SELECT scenario_id, kind, path, predicted, label, judge FROM scenario_images WHERE run_id = ?"
      " ORDER BY scenario_id, kind, idx");
  images.bind(1, run_id);
  while (images.step()) {
    Scenario* sc = const_cast<Scenario*>(set.find(images.column_int(0)));
    if (!sc) continue;  // the foreign key prevents this
    ScenarioImage image{images.column_text(2), images.column_int(3), images.column_int(4), images.column_int(5)};
    const std::string kind = images.column_text(1);
    (kind == "sample"   ? sc->samples
     : kind == "member" ? sc->member_images
                        : sc->neighbours)
        .push_back(std::move(image));
  }
  Statement validity = db.prepare(
      "SELECT scenario_id, verdict, judges, genuine_share, label_change_share, ambiguous_share, judge_label,"
      " judge_agreement, knn_label, knn_seed_share, knn_predicted_share, realism, draw_genuine_rate"
      " FROM scenario_validity WHERE run_id = ?");
  validity.bind(1, run_id);
  while (validity.step()) {
    Scenario* sc = const_cast<Scenario*>(set.find(validity.column_int(0)));
    if (!sc) continue;
    ScenarioValidity& v = sc->validity;
    v.verdict = validity.column_text(1);
    v.judges = validity.column_int(2);
    v.genuine_share = validity.column_double(3);
    v.label_change_share = validity.column_double(4);
    v.ambiguous_share = validity.column_double(5);
    v.judge_label = validity.column_int(6);
    v.judge_agreement = validity.column_double(7);
    v.knn_label = validity.column_int(8);
    v.knn_seed_share = validity.column_double(9);
    v.knn_predicted_share = validity.column_double(10);
    v.realism = validity.column_double(11);
    v.draw_genuine_rate = validity.column_double(12);
  }
  Statement members = db.prepare("SELECT scenario_id, failures FROM scenario_members WHERE run_id = ?");
  members.bind(1, run_id);
  while (members.step()) {
    Scenario* sc = const_cast<Scenario*>(set.find(members.column_int(0)));
    if (!sc) continue;
    std::string bytes = members.column_blob(1);
    if (bytes.size() % sizeof(int64_t) != 0)
      throw StateError("scenarios: run " + std::to_string(run_id) + " scenario " + std::to_string(sc->id) +
                       " has a malformed member list");
    sc->member_failures.resize(bytes.size() / sizeof(int64_t));
    std::memcpy(sc->member_failures.data(), bytes.data(), bytes.size());
  }
  return set;
}

ScenarioSet load_scenarios(Workspace& workspace) {
  StageRecord record = workspace.require("distill", "distill");
  return load_scenarios(workspace.db(), record.id);
}

}  // namespace defuse
