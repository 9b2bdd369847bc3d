#include "defuse/annotate/annotation_store.h"

#include <gtest/gtest.h>

#include "defuse/base/error.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "support/scenario_support.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

Annotation vote(int64_t scenario, const std::string& annotator, std::optional<int64_t> label,
                const std::string& reject = "", const std::string& note = "") {
  Annotation a;
  a.scenario_id = scenario;
  a.annotator = annotator;
  a.label = label;
  a.reject = reject;
  a.note = note;
  return a;
}

int64_t count_rows(Database& db) {
  Statement s = db.prepare("SELECT COUNT(*) FROM annotations");
  s.step();
  return s.column_int(0);
}

class AnnotationStore : public ::testing::Test {
 protected:
  void SetUp() override {
    set_ = test::make_scenario_workspace(tmp_.path() / "ws", {4, 2, 1});
    ws_ = std::make_unique<Workspace>(tmp_.path() / "ws");
    ensure_annotation_tables(db());
  }
  Database& db() { return ws_->db(); }
  Annotation add(const Annotation& a) { return add_annotation(db(), set_, a); }
  std::string refusal(const Annotation& a) {
    return test::error_message<ConfigError>([&] { add(a); });
  }

  test::TempDir tmp_;
  ScenarioSet set_;
  std::unique_ptr<Workspace> ws_;
};

TEST_F(AnnotationStore, StoresAnnotationsAtOnceAndKeepsTheHistory) {
  Annotation a = add(vote(1, "alice", 3, "", "looks like a dress"));
  EXPECT_GT(a.id, 0);
  EXPECT_EQ(a.distill_run_id, set_.run_id);
  EXPECT_EQ(a.created_at.size(), 24u) << a.created_at;  // 2024-01-02T03:04:05.678Z
  add(vote(1, "alice", 4));
  add(vote(2, "bob", std::nullopt, kRejectUnrealistic));
  // Visible to another connection at once: each write is committed when add returns.
  Workspace other(tmp_.path() / "ws");
  auto history = list_annotations(other.db(), set_.run_id);
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].note, "looks like a dress");
  EXPECT_EQ(*history[1].label, 4);
  EXPECT_FALSE(history[2].label.has_value());
  EXPECT_EQ(history[2].reject, "unrealistic");
  auto latest = latest_annotations(other.db(), set_.run_id);
  ASSERT_EQ(latest.size(), 2u);  // alice's changed vote replaced her first
  EXPECT_EQ(*latest[0].label, 4);
  EXPECT_EQ(latest_annotations(other.db(), set_.run_id, 2).size(), 1u);
  EXPECT_TRUE(list_annotations(other.db(), set_.run_id + 1).empty());
}

