#include "defuse/base/workspace.h"

#include <gtest/gtest.h>

#include <fstream>

#include <unistd.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/hash.h"
#include "defuse/base/sqlite.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

TEST(Workspace, CreatesCatalogueAndRecordsACompleteStage) {
  test::TempDir tmp;
  Workspace ws(tmp.path() / "ws");
  EXPECT_TRUE(std::filesystem::exists(tmp.path() / "ws" / "defuse.db"));
  EXPECT_FALSE(ws.latest("train-classifier").has_value());

  auto record = ws.run_stage("train-classifier", {{"epochs", 3}}, {{"dataset", "abc"}}, [&](int64_t) {
    write_file_atomic(ws.path("classifier/model.pt"), "weights");
    return Workspace::StageOutput{{{"test_accuracy", 0.9}}, {{"model", "classifier/model.pt"}}, nullptr};
  });
  EXPECT_EQ(record.status, "complete");
  auto latest = ws.latest("train-classifier");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->options["epochs"], 3);
  EXPECT_DOUBLE_EQ(latest->metrics["test_accuracy"].get<double>(), 0.9);
  ASSERT_NE(latest->artifact("model"), nullptr);
  EXPECT_EQ(latest->artifact("model")->hash, hash_bytes("weights"));
  EXPECT_EQ(latest->artifact("model")->bytes, 7);
  EXPECT_EQ(latest->fingerprint, stage_fingerprint("train-classifier", {{"epochs", 3}}, {{"dataset", "abc"}}));
  EXPECT_TRUE(ws.artifacts_intact(*latest));
}

TEST(Workspace, FailedStageIsRecordedAndNotLatest) {
  test::TempDir tmp;
  Workspace ws(tmp.path());
  EXPECT_THROW(ws.run_stage("identify", json::object(), json::object(),
                            [&](int64_t) -> Workspace::StageOutput { throw DataError("identify: boom"); }),
               DataError);
  EXPECT_FALSE(ws.latest("identify").has_value());
  auto history = ws.history();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].status, "failed");
  EXPECT_EQ(history[0].error, "identify: boom");
}

TEST(Workspace, ExtraRowsCommitWithTheStageOrNotAtAll) {
  test::TempDir tmp;
  Workspace ws(tmp.path());
  ws.db().exec("CREATE TABLE things (run_id INTEGER, value INTEGER)");
  EXPECT_THROW(ws.run_stage("s", json::object(), json::object(),
                            [&](int64_t id) {
                              return Workspace::StageOutput{
                                  json::object(), {{"missing", "does/not/exist"}}, [id](Database& db) {
                                    db.prepare("INSERT INTO things VALUES (?, 1)").bind(1, id).run();
                                  }};
                            }),
               IoError);
  Statement count = ws.db().prepare("SELECT COUNT(*) FROM things");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.column_int(0), 0);
}

TEST(Workspace, RequireRejectsMissingAndChangedArtifacts) {
  test::TempDir tmp;
  Workspace ws(tmp.path());
  EXPECT_THROW(ws.require("train-vae", "train-vae"), StateError);
  ws.run_stage("train-vae", json::object(), json::object(), [&](int64_t) {
    write_file_atomic(ws.path("vae/model.pt"), "v1");
    return Workspace::StageOutput{json::object(), {{"model", "vae/model.pt"}}, nullptr};
  });
  EXPECT_NO_THROW(ws.require("train-vae", "train-vae"));
  write_file_atomic(ws.path("vae/model.pt"), "v2");
  try {
    ws.require("train-vae", "train-vae");
    FAIL() << "expected StateError";
  } catch (const StateError& e) {
    EXPECT_NE(std::string(e.what()).find("changed or removed"), std::string::npos);
  }
}

