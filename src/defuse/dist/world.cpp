#include "defuse/dist/world.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>

namespace defuse::dist {

namespace {

thread_local World* t_world = nullptr;
thread_local std::string t_stage;

// Python 1.13's init_process_group: the rendezvous store wrapped as "default_pg", the default
// group on the prefix "0" of that, then a store-based barrier on "store_based_barrier_key:1"
// and the group's sequence number (torch/distributed/distributed_c10d.py). Any other layout
// and a Python rank waits for keys a C++ rank never writes.
constexpr const char* kDefaultPgPrefix = "default_pg";
constexpr const char* kGroupName = "0";
constexpr const char* kBarrierKey = "store_based_barrier_key:1";

// One line: Gloo's messages carry the source location and end with a newline, LibTorch's a
// backtrace.
std::string one_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// Gloo's device: one per interface named in $GLOO_SOCKET_IFNAME (as Python's binding does),
// else the address this host's name resolves to, else loopback.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices() {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  if (const char* names = std::getenv("GLOO_SOCKET_IFNAME"); names && *names) {
    std::stringstream list(names);
    std::string name;
    while (std::getline(list, name, ','))
      if (!name.empty()) devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
  }
  if (devices.empty()) devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return devices;
}

void store_barrier(c10d::Store& store, int size, std::chrono::milliseconds timeout, int rank) {
  store.add(kBarrierKey, 1);
  const auto start = std::chrono::steady_clock::now();
  while (store.add(kBarrierKey, 0) < size) {
    if (std::chrono::steady_clock::now() - start > timeout)
      throw DistError(
          fmt::format("distributed: rank {} waited {} s for the other ranks to join the group; {} of {} "
                      "arrived",
                      rank, timeout.count() / 1000, store.add(kBarrierKey, 0), size));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

struct LocalStore {
  c10::intrusive_ptr<c10d::Store> store;
};

struct World::Impl {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;  // holds its store
};

World::World(std::unique_ptr<Impl> impl, int rank, int size, std::chrono::milliseconds timeout)
    : impl_(std::move(impl)), rank_(rank), size_(size), timeout_(timeout) {}

World::~World() = default;

template <class F>
auto World::guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string stage = t_stage.empty() ? std::string("distributed") : t_stage;
    throw DistError(
        fmt::format("{}: rank {} of {} lost the group in {} (a rank died, hung past the {} s timeout, or "
                    "was started with other options): {}",
                    stage, rank_, size_, what, timeout_.count() / 1000, one_line(e)));
  }
}

void World::barrier() {
  guarded("a barrier", [&] { impl_->group->barrier()->wait(timeout_); });
}

void World::broadcast(at::Tensor& tensor, int root, std::chrono::milliseconds wait) {
  const auto timeout = wait.count() > 0 ? wait : timeout_;
  guarded("a broadcast", [&] {
    std::vector<at::Tensor> list{tensor};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = timeout;
    impl_->group->broadcast(list, o)->wait(timeout);
  });
}

void World::allreduce_sum(std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return;
  guarded("an allreduce", [&] {
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    if (tensors.size() == 1) {
      impl_->group->allreduce(tensors, o)->wait(timeout_);
    } else {
      c10d::AllreduceCoalescedOptions c;
      c.reduceOp = c10d::ReduceOp::SUM;
      c.timeout = timeout_;
      impl_->group->allreduce_coalesced(tensors, c)->wait(timeout_);
    }
  });
}

