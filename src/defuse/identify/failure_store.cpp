#include "defuse/identify/failure_store.h"

#include <nlohmann/json.hpp>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"

namespace defuse {

namespace {

constexpr const char* kFormat = "defuse-failures-1";

void create_table(Database& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS failures (
      run_id INTEGER NOT NULL REFERENCES stage_runs (id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      seed_index INTEGER NOT NULL,
      seed_split TEXT NOT NULL,
      seed_label INTEGER NOT NULL,
      predicted_label INTEGER NOT NULL,
      probability REAL NOT NULL,
      noise BLOB NOT NULL,
      latent BLOB NOT NULL,
      PRIMARY KEY (run_id, idx)
    );
  )sql");
}

// The validity signals of each kept failure (DESIGN §3, "Validity"); NULL where a signal was
// not measured (no judges: no judge columns and no verdict).
void write_validity_rows(Database& db, int64_t run_id, const FailureValidity& v, int64_t n) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS failure_validity (
      run_id INTEGER NOT NULL REFERENCES stage_runs (id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      judge_label INTEGER,
      judge_agreement REAL,
      judge_confidence REAL,
      verdict TEXT,
      knn_label INTEGER,
      knn_seed_share REAL,
      knn_predicted_share REAL,
      realism REAL,
      PRIMARY KEY (run_id, idx)
    );
  )sql");
  if (!v.judged() && !v.has_neighbours()) return;
  auto as_long = [](const at::Tensor& t) { return t.defined() ? t.to(torch::kLong).contiguous() : t; };
  auto as_float = [](const at::Tensor& t) { return t.defined() ? t.to(torch::kFloat32).contiguous() : t; };
  auto jl = as_long(v.judge_label), vd = as_long(v.verdict), kl = as_long(v.knn_label);
  auto ja = as_float(v.judge_agreement), jc = as_float(v.judge_confidence), ks = as_float(v.knn_seed_share),
       kp = as_float(v.knn_predicted_share), re = as_float(v.realism);
  Statement insert = db.prepare(
      "INSERT INTO failure_validity (run_id, idx, judge_label, judge_agreement, judge_confidence, verdict, knn_label,"
      " knn_seed_share, knn_predicted_share, realism) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  auto real = [&](int column, const at::Tensor& t, int64_t i) -> Statement& {
    return t.defined() ? insert.bind(column, static_cast<double>(t.data_ptr<float>()[i])) : insert.bind_null(column);
  };
  auto integer = [&](int column, const at::Tensor& t, int64_t i) -> Statement& {
    return t.defined() ? insert.bind(column, t.data_ptr<int64_t>()[i]) : insert.bind_null(column);
  };
  for (int64_t i = 0; i < n; ++i) {
    insert.bind(1, run_id).bind(2, i);
    integer(3, jl, i);
    real(4, ja, i);
    real(5, jc, i);
    if (vd.defined())
      insert.bind(6, verdict_names().name(static_cast<Verdict>(vd.data_ptr<int64_t>()[i])));
    else
      insert.bind_null(6);
    integer(7, kl, i);
    real(8, ks, i);
    real(9, kp, i);
    real(10, re, i);
    insert.run();
  }
}

bool table_exists(Database& db) {
  Statement s = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'");
  return s.step();
}

}  // namespace

