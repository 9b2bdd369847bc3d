#include "defuse/base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "defuse/base/error.h"
#include "defuse/base/process.h"

namespace defuse {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTmpMarker = ".tmp-defuse-";

std::string errno_text() { return std::strerror(errno); }

// The pid of the writer whose temporary `name` is ("...<kTmpMarker><pid>[-...]"), 0 if it is none.
int64_t temporary_writer(const std::string& name) {
  const size_t at = name.find(kTmpMarker);
  return at == std::string::npos ? 0 : std::atoll(name.c_str() + at + kTmpMarker.size());
}

fs::path temporary_sibling(const fs::path& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream name;
  name << path.filename().string() << kTmpMarker << ::getpid() << "-" << std::hex << rng();
  return path.parent_path() / name.str();
}

void fsync_path(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw IoError("cannot open " + path.string() + " to sync it: " + errno_text());
  int rc = ::fsync(fd);
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the rename is still atomic.
  if (rc != 0 && !(directory && errno == EINVAL)) throw IoError("cannot sync " + path.string() + ": " + errno_text());
}

void commit(const fs::path& tmp, const fs::path& path) {
  fsync_path(tmp, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw IoError("cannot rename " + tmp.string() + " to " + path.string() + ": " + errno_text());
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path(), true);
}

// Creates (or truncates) `file` and writes `bytes` to it; errors name `shown` (the target a
// temporary stands for), prefixed by `prefix`.
void write_new_file(const fs::path& file, const fs::path& shown, std::string_view bytes, const std::string& prefix) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(prefix + "cannot create " + file.string() + ": " + errno_text());
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string why = errno_text();
      ::close(fd);
      throw IoError(prefix + "cannot write " + shown.string() + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) throw IoError(prefix + "cannot write " + shown.string() + ": " + errno_text());
}

void ensure_parent(const fs::path& path) {
  std::error_code ec;
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path(), ec);
  if (ec) throw IoError("cannot create directory " + path.parent_path().string() + ": " + ec.message());
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  write_atomic_via(path, [&](const fs::path& tmp) { write_new_file(tmp, path, bytes, ""); });
}

void write_atomic_via(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  ensure_parent(path);
  fs::path tmp = temporary_sibling(path);
  try {
    write(tmp);
    if (!fs::exists(tmp)) throw IoError("writer produced no file for " + path.string());
    commit(tmp, path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + path.string() + ": " + errno_text());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw IoError("cannot read " + path.string());
  return buffer.str();
}

int remove_stale_temporaries(const fs::path& dir) {
  int removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    const int64_t pid = temporary_writer(name);
    if (it->is_regular_file() && pid > 0) {
      // A writer that is still alive (another stage, a reader's report) owns its temporary.
      if (process_alive(pid)) continue;
      std::error_code rm;
      if (fs::remove(it->path(), rm)) ++removed;
    }
  }
  return removed;
}

DirectoryWrite::DirectoryWrite(const fs::path& dir, const std::string& marker, const std::string& stage)
    : stage_(stage) {
  dir_ = fs::absolute(dir).lexically_normal();
  if (dir_.filename().empty()) dir_ = dir_.parent_path();
  if (dir_.filename().empty() || dir_ == dir_.root_path())
    throw IoError(stage + ": '" + dir.string() + "' names no directory");
  const fs::path parent = dir_.parent_path();
  if (!fs::is_directory(parent)) throw IoError(stage + ": the directory " + parent.string() + " does not exist");
  std::error_code ec;
  if (fs::exists(dir_)) {
    if (!fs::is_directory(dir_)) throw IoError(stage + ": " + dir_.string() + " exists and is not a directory");
    if (!fs::is_empty(dir_) && !fs::exists(dir_ / marker))
      throw IoError(stage + ": " + dir_.string() + " exists and holds no " + marker +
                    " of an earlier export: not writing over it (choose another directory)");
  }
  // Temporaries of killed writers: "<name>.tmp-defuse-<pid>" whose process is gone.
  const std::string prefix = dir_.filename().string() + std::string(kTmpMarker);
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    const int64_t pid = temporary_writer(name);
    if (name.rfind(prefix, 0) == 0 && pid > 0 && !process_alive(pid)) fs::remove_all(entry.path(), ec);
  }
  tmp_ = parent / (prefix + std::to_string(::getpid()));
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec) || ec)
    throw IoError(stage + ": cannot create " + tmp_.string() + ": " + (ec ? ec.message() : std::string("exists")));
}

DirectoryWrite::~DirectoryWrite() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void DirectoryWrite::write(const std::string& relative, std::string_view bytes) {
  const fs::path path = tmp_ / relative;
  ensure_parent(path);
  write_new_file(path, path, bytes, stage_.empty() ? "" : stage_ + ": ");
}

void DirectoryWrite::commit() {
  // One syncfs for every file written, instead of an fsync each.
  int fd = ::open(tmp_.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw IoError(stage_ + ": cannot open " + tmp_.string() + ": " + errno_text());
  const int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) throw IoError(stage_ + ": cannot sync " + tmp_.string() + ": " + errno_text());
  if (fs::exists(dir_)) {
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_EXCHANGE) != 0)
      throw IoError(stage_ + ": cannot replace " + dir_.string() + ": " + errno_text());
    committed_ = true;
    std::error_code ec;
    fs::remove_all(tmp_, ec);  // the old directory, swapped out
  } else {
    if (::rename(tmp_.c_str(), dir_.c_str()) != 0)
      throw IoError(stage_ + ": cannot rename " + tmp_.string() + " to " + dir_.string() + ": " + errno_text());
    committed_ = true;
  }
  fsync_path(dir_.parent_path(), true);
}

}  // namespace defuse