TEST_F(AnnotationStore, ValidatesEveryField) {
  EXPECT_TRUE(test::contains(refusal(vote(5, "alice", 1)), "unknown scenario 5 (distill run 1 has scenarios 1..4)"));
  EXPECT_TRUE(test::contains(refusal(vote(0, "alice", 1)), "unknown scenario 0"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", 10)), "label 10 is not a class (0..9)"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", -1)), "label -1 is not a class"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", 1, kRejectAmbiguous)), "not both"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", std::nullopt)), "needs a label or a rejection"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", std::nullopt, "boring")),
                             "rejection 'boring' is not \"unrealistic\", \"ambiguous\" or \"not-a-bug\""));
  EXPECT_TRUE(test::contains(refusal(vote(1, "", 1)), "name is empty"));
  EXPECT_TRUE(test::contains(refusal(vote(1, std::string(65, 'x'), 1)), "65 characters, at most 64"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "al\nice", 1)), "control characters"));
  EXPECT_TRUE(test::contains(refusal(vote(1, " alice", 1)), "starts or ends with a space"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "al\xffice", 1)), "not valid UTF-8"));
  EXPECT_TRUE(
      test::contains(refusal(vote(1, "alice", 1, "", std::string(1001, 'n'))), "1001 characters, at most 1000"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", 1, "", "bad \x01 byte")), "control characters"));
  EXPECT_TRUE(test::contains(refusal(vote(1, "alice", 1, "", "\xc0\xaf")), "not valid UTF-8"));  // overlong '/'
  Annotation wrong_run = vote(1, "alice", 1);
  wrong_run.distill_run_id = set_.run_id + 7;
  EXPECT_TRUE(test::contains(refusal(wrong_run), "distill run 8"));
  Annotation bad_time = vote(1, "alice", 1);
  bad_time.created_at = "yesterday";
  EXPECT_TRUE(test::contains(refusal(bad_time), "not an ISO-8601"));
  EXPECT_EQ(count_rows(db()), 0);

  // The limits are in characters, not bytes.
  std::string name;
  for (int i = 0; i < 64; ++i) name += "\xc3\xa9";  // é
  std::string note;
  for (int i = 0; i < 1000; ++i) note += "\xe2\x82\xac";  // €
  EXPECT_NO_THROW(add(vote(1, name, 9, "", note + "")));
  EXPECT_NO_THROW(add(vote(1, "bob", 0, "", "two lines\nand a\ttab")));
  Annotation timed = vote(2, "carol", 1);
  timed.created_at = "2024-03-04T05:06:07Z";
  EXPECT_EQ(add(timed).created_at, "2024-03-04T05:06:07.000Z");
  EXPECT_EQ(count_rows(db()), 3);
}

// ---- the resolution rule ----

class Resolve : public AnnotationStore {
 protected:
  ResolvedScenario resolved(int64_t scenario) { return resolve_annotations(db(), set_)[scenario - 1]; }
};

TEST_F(Resolve, NoVotesIsUnlabelled) {
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kUnlabelled);
  EXPECT_FALSE(r.label.has_value());
  EXPECT_EQ(r.voters, 0);
  EXPECT_EQ(r.agreement, 0.0);
  EXPECT_FALSE(r.decided());
  EXPECT_EQ(r.votes.size(), 10u);
}

TEST_F(Resolve, OneVoteDecides) {
  add(vote(1, "alice", 3));
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kLabelled);
  EXPECT_EQ(*r.label, 3);
  EXPECT_EQ(r.agreement, 1.0);
  EXPECT_FALSE(r.disputed);
  EXPECT_FALSE(r.automatic);
  EXPECT_TRUE(r.decided());
}

TEST_F(Resolve, MajorityWinsAndDisagreementIsFlagged) {
  add(vote(1, "alice", 3));
  add(vote(1, "bob", 3));
  add(vote(1, "carol", 6));
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kLabelled);
  EXPECT_EQ(*r.label, 3);
  EXPECT_EQ(r.votes[3], 2);
  EXPECT_EQ(r.votes[6], 1);
  EXPECT_NEAR(r.agreement, 2.0 / 3.0, 1e-12);
  EXPECT_TRUE(r.disputed);
  EXPECT_EQ(r.voters, 3);
}

TEST_F(Resolve, TiesAreFlaggedAndUndecided) {
  add(vote(1, "alice", 3));
  add(vote(1, "bob", 6));
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kTie);
  EXPECT_TRUE(r.tie());
  EXPECT_FALSE(r.label.has_value());
  EXPECT_FALSE(r.decided());
  EXPECT_EQ(r.agreement, 0.5);
  // A label and a rejection with equal votes tie too.
  add(vote(2, "alice", 3));
  add(vote(2, "bob", std::nullopt, kRejectUnrealistic));
  EXPECT_EQ(resolved(2).status, Resolution::kTie);
  // A third vote breaks the tie.
  add(vote(1, "carol", 6));
  EXPECT_EQ(*resolved(1).label, 6);
}

