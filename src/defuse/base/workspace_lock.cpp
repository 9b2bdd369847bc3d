#include "defuse/base/workspace_lock.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "defuse/base/error.h"
#include "defuse/base/process.h"

namespace defuse {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLockFile = "defuse.lock";

// This process's locks: an OFD lock belongs to an open file description, so a second open() in
// the same process would conflict with the first. Each workspace's lock is opened once and
// counted.
struct Held {
  int fd = -1;
  int count = 0;
};
std::mutex registry_mutex;
std::map<std::string, Held>& registry() {
  static std::map<std::string, Held> held;
  return held;
}

// A child forked from a holder (tests, a launcher) is another process: it does not hold the
// parent's workspaces, and taking one again must really lock (and be refused).
void forget_in_child() {
  for (auto& [key, held] : registry()) ::close(held.fd);  // a duplicate: the parent keeps its lock
  registry().clear();
  registry_mutex.unlock();
}
[[maybe_unused]] const int fork_handlers_installed =
    ::pthread_atfork([] { registry_mutex.lock(); }, [] { registry_mutex.unlock(); }, forget_in_child);

std::optional<LockHolder> parse_holder(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  LockHolder h;
  h.pid = j.value("pid", int64_t{0});
  h.host = j.value("host", std::string{});
  h.command = j.value("command", std::string{});
  h.since = j.value("since", std::string{});
  return h;
}

std::string read_fd(int fd) {
  std::string text;
  char buffer[512];
  if (::lseek(fd, 0, SEEK_SET) < 0) return text;
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  return text;
}

void write_holder(int fd, const std::string& command) {
  nlohmann::json j{
      {"pid", static_cast<int64_t>(::getpid())}, {"host", host_name()}, {"command", command}, {"since", now_iso()}};
  std::string text = j.dump() + "\n";
  // Best effort: the lock itself is the fcntl lock; the text only tells others who holds it.
  if (::ftruncate(fd, 0) == 0 && ::lseek(fd, 0, SEEK_SET) == 0) {
    ssize_t written = ::write(fd, text.data(), text.size());
    (void)written;
  }
}

// Open-file-description locks (Linux): owned by the open file like flock(2), so threads and
// the registry below behave predictably, and F_OFD_GETLK can ask whether the lock is held
// without taking it (a reader's probe never makes a writer fail).
int set_lock(int fd, bool wait) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return ::fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
}

void unlock(int fd) {
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;
  ::fcntl(fd, F_OFD_SETLK, &fl);
}

bool held_elsewhere(int fd) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

// The lock file's path, symlinks resolved: it is also this process's registry key, so the
// same workspace reached by two spellings must give the same key (or `run` would be refused
// by its own stages).
std::string lock_path(const fs::path& dir) {
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) abs = fs::absolute(dir, ec).lexically_normal();
  return (abs / kLockFile).string();
}

// The holder as recorded in the file; the file may be empty for an instant while a new
// holder rewrites it, so an unreadable record reads as "another process".
LockHolder recorded_holder(int fd) {
  if (auto h = parse_holder(read_fd(fd))) return *h;
  LockHolder unknown;
  unknown.command = "unknown command";
  return unknown;
}

}  // namespace

std::string LockHolder::describe() const {
  std::string who = pid > 0 ? fmt::format("pid {}", pid) : std::string("another process");
  if (!host.empty()) who += " on " + host;
  if (!command.empty() || !since.empty())
    who += fmt::format(" ({}{}{})", command, command.empty() || since.empty() ? "" : ", ",
                       since.empty() ? "" : "since " + since);
  return who;
}

WorkspaceLock::WorkspaceLock(const fs::path& dir, const std::string& command, bool wait,
                             const std::function<void(const LockHolder&)>& on_wait)
    : key_(lock_path(dir)) {
  std::lock_guard<std::mutex> guard(registry_mutex);
  Held& held = registry()[key_];
  if (held.count > 0) {
    ++held.count;
    return;
  }
  std::error_code ec;
  fs::create_directories(fs::path(key_).parent_path(), ec);
  int fd = ::open(key_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    registry().erase(key_);
    throw IoError(fmt::format("{}: cannot open the workspace lock {}: {}", command, key_, std::strerror(errno)));
  }
  while (set_lock(fd, false) != 0) {
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EACCES) {
      int err = errno;
      ::close(fd);
      registry().erase(key_);
      throw IoError(fmt::format("{}: cannot lock the workspace {}: {}", command, key_, std::strerror(err)));
    }
    LockHolder h = recorded_holder(fd);
    if (!wait) {
      ::close(fd);
      registry().erase(key_);
      throw BusyError(
          fmt::format("{}: the workspace {} is in use by {}; run again when it has finished, or "
                      "add --wait",
                      command, fs::path(key_).parent_path().string(), h.describe()));
    }
    if (on_wait) on_wait(h);
    while (set_lock(fd, true) != 0) {
      if (errno != EINTR) {
        int err = errno;
        ::close(fd);
        registry().erase(key_);
        throw IoError(fmt::format("{}: cannot lock the workspace {}: {}", command, key_, std::strerror(err)));
      }
    }
    break;
  }
  write_holder(fd, command);
  held.fd = fd;
  held.count = 1;
}

WorkspaceLock::~WorkspaceLock() {
  std::lock_guard<std::mutex> guard(registry_mutex);
  auto it = registry().find(key_);
  if (it == registry().end() || --it->second.count > 0) return;
  // Leave the file (removing it would race with a waiter that has it open); empty it so
  // that a stale record never names a finished process.
  if (::ftruncate(it->second.fd, 0) != 0) {
    // nothing to do: the record is advisory
  }
  unlock(it->second.fd);
  ::close(it->second.fd);
  registry().erase(it);
}

std::optional<LockHolder> WorkspaceLock::holder(const fs::path& dir) {
  std::string path = lock_path(dir);
  {
    std::lock_guard<std::mutex> guard(registry_mutex);
    auto it = registry().find(path);
    if (it != registry().end() && it->second.count > 0) return recorded_holder(it->second.fd);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<LockHolder> out;
  if (held_elsewhere(fd)) out = recorded_holder(fd);
  ::close(fd);
  return out;
}

}  // namespace defuse
