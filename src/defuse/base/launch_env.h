// Where this process sits in a distributed job (DESIGN §6, "Distribution"), read from the
// environment the way PyTorch's env:// rendezvous reads it: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT as torchrun sets them, Slurm's SLURM_PROCID /
// SLURM_NTASKS / SLURM_LOCALID when those are unset, and torchrun's agent store
// (TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT). Torch-free.
#pragma once

#include <functional>
#include <string>

namespace defuse {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;          // torch.distributed's default
  bool agent_store = false;         // torchrun's agent hosts the store: every rank is a client
  std::string restart_count = "0";  // torchrun's attempt number (the agent store's key prefix)
  std::string source = "none";      // "env" (RANK/WORLD_SIZE), "slurm", or "none" (one process)

  bool distributed() const { return world_size > 1; }
  // "rank 1 of 4 (local 1), store 10.0.0.1:29500"
  std::string describe() const;
};

// Reads the job's place from `getenv` (the process environment by default). No variables: one
// process (world size 1). Throws ConfigError naming the variable when a value is not a
// number, out of range, or when RANK is set without WORLD_SIZE (or the other way round).
LaunchEnv launch_env_from(const std::function<const char*(const char*)>& getenv);
LaunchEnv launch_env_from_process();

}  // namespace defuse