std::pair<std::string, std::string> save_failure_tensors(Workspace& workspace, const FailureSet& f) {
  write_atomic_via(workspace.path(kFailuresArtifact), [&](const std::filesystem::path& tmp) {
    torch::serialize::OutputArchive archive;
    nlohmann::json meta = {
        {"format", kFormat}, {"count", f.size()}, {"seed_split", f.seed_split}, {"num_classes", f.num_classes}};
    archive.write("defuse_meta", c10::IValue(meta.dump()));
    archive.write("latent", f.latent.contiguous());
    archive.write("noise", f.noise.contiguous());
    archive.write("images", f.images.contiguous());
    archive.write("seed_index", f.seed_index.contiguous());
    archive.write("seed_label", f.seed_label.contiguous());
    archive.write("predicted", f.predicted.contiguous());
    archive.write("probability", f.probability.contiguous());
    // Validity signals and the gate's rejected examples, when measured (absent in files
    // written before they were, which read back as "not measured").
    const FailureValidity& v = f.validity;
    for (const auto& [key, t] : {std::pair<const char*, const at::Tensor*>{"judge_label", &v.judge_label},
                                 {"judge_agreement", &v.judge_agreement},
                                 {"judge_confidence", &v.judge_confidence},
                                 {"verdict", &v.verdict},
                                 {"knn_label", &v.knn_label},
                                 {"knn_seed_share", &v.knn_seed_share},
                                 {"knn_predicted_share", &v.knn_predicted_share},
                                 {"realism", &v.realism},
                                 {"rejected_images", &f.rejected.images},
                                 {"rejected_seed_index", &f.rejected.seed_index},
                                 {"rejected_seed_label", &f.rejected.seed_label},
                                 {"rejected_predicted", &f.rejected.predicted},
                                 {"rejected_judge_label", &f.rejected.judge_label}})
      if (t->defined()) archive.write(key, t->contiguous());
    archive.save_to(tmp.string());
  });
  return {"failures", kFailuresArtifact};
}

std::function<void(Database&)> failure_rows_writer(int64_t run_id, const FailureSet& f) {
  // Copies the tensors (cheap: F x Z floats) so the writer outlives the caller's FailureSet.
  auto noise = f.noise.to(torch::kFloat32).contiguous();
  auto latent = f.latent.to(torch::kFloat32).contiguous();
  auto seed_index = f.seed_index.contiguous(), seed_label = f.seed_label.contiguous();
  auto predicted = f.predicted.contiguous();
  auto probability = f.probability.to(torch::kFloat32).contiguous();
  std::string split = f.seed_split;
  const FailureValidity v = f.validity;  // shallow: tensors are shared, never modified here
  return [=](Database& db) {
    create_table(db);
    write_validity_rows(db, run_id, v, noise.size(0));
    const int64_t n = noise.size(0), z = noise.size(1);
    const size_t bytes = static_cast<size_t>(z) * sizeof(float);
    Statement insert = db.prepare(
        "INSERT INTO failures (run_id, idx, seed_index, seed_split, seed_label, predicted_label, probability, noise,"
        " latent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const float* pn = noise.data_ptr<float>();
    const float* pl = latent.data_ptr<float>();
    const int64_t* psi = seed_index.data_ptr<int64_t>();
    const int64_t* psl = seed_label.data_ptr<int64_t>();
    const int64_t* ppr = predicted.data_ptr<int64_t>();
    const float* ppb = probability.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      insert.bind(1, run_id)
          .bind(2, i)
          .bind(3, psi[i])
          .bind(4, split)
          .bind(5, psl[i])
          .bind(6, ppr[i])
          .bind(7, static_cast<double>(ppb[i]))
          .bind_blob(8, pn + i * z, bytes)
          .bind_blob(9, pl + i * z, bytes)
          .run();
    }
  };
}

