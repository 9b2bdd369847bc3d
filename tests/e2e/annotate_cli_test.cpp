// End-to-end tests of `defuse annotate` run in-process: the export, import and auto modes
// with --json, and their errors. (The serving mode is tested over HTTP in
// tests/annotate/server_test.cpp and in a real browser by scripts/browser_test.sh.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "defuse/annotate/annotation_store.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "support/scenario_support.h"
#include "support/cli_support.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

using test::CliResult;
CliResult run(std::vector<std::string> args) { return test::run_defuse(std::move(args)); }

class AnnotateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ws_ = (tmp_.path() / "ws").string();
    other_ = (tmp_.path() / "other").string();
    test::make_scenario_workspace(ws_, {4, 2, 1});
    test::make_scenario_workspace(other_, {4, 2, 1});
  }
  test::TempDir tmp_;
  std::string ws_, other_;
};

TEST_F(AnnotateCli, AutoLabelsEveryScenarioAndPrintsTheCounts) {
  auto r = run({"annotate", "--workspace", ws_, "--auto", "seed", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json s = json::parse(r.out);  // exactly one JSON object
  EXPECT_EQ(s["scenarios"], 4);
  EXPECT_EQ(s["labelled"], 4);
  EXPECT_EQ(s["rejected"], 0);
  EXPECT_EQ(s["automatic"], 4);
  EXPECT_EQ(s["added"], 4);
  EXPECT_EQ(s["complete"], true);
  EXPECT_EQ(s["annotator"], "auto");
  auto again = run({"annotate", "--workspace", ws_, "--auto", "seed", "--json"});
  EXPECT_EQ(json::parse(again.out)["added"], 0);
  auto text = run({"annotate", "--workspace", ws_, "--auto", "seed"});
  EXPECT_TRUE(test::contains(text.out, "annotate: decided 0 scenarios with their seed label (unchecked)")) << text.out;
  EXPECT_TRUE(test::contains(text.out, "4 scenarios: 4 labelled, 0 rejected")) << text.out;
  // Each run is recorded as an "annotate" stage, for `defuse status`.
  auto status = run({"status", "--workspace", ws_, "--json"});
  ASSERT_EQ(status.code, 0) << status.err;
  json last = json::parse(status.out)["runs"].back();
  EXPECT_EQ(last["stage"], "annotate");
  EXPECT_EQ(last["status"], "complete");
  EXPECT_EQ(last["metrics"]["labelled"], 4);
  // Once complete, --until-complete returns at once instead of serving.
  auto serve = run({"annotate", "--workspace", ws_, "--until-complete", "--port", "0", "--json"});
  ASSERT_EQ(serve.code, 0) << serve.err;
  EXPECT_EQ(json::parse(serve.out)["complete"], true);
}

TEST_F(AnnotateCli, ExportsAndImportsJsonAndCsv) {
  {
    Workspace ws(ws_);
    ScenarioSet set = load_scenarios(ws);
    Annotation a;
    a.scenario_id = 1;
    a.annotator = "alice";
    a.label = 2;
    add_annotation(ws.db(), set, a);
    a.scenario_id = 2;
    a.label.reset();
    a.reject = kRejectUnrealistic;
    a.note = "smudge, not a garment";
    add_annotation(ws.db(), set, a);
  }
  for (const char* ext : {".json", ".csv"}) {
    const std::string file = (tmp_.path() / (std::string("annotations") + ext)).string();
    auto exported = run({"annotate", "--workspace", ws_, "--export", file, "--json"});
    ASSERT_EQ(exported.code, 0) << exported.err;
    json e = json::parse(exported.out);
    EXPECT_EQ(e["scenarios"], 4);
    EXPECT_EQ(e["labelled"], 1);
    EXPECT_EQ(e["rejected"], 1);
    EXPECT_EQ(e["exported"], 2);
    EXPECT_EQ(e["file"], file);
    EXPECT_TRUE(std::filesystem::exists(file));

    auto imported = run({"annotate", "--workspace", other_, "--import", file, "--json"});
    ASSERT_EQ(imported.code, 0) << imported.err;
    json i = json::parse(imported.out);
    EXPECT_EQ(i["labelled"], 1);
    EXPECT_EQ(i["rejected"], 1);
    EXPECT_EQ(i["scenarios"], 4);
    // JSON first (2 new), then the same annotations as CSV (already stored).
    EXPECT_EQ(i["imported"], std::string(ext) == ".json" ? 2 : 0) << ext;
    EXPECT_EQ(i["duplicates"], std::string(ext) == ".json" ? 0 : 2) << ext;
    EXPECT_EQ(i["blank"], std::string(ext) == ".json" ? 0 : 2) << ext;
  }
  Workspace other(other_);
  auto history = list_annotations(other.db(), load_scenarios(other).run_id);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].note, "smudge, not a garment");
}

TEST_F(AnnotateCli, ABadImportIsADataErrorAndChangesNothing) {
  const auto file = tmp_.path() / "bad.csv";
  write_file_atomic(file, "scenario,annotator,label\n1,alice,3\n2,alice,42\n");
  auto r = run({"annotate", "--workspace", ws_, "--import", file.string(), "--json"});
  EXPECT_EQ(r.code, kExitData);
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(r.err, "defuse: annotate: " + file.string() + ": line 3: label 42 is not a class (0..9)\n");
  auto e = run({"annotate", "--workspace", ws_, "--export", (tmp_.path() / "x.json").string(), "--json"});
  EXPECT_EQ(json::parse(e.out)["exported"], 0);

  auto missing = run({"annotate", "--workspace", ws_, "--import", (tmp_.path() / "none.csv").string()});
  EXPECT_EQ(missing.code, kExitIo) << missing.err;
  auto format = run({"annotate", "--workspace", ws_, "--export", (tmp_.path() / "x.txt").string()});
  EXPECT_EQ(format.code, kExitConfig) << format.err;
  EXPECT_TRUE(test::contains(format.err, "name it .json or .csv"));
}

TEST_F(AnnotateCli, UsageAndStateErrors) {
  EXPECT_EQ(run({"annotate", "--workspace", ws_, "--export", "a.json", "--import", "b.json"}).code, kExitUsage);
  EXPECT_EQ(run({"annotate", "--workspace", ws_, "--auto", "predicted"}).code, kExitUsage);
  EXPECT_EQ(run({"annotate", "--workspace", ws_, "--port", "70000"}).code, kExitUsage);
  auto none = run({"annotate", "--workspace", (tmp_.path() / "nothing").string(), "--auto", "seed"});
  EXPECT_EQ(none.code, kExitState);
  EXPECT_TRUE(test::contains(none.err, "not a workspace")) << none.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_.path() / "nothing"));  // not created by the attempt
  const std::string bare = (tmp_.path() / "bare").string();
  { Workspace ws(bare); }
  auto no_distill = run({"annotate", "--workspace", bare, "--auto", "seed"});
  EXPECT_EQ(no_distill.code, kExitState);
  EXPECT_TRUE(test::contains(no_distill.err, "run `defuse distill` first")) << no_distill.err;
  auto bad_token = run({"annotate", "--workspace", ws_, "--port", "0", "--token", "short"});
  EXPECT_EQ(bad_token.code, kExitConfig);
  auto bad_host = run({"annotate", "--workspace", ws_, "--port", "0", "--host", "256.1.1.1"});
  EXPECT_EQ(bad_host.code, kExitIo) << bad_host.err;
}

}  // namespace
}  // namespace defuse