TEST_F(Resolve, RejectionsPoolBothReasonsAndCanWin) {
  add(vote(1, "alice", std::nullopt, kRejectAmbiguous));
  add(vote(1, "bob", std::nullopt, kRejectUnrealistic));
  add(vote(1, "carol", 2));
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kRejected);
  EXPECT_TRUE(r.rejected());
  EXPECT_TRUE(r.decided());
  EXPECT_EQ(r.rejections(), 2);
  EXPECT_EQ(r.reject_reason, "unrealistic");  // a tie between the reasons reads "unrealistic"
  EXPECT_TRUE(r.disputed);
  add(vote(1, "dan", std::nullopt, kRejectAmbiguous));
  EXPECT_EQ(resolved(1).reject_reason, "ambiguous");
  // A label that an annotator rejected is still labelled by the majority, but disputed.
  add(vote(2, "alice", 5));
  add(vote(2, "bob", 5));
  add(vote(2, "carol", std::nullopt, kRejectUnrealistic));
  auto l = resolved(2);
  EXPECT_EQ(*l.label, 5);
  EXPECT_EQ(l.rejections(), 1);
  EXPECT_TRUE(l.disputed);
}

TEST_F(Resolve, AChangedVoteReplacesTheEarlierOne) {
  add(vote(1, "alice", 3));
  add(vote(1, "bob", 3));
  add(vote(1, "alice", 6));  // alice changes her mind
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kTie);
  EXPECT_EQ(r.voters, 2);
  add(vote(1, "alice", 3));  // and back
  EXPECT_EQ(*resolved(1).label, 3);
  EXPECT_EQ(resolved(1).voters, 2);
  EXPECT_EQ(list_annotations(db(), set_.run_id).size(), 4u);  // the history stays
}

TEST_F(Resolve, LatestMeansLatestInTimeThenInsertion) {
  Annotation newer = vote(1, "alice", 3);
  newer.created_at = "2024-05-02T00:00:00.000Z";
  Annotation older = vote(1, "alice", 6);
  older.created_at = "2024-05-01T00:00:00Z";  // imported later, but decided earlier
  add(newer);
  add(older);
  EXPECT_EQ(*resolved(1).label, 3);
  // The pure function applies the same rule to a list in any order.
  auto history = list_annotations(db(), set_.run_id);
  std::reverse(history.begin(), history.end());
  EXPECT_EQ(*resolve_annotations(set_, history)[0].label, 3);
  // Same time: the later insertion wins.
  Annotation a = vote(2, "bob", 1), b = vote(2, "bob", 2);
  a.created_at = b.created_at = "2024-05-01T00:00:00.000Z";
  add(a);
  add(b);
  EXPECT_EQ(*resolved(2).label, 2);
}

TEST_F(Resolve, HumanVotesOverrideAutomaticOnes) {
  EXPECT_EQ(auto_label(db(), set_), 4);
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kLabelled);
  EXPECT_EQ(*r.label, set_.scenarios[0].seed_label);
  EXPECT_TRUE(r.automatic);
  add(vote(1, "alice", 7));
  r = resolved(1);
  EXPECT_EQ(*r.label, 7);
  EXPECT_FALSE(r.automatic);
  EXPECT_EQ(r.voters, 1);
  add(vote(2, "alice", std::nullopt, kRejectUnrealistic));
  EXPECT_EQ(resolved(2).status, Resolution::kRejected);
  auto p = annotation_progress(resolve_annotations(db(), set_));
  EXPECT_EQ(p.scenarios, 4);
  EXPECT_EQ(p.labelled, 3);
  EXPECT_EQ(p.rejected, 1);
  EXPECT_EQ(p.automatic, 2);
  EXPECT_TRUE(p.complete());
}

