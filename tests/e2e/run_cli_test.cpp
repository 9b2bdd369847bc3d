// End-to-end: `defuse run` on tiny generated data: the whole loop, its configuration
// (TOML file, --set, errors), incremental reruns, and resuming after SIGKILL in every stage
// with the same result and an intact catalogue (the real executable, in a child process).
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "support/cli_support.h"
#include "support/test_support.h"

extern char** environ;

namespace defuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::CliResult;

const std::vector<std::string> kStages{"train-classifier", "train-judges", "train-vae", "identify", "distill",
                                       "annotate",         "correct",      "evaluate",  "report"};

class RunCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = new test::TempDir();
    test::write_tiny_run(base_->path());
  }
  static void TearDownTestSuite() { delete base_; }

  std::vector<std::string> args(const std::string& ws, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{"run",       "--workspace", ws,       "--config", (base_->path() / "tiny.toml").string(),
                               "--threads", "1",           "--json", "--quiet"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static json last_metrics(const std::string& ws, const std::string& stage) {
    Workspace w(ws);
    auto r = w.latest(stage);
    return r ? r->metrics : json();
  }

  static test::TempDir* base_;
  test::TempDir tmp_;
};
test::TempDir* RunCli::base_ = nullptr;

TEST_F(RunCli, WholeLoopThenIncrementalReruns) {
  const std::string ws = (tmp_.path() / "ws").string();
  auto first = test::run_defuse(args(ws));
  ASSERT_EQ(first.code, 0) << first.err;
  json s = json::parse(first.out);
  for (const char* key : {"scenarios", "original", "chosen", "lambda", "seconds", "stage_seconds", "report"})
    EXPECT_TRUE(s.contains(key)) << key;
  EXPECT_TRUE(s["original"].contains("test_accuracy"));
  EXPECT_TRUE(s["chosen"].contains("scenario_accuracy"));
  EXPECT_TRUE(s["skipped"].empty());
  EXPECT_TRUE(fs::exists(fs::path(ws) / "report" / "index.html"));
  EXPECT_TRUE(fs::exists(fs::path(ws) / "run" / "config.toml"));
  EXPECT_TRUE(fs::exists(fs::path(ws) / "run" / "summary.json"));
  // The warning that seed labels are unchecked, even with --json.
  EXPECT_TRUE(test::contains(first.err, "--auto seed labels every scenario with its seed's label without checking"));

  // Nothing changed: every stage is skipped.
  auto again = test::run_defuse(args(ws));
  ASSERT_EQ(again.code, 0) << again.err;
  json a = json::parse(again.out);
  EXPECT_EQ(a["skipped"], json({"train-classifier", "train-judges", "train-vae", "identify", "distill", "correct",
                                "evaluate", "report"}));
  EXPECT_EQ(a["chosen"], s["chosen"]);
  // Without --quiet, each stage says what it produced (here: that it was up to date).
  std::vector<std::string> loud = args(ws);
  loud.erase(std::find(loud.begin(), loud.end(), "--quiet"));
  auto verbose = test::run_defuse(loud);
  ASSERT_EQ(verbose.code, 0) << verbose.err;
  EXPECT_TRUE(test::contains(verbose.err, "== [4/9] identify")) << verbose.err;
  EXPECT_TRUE(test::contains(verbose.err, "up to date: test accuracy")) << verbose.err;
  EXPECT_TRUE(test::contains(verbose.err, "up to date: chose lambda=")) << verbose.err;

  // One identify option changed: identify and everything after it run again, not before.
  auto changed = test::run_defuse(args(ws, {"--set", "identify.samples=20"}));
  ASSERT_EQ(changed.code, 0) << changed.err;
  json c = json::parse(changed.out);
  EXPECT_EQ(c["skipped"], json({"train-classifier", "train-judges", "train-vae"}));
  // The effective configuration is stored and can be read back.
  std::ifstream stored(fs::path(ws) / "run" / "config.toml");
  std::string text((std::istreambuf_iterator<char>(stored)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(test::contains(text, "samples = 20")) << text;
  EXPECT_TRUE(test::contains(text, "[identify]"));
}

TEST_F(RunCli, ConfigurationErrorsNameTheProblem) {
  const std::string ws = (tmp_.path() / "ws").string();
  auto unknown_stage = test::run_defuse(args(ws, {"--set", "identfy.samples=3"}));
  EXPECT_EQ(unknown_stage.code, 3);
  EXPECT_TRUE(test::contains(unknown_stage.err, "unknown stage 'identfy'")) << unknown_stage.err;
  auto unknown_option = test::run_defuse(args(ws, {"--set", "identify.samplez=3"}));
  EXPECT_EQ(unknown_option.code, 3);
  EXPECT_TRUE(test::contains(unknown_option.err, "stage identify has no option 'samplez'")) << unknown_option.err;
  auto reserved = test::run_defuse(args(ws, {"--set", "identify.workspace=/tmp"}));
  EXPECT_EQ(reserved.code, 3);
  auto bad_annotate = test::run_defuse(args(ws, {"--annotate", "maybe"}));
  EXPECT_EQ(bad_annotate.code, 3);
  std::ofstream(tmp_.path() / "bad.toml") << "[identify]\nsamplez = 3\n";
  auto file = test::run_defuse({"run", "--workspace", ws, "--config", (tmp_.path() / "bad.toml").string()});
  EXPECT_EQ(file.code, 3);
  EXPECT_TRUE(test::contains(file.err, "bad.toml")) << file.err;
  auto missing = test::run_defuse({"run", "--workspace", ws, "--config", (tmp_.path() / "none.toml").string()});
  EXPECT_NE(missing.code, 0);
  // A failing stage stops the run with its exit code and says where.
  auto bad_value = test::run_defuse(args(ws, {"--set", "identify.samples=0"}));
  EXPECT_EQ(bad_value.code, 3);
  EXPECT_TRUE(test::contains(bad_value.err, "stopped at stage identify")) << bad_value.err;
}

// The real executable in a child process with DEFUSE_TEST_KILL_STAGE=<stage> in its
// environment: Workspace::run_stage then SIGKILLs it once that stage has written all its
// files and before it is recorded complete. Returns the wait status.
int run_killed_in(const std::string& stage, const std::vector<std::string>& arguments, const fs::path& log) {
  std::vector<std::string> argv_s{DEFUSE_EXE};
  argv_s.insert(argv_s.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s{"DEFUSE_TEST_KILL_STAGE=" + stage};
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("DEFUSE_TEST_KILL_STAGE=", 0) != 0) env_s.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (log.string() + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, DEFUSE_EXE, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST_F(RunCli, KilledInEveryStageResumesToTheSameResult) {
  // The uninterrupted reference.
  const std::string reference = (tmp_.path() / "reference").string();
  auto full = test::run_defuse(args(reference));
  ASSERT_EQ(full.code, 0) << full.err;
  const json expected = last_metrics(reference, "evaluate");

  for (const auto& stage : kStages) {
    SCOPED_TRACE(stage);
    const std::string ws = (tmp_.path() / ("killed-" + stage)).string();
    const int status = run_killed_in(stage, args(ws), tmp_.path() / ("log-" + stage));
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run was not killed in " << stage;
    {
      // The catalogue shows the stage interrupted, and nothing trusts its files.
      Workspace w(ws);
      bool interrupted = false;
      std::string seen;
      for (const auto& r : w.history()) {
        interrupted |= r.stage == stage && r.status == "interrupted";
        seen += r.stage + ":" + r.status + " ";
      }
      EXPECT_TRUE(interrupted) << seen;
      EXPECT_FALSE(w.latest(stage).has_value()) << seen;
    }
    auto resumed = test::run_defuse(args(ws));
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    json got = last_metrics(ws, "evaluate");
    ASSERT_EQ(got["models"].size(), expected["models"].size());
    for (size_t i = 0; i < got["models"].size(); ++i) {
      EXPECT_EQ(got["models"][i]["name"], expected["models"][i]["name"]);
      EXPECT_DOUBLE_EQ(got["models"][i]["test_accuracy"].get<double>(),
                       expected["models"][i]["test_accuracy"].get<double>());
      EXPECT_DOUBLE_EQ(got["models"][i]["scenario_accuracy"].get<double>(),
                       expected["models"][i]["scenario_accuracy"].get<double>());
    }
    EXPECT_EQ(got["chosen"], expected["chosen"]);
    Database db(fs::path(ws) / "defuse.db");
    auto check = db.prepare("PRAGMA integrity_check");
    ASSERT_TRUE(check.step());
    EXPECT_EQ(check.column_text(0), "ok");
  }
}

}  // namespace
}  // namespace defuse
