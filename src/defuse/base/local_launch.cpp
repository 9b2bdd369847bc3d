#include "defuse/base/local_launch.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "defuse/base/error.h"

extern char** environ;

namespace defuse {

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw IoError("launch: cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw IoError("launch: cannot bind a socket on 127.0.0.1 to find a free port");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

int launch_local_ranks(const LocalLaunch& launch, std::ostream& err) {
  if (launch.nproc < 1) throw ConfigError("launch: --nproc-per-node must be at least 1");
  const int port = free_local_port();
  int threads = launch.threads_per_rank;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / launch.nproc);

  // Every rank's environment: this one without the variables the launch sets, then those.
  std::vector<std::string> common;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (key == "RANK" || key == "WORLD_SIZE" || key == "LOCAL_RANK" || key == "LOCAL_WORLD_SIZE" ||
        key == "MASTER_ADDR" || key == "MASTER_PORT" || key == "OMP_NUM_THREADS")
      continue;
    common.push_back(entry);
  }
  common.push_back(fmt::format("WORLD_SIZE={}", launch.nproc));
  common.push_back(fmt::format("LOCAL_WORLD_SIZE={}", launch.nproc));
  common.push_back("MASTER_ADDR=127.0.0.1");
  common.push_back(fmt::format("MASTER_PORT={}", port));
  common.push_back(fmt::format("OMP_NUM_THREADS={}", threads));
  if (!std::getenv("GLOO_SOCKET_IFNAME")) common.push_back("GLOO_SOCKET_IFNAME=lo");

  std::vector<pid_t> pids;
  for (int rank = 0; rank < launch.nproc; ++rank) {
    std::vector<std::string> env = common;
    env.push_back(fmt::format("RANK={}", rank));
    env.push_back(fmt::format("LOCAL_RANK={}", rank));
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = launch.argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw IoError("launch: cannot start rank " + std::to_string(rank) + ": " + std::strerror(errno));
    if (pid == 0) {
      ::execve(launch.executable.c_str(), argv.data(), envp.data());
      std::fprintf(stderr, "defuse: launch: cannot run %s: %s\n", launch.executable.c_str(), std::strerror(errno));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }

  // Wait for every rank; once one fails, give the others the grace period, then stop them.
  std::vector<int> codes(pids.size(), -1);
  size_t running = pids.size();
  int first_failure = -1;
  auto failed_at = std::chrono::steady_clock::time_point::max();
  bool stopped = false, killed = false;
  auto stopped_at = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    bool reaped = false;
    for (size_t r = 0; r < pids.size(); ++r) {
      if (codes[r] >= 0) continue;
      int status = 0;
      if (::waitpid(pids[r], &status, WNOHANG) != pids[r]) continue;
      reaped = true;
      --running;
      if (WIFEXITED(status)) {
        codes[r] = WEXITSTATUS(status);
      } else {
        codes[r] = 128 + WTERMSIG(status);
        if (!stopped) err << fmt::format("defuse: launch: rank {} was killed by signal {}\n", r, WTERMSIG(status));
      }
      if (codes[r] != 0 && first_failure < 0) {
        first_failure = static_cast<int>(r);
        failed_at = std::chrono::steady_clock::now();
      }
    }
    if (reaped) continue;
    if (first_failure >= 0 && !stopped &&
        std::chrono::steady_clock::now() - failed_at > std::chrono::seconds(launch.grace_seconds)) {
      // SIGCONT too: a stopped (hung) rank takes the SIGTERM only once it runs.
      for (size_t r = 0; r < pids.size(); ++r)
        if (codes[r] < 0) {
          ::kill(pids[r], SIGTERM);
          ::kill(pids[r], SIGCONT);
        }
      stopped = true;
      stopped_at = std::chrono::steady_clock::now();
      err << fmt::format("defuse: launch: rank {} failed; stopped the ranks still running\n", first_failure);
    }
    if (stopped && !killed && std::chrono::steady_clock::now() - stopped_at > std::chrono::seconds(10)) {
      for (size_t r = 0; r < pids.size(); ++r)
        if (codes[r] < 0) ::kill(pids[r], SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (codes[0] != 0) return codes[0];
  return first_failure >= 0 ? codes[static_cast<size_t>(first_failure)] : 0;
}

}  // namespace defuse