TEST_F(Resolve, ProgressAndResolvedLabels) {
  add(vote(1, "alice", 3));
  add(vote(2, "alice", std::nullopt, kRejectAmbiguous));
  add(vote(3, "alice", 1));
  add(vote(3, "bob", 2));
  auto p = annotation_progress(resolve_annotations(db(), set_));
  EXPECT_EQ(p.labelled, 1);
  EXPECT_EQ(p.rejected, 1);
  EXPECT_EQ(p.ties, 1);
  EXPECT_EQ(p.unlabelled, 1);
  EXPECT_FALSE(p.complete());
  auto labels = resolved_labels(*ws_);
  ASSERT_EQ(labels.size(), 4u);
  EXPECT_EQ(labels[0].scenario_id, 1);
  EXPECT_EQ(*labels[0].label, 3);
  EXPECT_EQ(labels[1].status, Resolution::kRejected);
  json j = resolution_json(labels[0]);
  EXPECT_EQ(j["status"], "labelled");
  EXPECT_EQ(j["label"], 3);
  EXPECT_EQ(j["votes"][3], 1);
  EXPECT_FALSE(annotation_progress({}).complete());
}

TEST_F(Resolve, AutoLabelIsIdempotentAndChecksItsSource) {
  EXPECT_EQ(auto_label(db(), set_, "seed", "robot"), 4);
  EXPECT_EQ(auto_label(db(), set_, "source", "robot"), 0);
  auto history = list_annotations(db(), set_.run_id);
  ASSERT_EQ(history.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(history[i].automatic);
    EXPECT_EQ(history[i].annotator, "robot");
    EXPECT_EQ(*history[i].label, set_.scenarios[i].seed_label);
  }
  EXPECT_THROW(auto_label(db(), set_, "predicted"), ConfigError);
}

TEST_F(Resolve, NotABugIsARejectionWithItsOwnReason) {
  add(vote(1, "alice", std::nullopt, kRejectNotABug));
  add(vote(1, "bob", std::nullopt, kRejectNotABug));
  add(vote(1, "carol", std::nullopt, kRejectUnrealistic));
  auto r = resolved(1);
  EXPECT_EQ(r.status, Resolution::kRejected);
  EXPECT_EQ(r.reject_reason, kRejectNotABug);
  EXPECT_EQ(r.not_a_bug, 2);
  EXPECT_EQ(r.rejections(), 3);
  EXPECT_EQ(resolution_json(r)["not_a_bug"], 2);
  // Against a label, rejections of every reason pool.
  add(vote(2, "alice", 4));
  add(vote(2, "bob", std::nullopt, kRejectNotABug));
  add(vote(2, "carol", std::nullopt, kRejectAmbiguous));
  EXPECT_EQ(resolved(2).status, Resolution::kRejected);
  EXPECT_TRUE(test::contains(refusal(vote(3, "alice", std::nullopt, "boring")), "not-a-bug"));
}

TEST_F(Resolve, AutoJudgesLabelsGenuineScenariosAndRejectsLabelChanges) {
  // Scenario 1: the judges read its failures as its seed label (not the prediction); 2: as
  // the classifier's prediction; 3: they split; 4: not judged.
  ScenarioSet set = set_;
  auto& s = set.scenarios;
  s[0].validity.verdict = "genuine";
  s[0].validity.judges = 2;
  s[0].validity.judge_label = s[0].seed_label;
  s[0].validity.judge_agreement = 0.9;
  s[1].validity.verdict = "label-change";
  s[1].validity.judges = 2;
  s[1].validity.judge_label = s[1].predicted_label;
  s[1].validity.judge_agreement = 1.0;
  s[2].validity.verdict = "ambiguous";
  s[2].validity.judges = 2;
  s[2].validity.judge_label = (s[2].predicted_label + 1) % 10;
  s[2].validity.judge_agreement = 0.3;
  auto d = judges_decision(s[0], set.class_names);
  ASSERT_TRUE(d && d->label);
  EXPECT_EQ(*d->label, s[0].seed_label);
  d = judges_decision(s[1], set.class_names);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reject, kRejectNotABug);
  EXPECT_TRUE(test::contains(d->note, "not a bug")) << d->note;
  d = judges_decision(s[2], set.class_names);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->reject, kRejectAmbiguous);
  EXPECT_FALSE(judges_decision(s[3], set.class_names).has_value());
  // Every scenario must be judged for --auto judges.
  EXPECT_THROW(auto_label(db(), set, "judges"), StateError);
  s[3].validity = s[0].validity;
  s[3].validity.judge_label = s[3].seed_label;
  EXPECT_EQ(auto_label(db(), set, "judges"), 4);
  EXPECT_EQ(auto_label(db(), set, "judges"), 0) << "the same decisions again add nothing";
  auto r = resolve_annotations(db(), set);
  EXPECT_EQ(r[0].status, Resolution::kLabelled);
  EXPECT_EQ(r[1].reject_reason, kRejectNotABug);
  EXPECT_EQ(r[2].reject_reason, kRejectAmbiguous);
  EXPECT_TRUE(r[0].automatic);
}

