// The workspace's writer lock with real processes: a child process holds it, the test
// process is refused (naming the child), waits for it with `wait`, and takes it at once when
// the holder is killed.
#include "defuse/base/workspace_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "defuse/base/error.h"
#include "support/lock_holder.h"
#include "support/test_support.h"

namespace defuse {
namespace {

TEST(WorkspaceLock, ASecondWriterIsRefusedWithTheHoldersPidAndCommand) {
  test::TempDir tmp;
  test::LockHolderProcess child(tmp.path(), "identify");
  try {
    WorkspaceLock lock(tmp.path(), "distill");
    FAIL() << "a second writer got the lock";
  } catch (const BusyError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind("distill: the workspace ", 0), 0u) << what;
    EXPECT_NE(what.find("pid " + std::to_string(child.pid)), std::string::npos) << what;
    EXPECT_NE(what.find("identify, since 20"), std::string::npos) << what;
    EXPECT_NE(what.find("--wait"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
    EXPECT_EQ(e.exit_code(), kExitBusy);
  }
  auto holder = WorkspaceLock::holder(tmp.path());
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, child.pid);
  EXPECT_EQ(holder->command, "identify");
  child.release();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_FALSE(WorkspaceLock::holder(tmp.path()).has_value());
  WorkspaceLock lock(tmp.path(), "distill");  // free again
}

TEST(WorkspaceLock, WaitBlocksUntilTheHolderFinishes) {
  test::TempDir tmp;
  test::LockHolderProcess child(tmp.path(), "train-vae");
  int64_t waited_for = 0;
  std::thread releaser;
  WorkspaceLock lock(tmp.path(), "identify", /*wait=*/true, [&](const LockHolder& h) {
    waited_for = h.pid;
    releaser = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      child.release();
    });
  });
  releaser.join();
  EXPECT_EQ(waited_for, child.pid);
  EXPECT_EQ(child.wait(), 0);
  auto holder = WorkspaceLock::holder(tmp.path());
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, ::getpid());
  EXPECT_EQ(holder->command, "identify");
}

TEST(WorkspaceLock, AKilledHolderLeavesTheWorkspaceFree) {
  test::TempDir tmp;
  test::LockHolderProcess child(tmp.path(), "correct");
  kill(child.pid, SIGKILL);
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(WorkspaceLock::holder(tmp.path()).has_value());
  EXPECT_NO_THROW(WorkspaceLock(tmp.path(), "correct"));
}

TEST(WorkspaceLock, IsReentrantWithinOneProcess) {
  // `defuse run` holds the workspace while each stage it runs takes it again.
  test::TempDir tmp;
  {
    WorkspaceLock outer(tmp.path(), "run");
    {
      WorkspaceLock inner(tmp.path(), "identify");
      EXPECT_EQ(WorkspaceLock::holder(tmp.path())->command, "run");
      // The same workspace by another spelling (a symlink, a relative path) is the same lock.
      const auto link = tmp.path().parent_path() / (tmp.path().filename().string() + "-link");
      std::filesystem::create_directory_symlink(tmp.path(), link);
      EXPECT_NO_THROW(WorkspaceLock(link, "distill"));
      std::filesystem::remove(link);
    }
    // Still held after the inner one ends: another process is refused.
    pid_t pid = fork();
    if (pid == 0) {
      try {
        WorkspaceLock other(tmp.path(), "distill");
        _exit(1);
      } catch (const BusyError&) {
        _exit(0);
      } catch (...) {
        _exit(2);
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "another process got the lock";
  }
  EXPECT_FALSE(WorkspaceLock::holder(tmp.path()).has_value());
}

}  // namespace
}  // namespace defuse
