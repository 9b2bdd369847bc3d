#include "defuse/base/workspace.h"

#include <csignal>
#include <cstdlib>

#include <unistd.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/hash.h"
#include "defuse/base/process.h"
#include "defuse/base/sqlite.h"

namespace defuse {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kSchemaVersion = 1;

}  // namespace

const ArtifactRecord* StageRecord::artifact(const std::string& name) const {
  for (const auto& a : artifacts)
    if (a.name == name) return &a;
  return nullptr;
}

std::string stage_fingerprint(const std::string& stage, const json& options, const json& inputs) {
  // nlohmann::json objects are ordered by key, so dump() is canonical.
  Hasher h;
  h.update(stage).update(options.dump()).update(inputs.dump());
  return h.hex();
}

Workspace::Workspace(const fs::path& dir) : dir_(fs::absolute(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) throw IoError("workspace: cannot create directory " + dir_.string());
  db_ = std::make_unique<Database>(dir_ / "defuse.db");
  migrate();
  remove_stale_temporaries(dir_);
}

Workspace::~Workspace() = default;

void Workspace::migrate() {
  int version = db_->user_version();
  if (version > kSchemaVersion)
    throw StateError("workspace: catalogue " + db_->path().string() + " has schema version " + std::to_string(version) +
                     ", newer than this defuse understands (" + std::to_string(kSchemaVersion) + ")");
  if (version == kSchemaVersion) return;
  db_->transaction([&] {
    db_->exec(R"sql(
      CREATE TABLE IF NOT EXISTS stage_runs (
        id INTEGER PRIMARY KEY,
        stage TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        options TEXT NOT NULL,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
        started_at TEXT NOT NULL,
        finished_at TEXT,
        seconds REAL,
        metrics TEXT,
        error TEXT,
        pid INTEGER,
        host TEXT,
        version TEXT
      );
      CREATE INDEX IF NOT EXISTS stage_runs_by_stage ON stage_runs (stage, status, id);
      CREATE TABLE IF NOT EXISTS artifacts (
        run_id INTEGER NOT NULL REFERENCES stage_runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        hash TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (run_id, name)
      );
    )sql");
    db_->set_user_version(kSchemaVersion);
  });
}

int64_t Workspace::begin_stage(const std::string& stage, const json& options, const json& inputs) {
  int64_t id = 0;
  db_->transaction([&] {
    db_->prepare(
           "INSERT INTO stage_runs (stage, fingerprint, options, inputs, status, started_at, pid, host, version)"
           " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)")
        .bind(1, stage)
        .bind(2, stage_fingerprint(stage, options, inputs))
        .bind(3, options.dump())
        .bind(4, inputs.dump())
        .bind(5, now_iso())
        .bind(6, static_cast<int64_t>(::getpid()))
        .bind(7, host_name())
        .bind(8, DEFUSE_VERSION)
        .run();
    id = db_->last_insert_id();
  });
  return id;
}

void Workspace::complete_stage(int64_t run_id, const json& metrics,
                               const std::vector<std::pair<std::string, std::string>>& artifacts,
                               const std::function<void(Database&)>& extra) {
  // Hash outside the transaction: files are complete (written atomically) before this call.
  std::vector<ArtifactRecord> records;
  for (const auto& [name, relative] : artifacts) {
    fs::path p = path(relative);
    std::error_code ec;
    auto bytes = fs::file_size(p, ec);
    if (ec) throw IoError("workspace: artifact " + p.string() + " is missing: " + ec.message());
    records.push_back({name, relative, hash_file(p), static_cast<int64_t>(bytes)});
  }
  db_->transaction([&] {
    Statement started = db_->prepare("SELECT started_at FROM stage_runs WHERE id = ?");
    started.bind(1, run_id);
    if (!started.step()) throw StateError("workspace: no stage run " + std::to_string(run_id));
    Statement insert =
        db_->prepare("INSERT OR REPLACE INTO artifacts (run_id, name, path, hash, bytes) VALUES (?, ?, ?, ?, ?)");
    for (const auto& r : records)
      insert.bind(1, run_id).bind(2, r.name).bind(3, r.path).bind(4, r.hash).bind(5, r.bytes).run();
    if (extra) extra(*db_);
    db_->prepare(
           "UPDATE stage_runs SET status = 'complete', finished_at = ?, metrics = ?,"
           " seconds = (julianday(?) - julianday(started_at)) * 86400.0 WHERE id = ?")
        .bind(1, now_iso())
        .bind(2, metrics.dump())
        .bind(3, now_iso())
        .bind(4, run_id)
        .run();
    if (metrics.contains("seconds") && metrics["seconds"].is_number())
      db_->prepare("UPDATE stage_runs SET seconds = ? WHERE id = ?")
          .bind(1, metrics["seconds"].get<double>())
          .bind(2, run_id)
          .run();
  });
}

