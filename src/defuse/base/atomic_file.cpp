#include "defuse/base/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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
  if (rc != 0 && !(directory && errno == EINVAL))
    throw IoError("cannot sync " + path.string() + ": " + errno_text());
}

void commit(const fs::path& tmp, const fs::path& path) {
  fsync_path(tmp, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw IoError("cannot rename " + tmp.string() + " to " + path.string() + ": " + errno_text());
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path(), true);
}

void ensure_parent(const fs::path& path) {
  std::error_code ec;
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path(), ec);
  if (ec) throw IoError("cannot create directory " + path.parent_path().string() + ": " + ec.message());
}

}  // namespace

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  write_atomic_via(path, [&](const fs::path& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw IoError("cannot create " + tmp.string() + ": " + errno_text());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        std::string why = errno_text();
        ::close(fd);
        throw IoError("cannot write " + path.string() + ": " + why);
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) throw IoError("cannot write " + path.string() + ": " + errno_text());
  });
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
    size_t at = name.find(kTmpMarker);
    if (it->is_regular_file() && at != std::string::npos) {
      // A writer that is still alive (another stage, a reader's report) owns its temporary.
      int64_t pid = std::atoll(name.c_str() + at + kTmpMarker.size());
      if (process_alive(pid)) continue;
      std::error_code rm;
      if (fs::remove(it->path(), rm)) ++removed;
    }
  }
  return removed;
}

}  // namespace defuse
