// The group of processes a distributed run is made of (DESIGN §6, "Distribution"):
// torch.distributed's c10d with its Gloo backend, joined exactly as Python's
// `init_process_group("gloo", init_method="env://")` joins it, so C++ and Python ranks can
// share one group. Rank 0 owns the workspace; the others compute and send it their results.
//
// A World is made once per process (init_world) and made current for the thread that runs
// the pipeline (ScopedWorld); library code asks `current_world()` and runs as one process
// when there is none, as torch.distributed's default group works. Collectives block, and a
// peer that died or hung makes them throw DistError within the timeout, naming this rank
// and the stage. No Gloo header is included here.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "defuse/base/error.h"
#include "defuse/base/launch_env.h"

namespace defuse::dist {

// A collective failed: a peer died, hung past the timeout, or the ranks disagree.
class DistError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return kExitDistributed; }
};

struct InitOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  // store rendezvous and every collective
};

class World {
 public:
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  void barrier();
  // In place, from `root`: every rank passes a tensor of the same shape and type. `wait`
  // replaces the timeout for this call (0: the world's).
  void broadcast(at::Tensor& tensor, int root = 0, std::chrono::milliseconds wait = {});
  // Sums contiguous CPU tensors over the ranks, in place, in one collective.
  void allreduce_sum(std::vector<at::Tensor>& tensors);
  // Root's bytes on every rank (other ranks' argument is ignored); `wait` as for broadcast,
  // for the first message.
  std::string broadcast_bytes(const std::string& bytes, int root = 0, std::chrono::milliseconds wait = {});
  // Every rank's bytes, in rank order, on every rank.
  std::vector<std::string> allgather_bytes(const std::string& bytes);

  struct Impl;  // the Gloo process group (world.cpp)
  World(std::unique_ptr<Impl> impl, int rank, int size, std::chrono::milliseconds timeout);

 private:
  template <class F>
  auto guarded(const char* what, F&& f) -> decltype(f());
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  std::chrono::milliseconds timeout_;
};

// Joins the group `env` describes (TCPStore at MASTER_ADDR:MASTER_PORT, hosted by rank 0 or by
// torchrun's agent), with Python 1.13's key layout. Throws DistError when the rendezvous or
// the first barrier times out.
std::unique_ptr<World> init_world(const LaunchEnv& env, const InitOptions& options = {});

// A group of ranks that share one in-process store (tests: several ranks on threads of one
// process, each calling init_world_on_store with its rank).
struct LocalStore;
std::shared_ptr<LocalStore> make_local_store();
std::unique_ptr<World> init_world_on_store(const std::shared_ptr<LocalStore>& store, int rank, int size,
                                           const InitOptions& options = {});

// Tensors to bytes and back (torch::save's format), for the byte collectives. CPU tensors;
// an empty list is an empty string.
std::string pack_tensors(const std::vector<at::Tensor>& tensors);
std::vector<at::Tensor> unpack_tensors(const std::string& bytes);

// The world of the calling thread, or null (one process).
World* current_world();
// 0 and 1 without a world.
int current_rank();
int current_size();
inline bool is_root() { return current_rank() == 0; }

// Makes `world` the calling thread's world for the scope (null: one process).
class ScopedWorld {
 public:
  explicit ScopedWorld(World* world);
  ~ScopedWorld();
  ScopedWorld(const ScopedWorld&) = delete;
  ScopedWorld& operator=(const ScopedWorld&) = delete;

 private:
  World* previous_;
};

// Names the stage that the calling thread's collectives belong to, for their errors.
class StageName {
 public:
  explicit StageName(std::string stage);
  ~StageName();

 private:
  std::string previous_;
};

}  // namespace defuse::dist
