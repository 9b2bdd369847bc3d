// One writer per workspace, at the command line: while another process writes to a workspace,
// a second writing command stops at once with exit code 8 and one line naming the holder, or
// waits for it with --wait; readers (status) keep working and say who holds it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "support/cli_support.h"
#include "support/lock_holder.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

TEST(WorkspaceLockCli, ASecondWriterStopsAtOnceOrWaitsAndReadersKeepWorking) {
  test::TempDir tmp;
  const std::string ws = (tmp.path() / "ws").string();
  { Workspace create(ws); }
  test::LockHolderProcess other(ws, "identify");
  const std::string pid = "pid " + std::to_string(other.pid);

  for (const char* stage : {"identify", "distill", "train-vae", "correct", "run"}) {
    SCOPED_TRACE(stage);
    auto refused = test::run_defuse({stage, "--workspace", ws});
    EXPECT_EQ(refused.code, kExitBusy) << refused.err;
    EXPECT_TRUE(test::contains(refused.err, pid)) << refused.err;
    EXPECT_TRUE(test::contains(refused.err, "(identify, since ")) << refused.err;
    EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  }

  auto status = test::run_defuse({"status", "--workspace", ws, "--json"});
  ASSERT_EQ(status.code, 0) << status.err;
  json s = json::parse(status.out);
  EXPECT_EQ(s["writer"]["pid"], other.pid);
  EXPECT_EQ(s["writer"]["command"], "identify");

  // --wait: says whom it waits for, then runs once the holder is done (and then stops for
  // the usual reason here: nothing upstream has run).
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    other.release();
  });
  auto waited = test::run_defuse({"identify", "--workspace", ws, "--wait"});
  release.join();
  EXPECT_EQ(waited.code, kExitState) << waited.err;
  EXPECT_TRUE(test::contains(waited.err, "waiting for the workspace")) << waited.err;
  EXPECT_TRUE(test::contains(waited.err, pid)) << waited.err;
  EXPECT_EQ(other.wait(), 0);

  auto after = test::run_defuse({"status", "--workspace", ws, "--json"});
  EXPECT_TRUE(json::parse(after.out)["writer"].is_null()) << after.out;
}

}  // namespace
}  // namespace defuse