void Workspace::fail_stage(int64_t run_id, const std::string& error) {
  db_->prepare("UPDATE stage_runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?")
      .bind(1, now_iso())
      .bind(2, error)
      .bind(3, run_id)
      .run();
}

StageRecord Workspace::read_record(int64_t id) {
  Statement s = db_->prepare(
      "SELECT id, stage, fingerprint, options, inputs, status, started_at, finished_at, seconds, metrics, error,"
      " pid, host FROM stage_runs WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) throw StateError("workspace: no stage run " + std::to_string(id));
  StageRecord r;
  r.id = s.column_int(0);
  r.stage = s.column_text(1);
  r.fingerprint = s.column_text(2);
  r.options = json::parse(s.column_text(3), nullptr, false);
  r.inputs = json::parse(s.column_text(4), nullptr, false);
  r.status = s.column_text(5);
  r.started_at = s.column_text(6);
  r.finished_at = s.column_text(7);
  r.seconds = s.column_double(8);
  if (!s.column_is_null(9)) r.metrics = json::parse(s.column_text(9), nullptr, false);
  r.error = s.column_text(10);
  if (r.status == "running" && s.column_text(12) == host_name() && !process_alive(s.column_int(11)))
    r.status = "interrupted";
  Statement a = db_->prepare("SELECT name, path, hash, bytes FROM artifacts WHERE run_id = ? ORDER BY name");
  a.bind(1, id);
  while (a.step()) r.artifacts.push_back({a.column_text(0), a.column_text(1), a.column_text(2), a.column_int(3)});
  return r;
}

std::optional<StageRecord> Workspace::latest(const std::string& stage) {
  Statement s =
      db_->prepare("SELECT id FROM stage_runs WHERE stage = ? AND status = 'complete' ORDER BY id DESC LIMIT 1");
  s.bind(1, stage);
  if (!s.step()) return std::nullopt;
  return read_record(s.column_int(0));
}

StageRecord Workspace::require(const std::string& stage, const std::string& hint_command) {
  auto record = latest(stage);
  if (!record)
    throw StateError("workspace " + dir_.string() + " has no completed " + stage + " stage: run `defuse " +
                     hint_command + "` first");
  if (!artifacts_intact(*record))
    throw StateError("workspace " + dir_.string() + ": the files of the last " + stage +
                     " stage were changed or removed since it ran: run `defuse " + hint_command + "` again");
  return *record;
}

StageRecord Workspace::run_stage(const std::string& stage, const json& options, const json& inputs,
                                 const std::function<StageOutput(int64_t)>& body) {
  int64_t id = begin_stage(stage, options, inputs);
  try {
    StageOutput out = body(id);
    // Fault injection for the resume tests (tests/e2e/run_cli_test.cpp): die the hardest way
    // at the worst moment, with every file of the stage written and nothing recorded yet.
    if (const char* kill_at = std::getenv("DEFUSE_TEST_KILL_STAGE"); kill_at && stage == kill_at) ::raise(SIGKILL);
    complete_stage(id, out.metrics, out.artifacts, out.extra);
  } catch (const std::exception& e) {
    try {
      fail_stage(id, e.what());
    } catch (...) {
      // The original error matters more than a failure to record it.
    }
    throw;
  }
  return read_record(id);
}

std::vector<StageRecord> Workspace::history() {
  std::vector<int64_t> ids;
  Statement s = db_->prepare("SELECT id FROM stage_runs ORDER BY id");
  while (s.step()) ids.push_back(s.column_int(0));
  std::vector<StageRecord> out;
  for (int64_t id : ids) out.push_back(read_record(id));
  return out;
}

bool Workspace::artifacts_intact(const StageRecord& record) const {
  for (const auto& a : record.artifacts) {
    std::error_code ec;
    fs::path p = path(a.path);
    if (!fs::exists(p, ec) || static_cast<int64_t>(fs::file_size(p, ec)) != a.bytes) return false;
    if (hash_file(p) != a.hash) return false;
  }
  return true;
}

}  // namespace defuse