namespace {

at::Tensor bytes_tensor(const std::string& bytes, int64_t size) {
  auto t = torch::zeros({size}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_bytes(const at::Tensor& t, int64_t n) {
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

}  // namespace

std::string World::broadcast_bytes(const std::string& bytes, int root, std::chrono::milliseconds wait) {
  c10::InferenceMode normal(false);  // Gloo writes the buffers from its own threads
  auto length = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kLong);
  broadcast(length, root, wait);
  const int64_t n = length.item<int64_t>();
  auto data = rank_ == root ? bytes_tensor(bytes, n) : torch::empty({n}, torch::kUInt8);
  if (n > 0) broadcast(data, root);
  return tensor_bytes(data, n);
}

std::vector<std::string> World::allgather_bytes(const std::string& bytes) {
  c10::InferenceMode normal(false);  // Gloo writes the buffers from its own threads
  auto lengths = torch::zeros({size_}, torch::kLong);
  lengths[rank_] = static_cast<int64_t>(bytes.size());
  std::vector<at::Tensor> l{lengths};
  allreduce_sum(l);
  const int64_t longest = lengths.max().item<int64_t>();
  std::vector<std::string> out(static_cast<size_t>(size_));
  if (longest == 0) return out;
  auto mine = bytes_tensor(bytes, longest);
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < size_; ++r) outputs[0].push_back(torch::empty({longest}, torch::kUInt8));
  std::vector<at::Tensor> inputs{mine};
  guarded("an allgather", [&] {
    c10d::AllgatherOptions o;
    o.timeout = timeout_;
    impl_->group->allgather(outputs, inputs, o)->wait(timeout_);
  });
  for (int r = 0; r < size_; ++r) out[static_cast<size_t>(r)] = tensor_bytes(outputs[0][r], lengths[r].item<int64_t>());
  return out;
}

namespace {

std::unique_ptr<World> join(c10::intrusive_ptr<c10d::Store> base, int rank, int size, const InitOptions& options) {
  auto store = c10::make_intrusive<c10d::PrefixStore>(kDefaultPgPrefix, base);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
  gloo_options->devices = gloo_devices();
  gloo_options->threads = static_cast<int>(gloo_options->devices.size()) * 2;
  auto group_store = c10::make_intrusive<c10d::PrefixStore>(kGroupName, store);
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(group_store, rank, size, gloo_options);
  store_barrier(*store, size, options.timeout, rank);
  group->setSequenceNumberForGroup();
  auto impl = std::make_unique<World::Impl>();
  impl->group = group;
  return std::make_unique<World>(std::move(impl), rank, size, options.timeout);
}

}  // namespace

std::unique_ptr<World> init_world(const LaunchEnv& env, const InitOptions& options) {
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.master_port);
    o.timeout = options.timeout;
    c10::intrusive_ptr<c10d::Store> base;
    if (env.agent_store) {
      // torchrun's agent hosts the store: every rank is a client, keys under the attempt.
      o.isServer = false;
      o.numWorkers = env.world_size;
      o.waitWorkers = false;
      auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      base = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + env.restart_count, tcp);
    } else {
      o.isServer = env.rank == 0;
      o.numWorkers = env.world_size;
      o.waitWorkers = true;
      o.multiTenant = true;
      base = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    }
    return join(base, env.rank, env.world_size, options);
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError(fmt::format("distributed: {} could not join the group: {}", env.describe(), one_line(e)));
  }
}

std::shared_ptr<LocalStore> make_local_store() {
  auto out = std::make_shared<LocalStore>();
  out->store = c10::make_intrusive<c10d::HashStore>();
  return out;
}

std::unique_ptr<World> init_world_on_store(const std::shared_ptr<LocalStore>& store, int rank, int size,
                                           const InitOptions& options) {
  return join(store->store, rank, size, options);
}

std::string pack_tensors(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return {};
  std::ostringstream out;
  std::vector<at::Tensor> cpu;
  for (const auto& t : tensors) cpu.push_back(t.to(torch::kCPU).contiguous());
  torch::save(cpu, out);
  return out.str();
}

std::vector<at::Tensor> unpack_tensors(const std::string& bytes) {
  std::vector<at::Tensor> out;
  if (bytes.empty()) return out;
  std::istringstream in(bytes);
  torch::load(out, in);
  return out;
}

World* current_world() { return t_world; }
int current_rank() { return t_world ? t_world->rank() : 0; }
int current_size() { return t_world ? t_world->size() : 1; }

ScopedWorld::ScopedWorld(World* world) : previous_(t_world) { t_world = world; }
ScopedWorld::~ScopedWorld() { t_world = previous_; }

StageName::StageName(std::string stage) : previous_(std::move(t_stage)) { t_stage = std::move(stage); }
StageName::~StageName() { t_stage = std::move(previous_); }

}  // namespace defuse::dist