FailureSet read_failure_tensors(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw IoError("identify: " + path.string() + " does not exist");
  FailureSet f;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string(), c10::Device(c10::kCPU));
    c10::IValue meta;
    archive.read("defuse_meta", meta);
    auto j = nlohmann::json::parse(meta.toStringRef());
    if (j.value("format", "") != kFormat) throw StateError("identify: " + path.string() + ": unknown format");
    f.seed_split = j.value("seed_split", "");
    f.num_classes = j.value("num_classes", int64_t{0});
    archive.read("latent", f.latent);
    archive.read("noise", f.noise);
    archive.read("images", f.images);
    archive.read("seed_index", f.seed_index);
    archive.read("seed_label", f.seed_label);
    archive.read("predicted", f.predicted);
    archive.read("probability", f.probability);
    auto optional = [&](const char* key, at::Tensor& t) {
      if (!archive.try_read(key, t)) t = at::Tensor();
    };
    FailureValidity& v = f.validity;
    optional("judge_label", v.judge_label);
    optional("judge_agreement", v.judge_agreement);
    optional("judge_confidence", v.judge_confidence);
    optional("verdict", v.verdict);
    optional("knn_label", v.knn_label);
    optional("knn_seed_share", v.knn_seed_share);
    optional("knn_predicted_share", v.knn_predicted_share);
    optional("realism", v.realism);
    optional("rejected_images", f.rejected.images);
    optional("rejected_seed_index", f.rejected.seed_index);
    optional("rejected_seed_label", f.rejected.seed_label);
    optional("rejected_predicted", f.rejected.predicted);
    optional("rejected_judge_label", f.rejected.judge_label);
  } catch (const c10::Error& e) {
    throw StateError("identify: " + path.string() + " is not a failures file (" +
                     std::string(e.what_without_backtrace()).substr(0, 200) + "): run `defuse identify` again");
  } catch (const nlohmann::json::exception& e) {
    throw StateError("identify: " + path.string() + " has unreadable metadata: run `defuse identify` again");
  }
  const int64_t n = f.latent.size(0);
  const FailureValidity& v = f.validity;
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{
           &f.noise, &f.images, &f.seed_index, &f.seed_label, &f.predicted, &f.probability, &v.judge_label,
           &v.judge_agreement, &v.judge_confidence, &v.verdict, &v.knn_label, &v.knn_seed_share, &v.knn_predicted_share,
           &v.realism})
    if (t->defined() && (t->dim() == 0 || t->size(0) != n))
      throw StateError("identify: " + path.string() + " holds tensors of different lengths");
  f.summary.failures = n;
  return f;
}

FailureSet load_failures(Workspace& workspace) {
  return load_failures(workspace, workspace.require(kIdentifyStage, "identify"));
}

FailureSet load_failures(Workspace& workspace, const StageRecord& record) {
  const ArtifactRecord* artifact = record.artifact("failures");
  if (!artifact)
    throw StateError("workspace " + workspace.dir().string() + ": the identify run " + std::to_string(record.id) +
                     " recorded no failures file: run `defuse identify` again");
  FailureSet f = read_failure_tensors(workspace.path(artifact->path));
  int64_t rows = 0;
  if (table_exists(workspace.db())) {
    Statement count = workspace.db().prepare("SELECT COUNT(*) FROM failures WHERE run_id = ?");
    count.bind(1, record.id);
    if (count.step()) rows = count.column_int(0);
  }
  if (rows != f.size())
    throw StateError("workspace " + workspace.dir().string() + ": the catalogue lists " + std::to_string(rows) +
                     " failures for identify run " + std::to_string(record.id) + " but its file holds " +
                     std::to_string(f.size()) + ": run `defuse identify` again");
  // The summary counts of the run, from its metrics.
  const auto& m = record.metrics;
  auto get = [&](const char* key) { return m.contains(key) && m[key].is_number() ? m[key].get<int64_t>() : 0; };
  f.summary.seed_pool = get("seed_pool");
  f.summary.seeds_checked = get("seeds_checked");
  f.summary.seeds_bad_reconstruction = get("seeds_bad_reconstruction");
  f.summary.seeds = get("seeds");
  f.summary.seeds_with_failures = get("seeds_with_failures");
  f.summary.decodes = get("decodes");
  f.summary.failing_decodes = get("failing_decodes");
  if (m.contains("seed_accuracy") && m["seed_accuracy"].is_number()) f.summary.seed_accuracy = m["seed_accuracy"];
  if (m.contains("seconds") && m["seconds"].is_number()) f.summary.seconds = m["seconds"];
  if (m.contains("search_seconds") && m["search_seconds"].is_number()) f.summary.search_seconds = m["search_seconds"];
  if (m.contains("pairs") && m["pairs"].is_array())
    f.summary.pairs = m["pairs"].get<std::vector<std::vector<int64_t>>>();
  return f;
}

}  // namespace defuse
