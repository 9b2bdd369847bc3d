// A real second process holding a workspace's writer lock, for the tests of the lock and of
// the commands that must respect it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "defuse/base/workspace_lock.h"

namespace defuse::test {

// A child process that takes the lock of `dir` for `command`, says so on a pipe, then holds
// it until the test writes a byte to it (or kills it).
struct LockHolderProcess {
  pid_t pid = -1;
  int release_fd = -1;

  LockHolderProcess(const std::filesystem::path& dir, const std::string& command) {
    int ready[2], release[2];
    if (pipe(ready) != 0 || pipe(release) != 0) throw std::runtime_error("pipe");
    pid = fork();
    if (pid == 0) {
      close(ready[0]);
      close(release[1]);
      char ok = 'n';
      try {
        WorkspaceLock lock(dir, command);
        ok = 'y';
        if (write(ready[1], &ok, 1) != 1) _exit(3);
        char c;
        if (read(release[0], &c, 1) < 0) _exit(4);
      } catch (...) {
        if (write(ready[1], &ok, 1) != 1) _exit(3);
        _exit(2);
      }
      _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    release_fd = release[1];
    char c = 0;
    if (read(ready[0], &c, 1) != 1 || c != 'y') throw std::runtime_error("the child could not take the lock");
    close(ready[0]);
  }
  void release() {
    char c = 'x';
    if (release_fd >= 0 && write(release_fd, &c, 1) == 1) {
    }
  }
  int wait() {
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
  ~LockHolderProcess() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (release_fd >= 0) close(release_fd);
  }
};

}  // namespace defuse::test