TEST(AnnotationTables, AnOlderCatalogueIsUpgradedKeepingItsHistory) {
  test::TempDir tmp;
  ScenarioSet set = test::make_scenario_workspace(tmp.path() / "ws", {2, 1, 1});
  {
    // The annotations table as catalogues before the "not a bug" decision had it.
    Workspace ws(tmp.path() / "ws");
    ws.db().exec(R"sql(
      CREATE TABLE annotations (
        id INTEGER PRIMARY KEY, distill_run_id INTEGER NOT NULL, scenario_id INTEGER NOT NULL,
        annotator TEXT NOT NULL CHECK (length(annotator) > 0), label INTEGER,
        reject TEXT CHECK (reject IN ('unrealistic', 'ambiguous')), note TEXT NOT NULL DEFAULT '',
        automatic INTEGER NOT NULL DEFAULT 0 CHECK (automatic IN (0, 1)), created_at TEXT NOT NULL,
        CHECK ((label IS NULL) <> (reject IS NULL)),
        FOREIGN KEY (distill_run_id, scenario_id) REFERENCES scenarios (run_id, id) ON DELETE CASCADE);
      CREATE TABLE annotation_votes (
        distill_run_id INTEGER NOT NULL, scenario_id INTEGER NOT NULL, annotator TEXT NOT NULL,
        annotation_id INTEGER NOT NULL REFERENCES annotations (id) ON DELETE CASCADE, created_at TEXT NOT NULL,
        PRIMARY KEY (distill_run_id, scenario_id, annotator)) WITHOUT ROWID;
      CREATE TRIGGER annotations_keep_votes AFTER INSERT ON annotations
      BEGIN
        INSERT INTO annotation_votes (distill_run_id, scenario_id, annotator, annotation_id, created_at)
          VALUES (NEW.distill_run_id, NEW.scenario_id, NEW.annotator, NEW.id, NEW.created_at)
          ON CONFLICT (distill_run_id, scenario_id, annotator) DO UPDATE
            SET annotation_id = excluded.annotation_id, created_at = excluded.created_at;
      END;
    )sql");
    ws.db()
        .prepare(
            "INSERT INTO annotations (distill_run_id, scenario_id, annotator, label, created_at)"
            " VALUES (?, 1, 'alice', 3, '2026-01-01T00:00:00.000Z')")
        .bind(1, set.run_id)
        .run();
  }
  Workspace ws(tmp.path() / "ws");
  ensure_annotation_tables(ws.db());
  Annotation a;
  a.scenario_id = 2;
  a.annotator = "bob";
  a.reject = kRejectNotABug;
  add_annotation(ws.db(), set, a);
  auto history = list_annotations(ws.db(), set.run_id);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(*history[0].label, 3);
  auto r = resolve_annotations(ws.db(), set);
  EXPECT_EQ(*r[0].label, 3) << "the old vote still counts";
  // The vote-keeping trigger works on the new table.
  Statement votes = ws.db().prepare("SELECT COUNT(*) FROM annotation_votes");
  ASSERT_TRUE(votes.step());
  EXPECT_EQ(votes.column_int(0), 2);
  EXPECT_EQ(r[1].reject_reason, kRejectNotABug);
}

