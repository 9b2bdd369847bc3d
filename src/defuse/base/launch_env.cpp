#include "defuse/base/launch_env.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <optional>

#include "defuse/base/error.h"

namespace defuse {
namespace {

constexpr const char* kWhere = "distributed";

std::optional<std::string> read(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int parse_int(const std::string& text, const char* name, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || v < lo || v > hi)
    throw ConfigError(
        fmt::format("{}: ${} is '{}', expected a whole number from {} to {}", kWhere, name, text, lo, hi));
  return static_cast<int>(v);
}

}  // namespace

std::string LaunchEnv::describe() const {
  return fmt::format("rank {} of {} (local {} of {}), store {}:{}{}", rank, world_size, local_rank, local_world_size,
                     master_addr, master_port, agent_store ? " (torchrun's agent store)" : "");
}

LaunchEnv launch_env_from(const std::function<const char*(const char*)>& getenv) {
  LaunchEnv e;
  constexpr long kMaxRanks = 1 << 20;
  auto rank = read(getenv, "RANK"), world = read(getenv, "WORLD_SIZE");
  auto local = read(getenv, "LOCAL_RANK"), local_world = read(getenv, "LOCAL_WORLD_SIZE");
  if (!rank && !world) {
    // Slurm's task variables stand in for unset env:// ones (srun starts one task per rank).
    auto procid = read(getenv, "SLURM_PROCID"), ntasks = read(getenv, "SLURM_NTASKS");
    if (!procid || !ntasks) return e;
    e.source = "slurm";
    e.world_size = parse_int(*ntasks, "SLURM_NTASKS", 1, kMaxRanks);
    e.rank = parse_int(*procid, "SLURM_PROCID", 0, e.world_size - 1);
    if (!local) local = read(getenv, "SLURM_LOCALID");
    if (!local_world) local_world = read(getenv, "SLURM_NTASKS_PER_NODE");
  } else {
    if (!rank || !world)
      throw ConfigError(fmt::format("{}: ${} is set but ${} is not: a distributed launch sets both (torchrun does)",
                                    kWhere, rank ? "RANK" : "WORLD_SIZE", rank ? "WORLD_SIZE" : "RANK"));
    e.source = "env";
    e.world_size = parse_int(*world, "WORLD_SIZE", 1, kMaxRanks);
    e.rank = parse_int(*rank, "RANK", 0, e.world_size - 1);
  }
  // Unset: one node. Slurm writes e.g. "2(x3)" for uneven tasks per node: not a number, so
  // the local world size stays unknown (the world's).
  e.local_rank = local ? parse_int(*local, "LOCAL_RANK", 0, kMaxRanks) : e.rank;
  e.local_world_size = local_world && local_world->find('(') == std::string::npos
                           ? parse_int(*local_world, "LOCAL_WORLD_SIZE", 1, kMaxRanks)
                           : e.world_size;
  if (auto addr = read(getenv, "MASTER_ADDR")) e.master_addr = *addr;
  if (auto port = read(getenv, "MASTER_PORT")) e.master_port = parse_int(*port, "MASTER_PORT", 1, 65535);
  if (e.world_size > 1 && !read(getenv, "MASTER_ADDR"))
    throw ConfigError(fmt::format(
        "{}: {} ranks but $MASTER_ADDR is not set: say which host runs rank 0 (torchrun sets it; under Slurm, "
        "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1))",
        kWhere, e.world_size));
  auto agent = read(getenv, "TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
  if (auto restarts = read(getenv, "TORCHELASTIC_RESTART_COUNT")) e.restart_count = *restarts;
  return e;
}

LaunchEnv launch_env_from_process() {
  return launch_env_from([](const char* name) { return std::getenv(name); });
}

}  // namespace defuse
