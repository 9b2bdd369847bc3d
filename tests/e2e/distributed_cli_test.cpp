// End-to-end: the pipeline on two ranks (DESIGN §6), with the real executable in child
// processes (`--nproc-per-node 2` starts the ranks over loopback, as torchrun would): the
// same failures and scenarios as one process, a killed rank stops the run with one line and
// leaves a resumable workspace, and mismatched ranks are refused. Every run is bounded by
// --dist-timeout.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "defuse/base/local_launch.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "support/test_support.h"

extern char** environ;

namespace defuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ExeResult {
  int code = -1;
  std::string out, err;
};

// Runs the real `defuse` with `arguments`, `extra_env` added to the environment.
ExeResult run_exe(const std::vector<std::string>& arguments, const fs::path& dir,
                  const std::vector<std::string>& extra_env = {}) {
  static int counter = 0;
  const fs::path out = dir / ("out-" + std::to_string(counter)), err = dir / ("err-" + std::to_string(counter));
  ++counter;
  std::vector<std::string> argv_s{DEFUSE_EXE};
  argv_s.insert(argv_s.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = extra_env;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (key == "RANK" || key == "WORLD_SIZE" || key.rfind("DEFUSE_TEST_", 0) == 0) continue;
    env_s.push_back(entry);
  }
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  ExeResult r;
  if (posix_spawn(&pid, DEFUSE_EXE, &actions, nullptr, argv.data(), envp.data()) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

class DistributedCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = new test::TempDir();
    test::write_tiny_run(base_->path());
  }
  static void TearDownTestSuite() { delete base_; }

  std::vector<std::string> run_args(const std::string& ws, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{"run",
                               "--workspace",
                               ws,
                               "--config",
                               config(),
                               "--threads",
                               "1",
                               "--json",
                               "--set",
                               "correct.lambda=0.1,1",
                               "--set",
                               "correct.baseline=none",
                               "--dist-timeout",
                               "60"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::string config() { return (base_->path() / "tiny.toml").string(); }
  static json metrics(const std::string& ws, const std::string& stage) {
    Workspace w(ws);
    auto r = w.latest(stage);
    return r ? r->metrics : json();
  }
  // The scenarios' statistics as distill stored them, in order.
  static std::vector<std::string> scenario_rows(const std::string& ws) {
    Database db(fs::path(ws) / "defuse.db");
    auto s = db.prepare(
        "SELECT weight, failure_rate, seed_label, predicted_label, members, hex(mean) FROM scenarios "
        "WHERE run_id = (SELECT MAX(run_id) FROM scenarios) ORDER BY id");
    std::vector<std::string> rows;
    while (s.step())
      rows.push_back(s.column_text(0) + "/" + s.column_text(1) + "/" + s.column_text(2) + "/" + s.column_text(3) + "/" +
                     s.column_text(4) + "/" + s.column_text(5));
    return rows;
  }

  static test::TempDir* base_;
  test::TempDir tmp_;
};
test::TempDir* DistributedCli::base_ = nullptr;

// With the models trained once, identify on two ranks keeps bit-identical failures, so the
// scenarios equal a one-process run's, and correct's models (one per rank) too.
TEST_F(DistributedCli, TwoRanksFindTheSameFailuresAndScenarios) {
  const fs::path models = tmp_.path() / "models";
  auto first = run_exe(run_args(models.string()), tmp_.path());  // one process trains the models
  ASSERT_EQ(first.code, 0) << first.err;
  const fs::path one = tmp_.path() / "one", two = tmp_.path() / "two";
  fs::copy(models, one, fs::copy_options::recursive);
  fs::copy(models, two, fs::copy_options::recursive);
  // A changed identify option reruns identify and everything after it, not the models.
  auto single = run_exe(run_args(one.string(), {"--set", "identify.samples=30"}), tmp_.path());
  ASSERT_EQ(single.code, 0) << single.err;
  auto pair = run_exe(run_args(two.string(), {"--set", "identify.samples=30", "--nproc-per-node", "2"}), tmp_.path());
  ASSERT_EQ(pair.code, 0) << pair.err;
  auto summary = json::parse(pair.out);
  EXPECT_EQ(summary["skipped"], json({"train-classifier", "train-judges", "train-vae"})) << pair.out;

  const json a = metrics(one.string(), "identify"), b = metrics(two.string(), "identify");
  ASSERT_TRUE(a.contains("failures"));
  EXPECT_GT(a["failures"].get<int64_t>(), 0);
  for (const char* key : {"seeds", "decodes", "failing_decodes", "failures", "seeds_with_failures", "pairs"})
    EXPECT_EQ(a[key], b[key]) << key;
  EXPECT_EQ(fs::file_size(one / "identify/failures.pt"), fs::file_size(two / "identify/failures.pt"));
  EXPECT_EQ(Workspace(one.string()).latest("identify")->artifacts.front().hash,
            Workspace(two.string()).latest("identify")->artifacts.front().hash);
  EXPECT_EQ(scenario_rows(one.string()), scenario_rows(two.string()));
  EXPECT_FALSE(scenario_rows(one.string()).empty());
  // correct trains its two models one per rank, and each is the model one process trains.
  const json ea = metrics(one.string(), "evaluate"), eb = metrics(two.string(), "evaluate");
  ASSERT_EQ(ea["models"].size(), 3u);  // the original and two λ models
  for (size_t i = 0; i < ea["models"].size(); ++i) {
    EXPECT_EQ(ea["models"][i]["name"], eb["models"][i]["name"]);
    EXPECT_EQ(ea["models"][i]["test_accuracy"], eb["models"][i]["test_accuracy"]) << i;
    EXPECT_EQ(ea["models"][i]["scenario_accuracy"], eb["models"][i]["scenario_accuracy"]) << i;
  }
  EXPECT_EQ(ea["chosen"], eb["chosen"]);
  EXPECT_EQ(metrics(one.string(), "correct")["models"][1]["train_loss"],
            metrics(two.string(), "correct")["models"][1]["train_loss"]);
}

// The training stages on two ranks: the same number of steps over the same global batches,
// to a model that scores like the one-process one (within a loose tolerance: each rank's
// batch norm sees its half of a batch).
TEST_F(DistributedCli, TwoRanksTrainTheModels) {
  const std::string ws = (tmp_.path() / "ws").string();
  auto r = run_exe({"train-classifier", "--workspace", ws, "--data", "mnist:" + (base_->path() / "data").string(),
                    "--epochs", "2", "--batch-size", "32", "--threads", "1", "--json", "--nproc-per-node", "2"},
                   tmp_.path());
  ASSERT_EQ(r.code, 0) << r.err;
  auto one = run_exe(
      {"train-classifier", "--workspace", (tmp_.path() / "ws1").string(), "--data",
       "mnist:" + (base_->path() / "data").string(), "--epochs", "2", "--batch-size", "32", "--threads", "1", "--json"},
      tmp_.path());
  ASSERT_EQ(one.code, 0) << one.err;
  const double two_ranks = json::parse(r.out)["test_accuracy"].get<double>();
  const double one_process = json::parse(one.out)["test_accuracy"].get<double>();
  EXPECT_NEAR(two_ranks, one_process, 0.15);
  EXPECT_GT(two_ranks, 0.5);  // 4 learnable classes
  const json m = metrics(ws, "train-classifier");
  EXPECT_EQ(m["history"].size(), 2u);
}

// A rank that dies mid-stage: rank 0 stops with one line naming its rank and the stage, the
// stage is not recorded complete, and the next run resumes.
TEST_F(DistributedCli, AKilledRankStopsTheRunCleanlyAndItResumes) {
  const std::string ws = (tmp_.path() / "ws").string();
  auto killed = run_exe(run_args(ws, {"--nproc-per-node", "2"}), tmp_.path(), {"DEFUSE_TEST_KILL_RANK=1"});
  EXPECT_NE(killed.code, 0);
  EXPECT_TRUE(test::contains(killed.err, "train-classifier")) << killed.err;
  EXPECT_TRUE(test::contains(killed.err, "rank 0 of 2")) << killed.err;
  EXPECT_TRUE(test::contains(killed.err, "rank 1 was killed by signal 9")) << killed.err;
  EXPECT_FALSE(Workspace(ws).latest("train-classifier").has_value());
  auto resumed = run_exe(run_args(ws, {"--nproc-per-node", "2"}), tmp_.path());
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_TRUE(Workspace(ws).latest("report").has_value());
}

// Elastic recovery: under torchrun with --max_restarts, a rank killed once makes torchrun
// restart every rank (a new attempt, so new keys under the agent store's prefix), and the
// run resumes from the workspace to the end.
TEST_F(DistributedCli, TorchrunRestartsAKilledRankAndTheRunResumes) {
  if (std::system("command -v torchrun > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "torchrun (python3-torch) is not installed: elastic recovery is not tested";
  const std::string ws = (tmp_.path() / "ws").string();
  const fs::path marker = tmp_.path() / "killed-once";
  std::vector<std::string> args{"--nnodes",
                                "1",
                                "--nproc_per_node",
                                "2",
                                "--max_restarts",
                                "1",
                                "--rdzv_backend",
                                "c10d",
                                "--rdzv_endpoint",
                                "127.0.0.1:" + std::to_string(free_local_port()),
                                "--redirects",
                                "0:1,1:1",
                                "--tee",
                                "0:1,1:1",
                                "--no_python",
                                DEFUSE_EXE};
  for (const auto& a : run_args(ws)) args.push_back(a);
  std::string command =
      "DEFUSE_TEST_KILL_RANK_ONCE=1:" + marker.string() + " GLOO_SOCKET_IFNAME=lo timeout 300 torchrun";
  for (const auto& a : args) command += " '" + a + "'";
  command += " > " + (tmp_.path() / "torchrun.out").string() + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream log(tmp_.path() / "torchrun.out");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_TRUE(fs::exists(marker)) << "rank 1 was never killed: " << text.str();
  ASSERT_EQ(status, 0) << text.str();
  EXPECT_TRUE(Workspace(ws).latest("report").has_value()) << text.str();
}

// A rank that hangs (stopped with SIGSTOP as it starts computing): rank 0 stops within the
// collective timeout with one line naming itself and the stage, and records no stage.
TEST_F(DistributedCli, AHungRankStopsRankZeroWithinTheTimeout) {
  const std::string ws = (tmp_.path() / "ws").string();
  const std::string data = "mnist:" + (base_->path() / "data").string();
  const std::string port = std::to_string(free_local_port());
  auto start = [&](int rank, const fs::path& out, const std::string& extra) {
    std::string command = extra + " RANK=" + std::to_string(rank) +
                          " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " GLOO_SOCKET_IFNAME=lo " +
                          DEFUSE_EXE + " train-vae --workspace " + ws + " --data " + data +
                          " --epochs 1 --filters 8 --latent 4 --threads 1 --dist-timeout 5 > " + out.string() +
                          " 2>&1; echo $? > " + out.string() + ".rc";
    return command;
  };
  const auto r0 = tmp_.path() / "r0", r1 = tmp_.path() / "r1";
  const std::string both = "(" + start(0, r0, "") + ") & (" + start(1, r1, "DEFUSE_TEST_HANG_RANK=1") + ") &";
  const auto begin = std::chrono::steady_clock::now();
  ASSERT_EQ(std::system(both.c_str()), 0);
  std::string rc0;
  while (rc0.empty() && std::chrono::steady_clock::now() - begin < std::chrono::seconds(120)) {
    std::ifstream in(r0.string() + ".rc");
    std::getline(in, rc0);
    if (rc0.empty()) usleep(100000);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  std::system(("pkill -KILL -f 'dist-timeout 5' > /dev/null 2>&1; true"));  // the stopped rank
  std::ifstream log(r0);
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_EQ(rc0, "10") << text.str();
  EXPECT_LT(seconds, 60.0);
  EXPECT_TRUE(test::contains(text.str(), "train-vae: rank 0 of 2 lost the group")) << text.str();
  EXPECT_TRUE(test::contains(text.str(), "5 s timeout")) << text.str();
  EXPECT_FALSE(Workspace(ws).latest("train-vae").has_value());
}

// Ranks started with different options are refused before the stage computes.
TEST_F(DistributedCli, MismatchedRanksAreRefused) {
  const std::string ws = (tmp_.path() / "ws").string();
  const std::string data = "mnist:" + (base_->path() / "data").string();
  // Two ranks by hand (as a scheduler would start them), one with other epochs.
  const std::string port = std::to_string(free_local_port());
  std::vector<std::string> env{"WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port, "GLOO_SOCKET_IFNAME=lo"};
  auto start = [&](int rank, const std::string& epochs, const fs::path& out) {
    std::vector<std::string> e = env;
    e.push_back("RANK=" + std::to_string(rank));
    std::string command = "env";
    for (auto& v : e) command += " " + v;
    command += std::string(" ") + DEFUSE_EXE + " train-classifier --workspace " + ws + " --data " + data +
               " --epochs " + epochs + " --threads 1 --dist-timeout 30 > " + out.string() + " 2>&1 &";
    return std::system(command.c_str());
  };
  ASSERT_EQ(start(0, "1", tmp_.path() / "r0"), 0);
  ASSERT_EQ(start(1, "2", tmp_.path() / "r1"), 0);
  // Both end within the timeout; wait for their logs to say so.
  std::string r0, r1;
  for (int i = 0; i < 600; ++i) {
    std::ifstream a(tmp_.path() / "r0"), b(tmp_.path() / "r1");
    std::stringstream sa, sb;
    sa << a.rdbuf();
    sb << b.rdbuf();
    r0 = sa.str(), r1 = sb.str();
    if (test::contains(r1, "defuse:") && test::contains(r0, "defuse:")) break;
    usleep(100000);
  }
  EXPECT_TRUE(test::contains(r1, "differ from rank 0's at 'epochs'")) << r1;
  // Rank 0 loses its peer before its first step and records nothing.
  EXPECT_TRUE(test::contains(r0, "defuse: [rank 0] train-classifier: rank 0 of 2 lost the group")) << r0;
  EXPECT_FALSE(Workspace(ws).latest("train-classifier").has_value());
}

}  // namespace
}  // namespace defuse