// ---- export and import ----

class ExportImport : public AnnotationStore {
 protected:
  void SetUp() override {
    AnnotationStore::SetUp();
    other_set_ = test::make_scenario_workspace(tmp_.path() / "other", {4, 2, 1});
    other_ = std::make_unique<Workspace>(tmp_.path() / "other");
    ensure_annotation_tables(other_->db());
    ASSERT_EQ(other_set_.run_id, set_.run_id);
  }
  void annotate_some() {
    add(vote(1, "alice", 3, "", "a note, with \"quotes\"\nand a second line; ünïcödé ✓"));
    add(vote(1, "bob", 3));
    add(vote(1, "alice", 4));
    add(vote(2, "alice", std::nullopt, kRejectAmbiguous, "  padded  "));
  }
  ImportResult import_into_other(const std::string& text, AnnotationFormat format, const std::string& annotator = "") {
    return import_annotations(other_->db(), other_set_, text, format, "file", annotator);
  }
  std::string import_error(const std::string& text, AnnotationFormat format) {
    std::string message = test::error_message<DataError>([&] { import_into_other(text, format); });
    EXPECT_EQ(count_rows(other_->db()), 0) << "a bad file must change nothing";
    return message;
  }
  static void expect_same_history(const std::vector<Annotation>& a, const std::vector<Annotation>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].scenario_id, b[i].scenario_id);
      EXPECT_EQ(a[i].annotator, b[i].annotator);
      EXPECT_EQ(a[i].label, b[i].label);
      EXPECT_EQ(a[i].reject, b[i].reject);
      EXPECT_EQ(a[i].note, b[i].note);
      EXPECT_EQ(a[i].automatic, b[i].automatic);
      EXPECT_EQ(a[i].created_at, b[i].created_at);
    }
  }

  ScenarioSet other_set_;
  std::unique_ptr<Workspace> other_;
};

TEST_F(ExportImport, JsonRoundTripsTheHistoryAndTheResolution) {
  annotate_some();
  auto_label(db(), set_);
  std::string text = export_annotations(db(), set_, AnnotationFormat::kJson);
  json doc = json::parse(text);
  EXPECT_EQ(doc["format"], "defuse-annotations");
  EXPECT_EQ(doc["distill_run_id"], set_.run_id);
  EXPECT_EQ(doc["class_names"].size(), 10u);
  EXPECT_EQ(doc["scenarios"].size(), 4u);
  EXPECT_EQ(doc["scenarios"][0]["resolution"]["status"], "tie");
  EXPECT_EQ(doc["annotations"].size(), 8u);
  EXPECT_EQ(doc["annotations"][0]["label_name"], "Dress");

  ImportResult r = import_into_other(text, AnnotationFormat::kJson);
  EXPECT_EQ(r.imported, 8);
  EXPECT_EQ(r.duplicates, 0);
  expect_same_history(list_annotations(db(), set_.run_id), list_annotations(other_->db(), other_set_.run_id));
  auto a = resolve_annotations(db(), set_), b = resolve_annotations(other_->db(), other_set_);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(resolution_json(a[i]), resolution_json(b[i]));
  // Importing the same file again adds nothing.
  r = import_into_other(text, AnnotationFormat::kJson);
  EXPECT_EQ(r.imported, 0);
  EXPECT_EQ(r.duplicates, 8);
  EXPECT_EQ(count_rows(other_->db()), 8);
}