TEST(Workspace, RunLeftRunningByADeadProcessIsReportedInterrupted) {
  test::TempDir tmp;
  {
    Workspace ws(tmp.path());
    ws.begin_stage("distill", json::object(), json::object());
    // Pretend the process that began it has died.
    ws.db().exec("UPDATE stage_runs SET pid = 999999999");
  }
  Workspace ws(tmp.path());
  auto history = ws.history();
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].status, "interrupted");
  EXPECT_FALSE(ws.latest("distill").has_value());
}

TEST(Workspace, RefusesNewerSchema) {
  test::TempDir tmp;
  {
    Database db(tmp.path() / "defuse.db");
    db.set_user_version(99);
  }
  EXPECT_THROW(Workspace ws(tmp.path()), StateError);
}

TEST(Workspace, FingerprintChangesWithOptionsAndInputs) {
  auto a = stage_fingerprint("s", {{"x", 1}}, {{"d", "h"}});
  EXPECT_EQ(a, stage_fingerprint("s", {{"x", 1}}, {{"d", "h"}}));
  EXPECT_NE(a, stage_fingerprint("s", {{"x", 2}}, {{"d", "h"}}));
  EXPECT_NE(a, stage_fingerprint("s", {{"x", 1}}, {{"d", "g"}}));
  EXPECT_NE(a, stage_fingerprint("t", {{"x", 1}}, {{"d", "h"}}));
}

TEST(AtomicFile, WritesReplacesAndLeavesNoTemporaries) {
  test::TempDir tmp;
  auto p = tmp.path() / "sub" / "f.txt";
  write_file_atomic(p, "one");
  write_file_atomic(p, "two");
  EXPECT_EQ(read_file(p), "two");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(p.parent_path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(AtomicFile, FailedWriterLeavesTargetUntouched) {
  test::TempDir tmp;
  auto p = tmp.path() / "f.bin";
  write_file_atomic(p, "good");
  EXPECT_THROW(write_atomic_via(p,
                                [](const std::filesystem::path& t) {
                                  std::ofstream(t) << "half";
                                  throw IoError("writer died");
                                }),
               IoError);
  EXPECT_EQ(read_file(p), "good");
  EXPECT_EQ(remove_stale_temporaries(tmp.path()), 0);
}

TEST(AtomicFile, StaleTemporariesAreRemoved) {
  test::TempDir tmp;
  // 999999999 is above any Linux pid_max (at most 2^22): a writer that is surely gone.
  std::ofstream(tmp.path() / "model.pt.tmp-defuse-999999999-abc") << "partial";
  std::ofstream(tmp.path() / "keep.pt") << "x";
  EXPECT_EQ(remove_stale_temporaries(tmp.path()), 1);
  EXPECT_TRUE(std::filesystem::exists(tmp.path() / "keep.pt"));
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "model.pt.tmp-defuse-999999999-abc"));
}

TEST(AtomicFile, LiveWritersTemporariesStay) {
  // Opening a workspace (a reader's `status` while a stage writes) must not delete the
  // temporary that a running writer is filling.
  test::TempDir tmp;
  auto live = tmp.path() / ("failures.pt.tmp-defuse-" + std::to_string(::getpid()) + "-abc");
  std::ofstream(live) << "being written";
  EXPECT_EQ(remove_stale_temporaries(tmp.path()), 0);
  EXPECT_TRUE(std::filesystem::exists(live));
  Workspace ws(tmp.path());
  EXPECT_TRUE(std::filesystem::exists(live));
}

TEST(AtomicFile, MissingFileIsAnIoError) {
  EXPECT_THROW(read_file("/nonexistent/defuse/file"), IoError);
  EXPECT_THROW(hash_file("/nonexistent/defuse/file"), IoError);
}

TEST(Hash, HasherSeparatesPieces) {
  Hasher a, b;
  a.update("ab").update("c");
  b.update("a").update("bc");
  EXPECT_NE(a.hex(), b.hex());
  EXPECT_EQ(hash_bytes("x").size(), 32u);
  EXPECT_NE(hash_bytes("x"), hash_bytes("y"));
}

}  // namespace
}  // namespace defuse
