// The workspace (DESIGN §2): a directory holding one investigation, with its SQLite
// catalogue `defuse.db` and the artifacts of each stage beside it.
//
// Every stage run is a row in `stage_runs`: its effective options, the content hashes of its
// inputs, a fingerprint of both (what `defuse run` compares to decide whether to skip a
// stage), status, timings and metrics. Artifacts are files under the workspace, recorded
// with their content hash once they are completely written. A run becomes `complete` only
// in the same transaction that records its artifacts, so a stage killed mid-way leaves
// either nothing or a `running` row that later readers ignore.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace defuse {

class Database;

struct ArtifactRecord {
  std::string name;  // role within the stage, e.g. "model"
  std::string path;  // relative to the workspace directory
  std::string hash;  // content hash (hash_file)
  int64_t bytes = 0;
};

struct StageRecord {
  int64_t id = 0;
  std::string stage;
  std::string fingerprint;              // hash of stage name, options and inputs
  nlohmann::json options;               // the effective options
  nlohmann::json inputs;                // input name -> content hash or upstream fingerprint
  std::string status;                   // "running", "complete", "failed", "interrupted"
  std::string started_at, finished_at;  // ISO-8601 UTC
  double seconds = 0;
  nlohmann::json metrics;
  std::string error;
  std::vector<ArtifactRecord> artifacts;

  const ArtifactRecord* artifact(const std::string& name) const;
};

// Computes a stage's fingerprint from its name, options and inputs.
std::string stage_fingerprint(const std::string& stage, const nlohmann::json& options, const nlohmann::json& inputs);

class Workspace {
 public:
  // Opens the workspace at `dir`, creating the directory and the catalogue if needed and
  // migrating an older catalogue schema. Removes temporaries left by killed writers.
  explicit Workspace(const std::filesystem::path& dir);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  // Absolute path of an artifact given its path relative to the workspace.
  std::filesystem::path path(const std::string& relative) const { return dir_ / relative; }
  // The catalogue, for stages that keep their own tables (failures, scenarios, ...).
  Database& db() { return *db_; }

  // Records the start of a stage run; returns its id.
  int64_t begin_stage(const std::string& stage, const nlohmann::json& options, const nlohmann::json& inputs);
  // Marks the run complete, recording metrics and the given artifacts (name -> relative
  // path, hashed now). `extra` runs inside the same transaction to write the stage's own
  // rows, so they appear together with the completion or not at all.
  void complete_stage(int64_t run_id, const nlohmann::json& metrics,
                      const std::vector<std::pair<std::string, std::string>>& artifacts,
                      const std::function<void(Database&)>& extra = nullptr);
  void fail_stage(int64_t run_id, const std::string& error);

  // What a stage body hands back to run_stage.
  struct StageOutput {
    nlohmann::json metrics;
    std::vector<std::pair<std::string, std::string>> artifacts;  // name -> relative path
    std::function<void(Database&)> extra;                        // the stage's own rows
  };
  // begin_stage, then `body`, then complete_stage; on an exception, fail_stage and rethrow.
  StageRecord run_stage(const std::string& stage, const nlohmann::json& options, const nlohmann::json& inputs,
                        const std::function<StageOutput(int64_t run_id)>& body);

  // The latest complete run of `stage`, if any.
  std::optional<StageRecord> latest(const std::string& stage);
  // The latest complete run of `stage` whose artifacts are intact; throws StateError telling
  // which command to run if there is none or its files were changed or removed since.
  StageRecord require(const std::string& stage, const std::string& hint_command);
  // Every run, oldest first (runs left `running` by a dead process are reported `interrupted`).
  std::vector<StageRecord> history();
  // True when every artifact of the run exists with its recorded hash.
  bool artifacts_intact(const StageRecord& record) const;

 private:
  StageRecord read_record(int64_t id);
  void migrate();

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
};

}  // namespace defuse