TEST_F(ExportImport, CsvRoundTripsAndOffersBlankRowsForOpenScenarios) {
  annotate_some();
  std::string text = export_annotations(db(), set_, AnnotationFormat::kCsv);
  EXPECT_EQ(text.rfind("distill_run,scenario,annotator,label,label_name,reject,note,automatic,created_at\r\n", 0), 0u);
  EXPECT_TRUE(test::contains(text, "\r\n1,3,,,,,,,\r\n")) << text;  // scenario 3: open, to be filled in
  EXPECT_TRUE(test::contains(text, "\"a note, with \"\"quotes\"\"\nand a second line; ünïcödé ✓\"")) << text;
  ImportResult r = import_into_other(text, AnnotationFormat::kCsv);
  EXPECT_EQ(r.imported, 4);
  EXPECT_EQ(r.blank, 2);
  expect_same_history(list_annotations(db(), set_.run_id), list_annotations(other_->db(), other_set_.run_id));
  EXPECT_EQ(import_into_other(text, AnnotationFormat::kCsv).duplicates, 4);
}

TEST_F(ExportImport, CsvFilledInASpreadsheet) {
  // Labels by name or index, a BOM, LF line ends, columns in another order, an extra column,
  // and an annotator given on the command line for rows without one.
  std::string text =
      "\xEF\xBB\xBFscenario,label,annotator,comment\n"
      "1,Dress,,looks fine\n"
      "2,7,carol,\n"
      "3,,,\n"
      "\n";
  ImportResult r = import_into_other(text, AnnotationFormat::kCsv, "dave");
  EXPECT_EQ(r.imported, 2);
  EXPECT_EQ(r.blank, 1);
  auto history = list_annotations(other_->db(), other_set_.run_id);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].annotator, "dave");
  EXPECT_EQ(*history[0].label, 3);
  EXPECT_EQ(history[1].annotator, "carol");
  EXPECT_EQ(*history[1].label, 7);
  EXPECT_EQ(history[0].created_at, history[1].created_at);  // decided together: one time
  EXPECT_EQ(history[0].created_at.size(), 24u);
}

