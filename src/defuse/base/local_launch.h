// `--nproc-per-node P` (DESIGN §6): start P ranks of this command on this machine, with the
// variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, and GLOO_SOCKET_IFNAME=lo unless set), and wait for them as torchrun does:
// when one fails, the others are stopped (SIGTERM, then SIGKILL 10 s later). Torch-free.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace defuse {

struct LocalLaunch {
  std::string executable;         // the program each rank runs (argv[0] is passed as is)
  std::vector<std::string> argv;  // the command line of every rank
  int nproc = 2;                  // ranks
  int threads_per_rank = 0;       // OMP_NUM_THREADS of each rank; 0: the machine's cores / nproc
  int grace_seconds = 30;         // after a rank fails, how long the others get to stop on their own
};

// A free TCP port on the loopback interface (the kernel's choice).
int free_local_port();

// Runs the ranks and returns rank 0's exit code, or the first failing rank's when rank 0
// succeeded; a line on `err` names a rank that failed or was stopped by a signal.
int launch_local_ranks(const LocalLaunch& launch, std::ostream& err);

}  // namespace defuse