TEST_F(ExportImport, BadFilesAreRejectedWhole) {
  const auto csv = AnnotationFormat::kCsv;
  const auto js = AnnotationFormat::kJson;
  const std::string header = "scenario,annotator,label,reject,note\n";
  auto msg = import_error(header + "1,alice,3,,\n2,alice,99,,\n3,alice,1,,\n", csv);
  EXPECT_TRUE(test::contains(msg, "annotate: file: line 3: label 99 is not a class")) << msg;
  msg = import_error(header + "9,alice,3,,\n", csv);
  EXPECT_TRUE(test::contains(msg, "unknown scenario 9")) << msg;
  msg = import_error(header + "one,alice,3,,\n", csv);
  EXPECT_TRUE(test::contains(msg, "scenario 'one' is not a number")) << msg;
  msg = import_error(header + "1,alice,Jumper,,\n", csv);
  EXPECT_TRUE(test::contains(msg, "neither a class index nor a class name")) << msg;
  msg = import_error("scenario,annotator,label,label_name\n1,alice,3,Coat\n", csv);
  EXPECT_TRUE(test::contains(msg, "disagree")) << msg;
  msg = import_error(header + "1,alice,3,unrealistic,\n", csv);
  EXPECT_TRUE(test::contains(msg, "not both")) << msg;
  msg = import_error(header + "1,,3,,\n", csv);
  EXPECT_TRUE(test::contains(msg, "no annotator")) << msg;
  msg = import_error(header + "1,alice,3,,\"unterminated\n", csv);
  EXPECT_TRUE(test::contains(msg, "unterminated quote")) << msg;
  msg = import_error(header + "1,alice,3,,\"x\"y\n", csv);
  EXPECT_TRUE(test::contains(msg, "after a closing quote")) << msg;
  msg = import_error(header + "1,alice,3,,," + "\n", csv);
  EXPECT_TRUE(test::contains(msg, "6 fields but the header has 5")) << msg;
  msg = import_error("annotator,label\nalice,3\n", csv);
  EXPECT_TRUE(test::contains(msg, "no 'scenario' column")) << msg;
  msg = import_error("distill_run,scenario,annotator,label\n2,1,alice,3\n", csv);
  EXPECT_TRUE(test::contains(msg, "is for distill run 2")) << msg;
  msg = import_error("scenario,annotator,label,automatic\n1,alice,3,maybe\n", csv);
  EXPECT_TRUE(test::contains(msg, "automatic is 'maybe'")) << msg;
  msg = import_error("scenario,annotator,label,note\n1,alice,3," + std::string(1001, 'x') + "\n", csv);
  EXPECT_TRUE(test::contains(msg, "at most 1000")) << msg;
  msg = import_error("", csv);
  EXPECT_TRUE(test::contains(msg, "empty file")) << msg;

  msg = import_error("{not json", js);
  EXPECT_TRUE(test::contains(msg, "not valid JSON")) << msg;
  msg = import_error(
      R"({"annotations": [{"scenario": 1, "annotator": "a", "label": 3}, {"scenario": 1, "annotator": "a", "label": 3.5}]})",
      js);
  EXPECT_TRUE(test::contains(msg, "annotation 2: label is neither")) << msg;
  msg = import_error(R"({"distill_run_id": 5, "annotations": []})", js);
  EXPECT_TRUE(test::contains(msg, "distill run 5")) << msg;
  msg = import_error(R"({"class_names": ["a", "b"], "annotations": []})", js);
  EXPECT_TRUE(test::contains(msg, "class names differ")) << msg;
  msg = import_error(R"({"format": "something-else", "annotations": []})", js);
  EXPECT_TRUE(test::contains(msg, "format")) << msg;
  msg = import_error(R"({"version": 2, "annotations": []})", js);
  EXPECT_TRUE(test::contains(msg, "newer")) << msg;
  msg = import_error(R"({"annotations": {}})", js);
  EXPECT_TRUE(test::contains(msg, "no \"annotations\" array")) << msg;
  msg = import_error(R"([{"scenario": "1", "annotator": "a", "label": 3}])", js);
  EXPECT_TRUE(test::contains(msg, "scenario is not an integer")) << msg;
  msg = import_error(R"([{"scenario": 1, "annotator": "a", "label": 3, "created_at": "soon"}])", js);
  EXPECT_TRUE(test::contains(msg, "created_at 'soon'")) << msg;
  msg = import_error(R"([{"scenario": 1, "annotator": "a", "reject": "boring"}])", js);
  EXPECT_TRUE(test::contains(msg, "boring")) << msg;
  msg = import_error(R"([{"scenario": 1, "annotator": 7, "label": 3}])", js);
  EXPECT_TRUE(test::contains(msg, "annotator is not a string")) << msg;
  msg = import_error(R"([{"scenario": 1, "annotator": "a", "label": 3, "automatic": "yes"}])", js);
  EXPECT_TRUE(test::contains(msg, "automatic is not true or false")) << msg;

  // A bare array of well-formed annotations, with labels by name, is fine.
  auto r = import_into_other(R"([{"scenario": 1, "annotator": "a", "label": "Coat"},
                                 {"scenario": 2, "annotator": "a", "reject": "unrealistic", "note": "blurry"}])",
                             js);
  EXPECT_EQ(r.imported, 2);
}

TEST(AnnotationFormat, FollowsTheFileName) {
  EXPECT_EQ(annotation_format_for("a/b.json"), AnnotationFormat::kJson);
  EXPECT_EQ(annotation_format_for("b.CSV"), AnnotationFormat::kCsv);
  EXPECT_THROW(annotation_format_for("b.txt"), ConfigError);
  EXPECT_THROW(annotation_format_for("b"), ConfigError);
}

}  // namespace
}  // namespace defuse
