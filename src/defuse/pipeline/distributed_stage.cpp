#include "defuse/pipeline/distributed_stage.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/data/fingerprint.h"
#include "defuse/dist/world.h"
#include "defuse/pipeline/stage_support.h"

namespace defuse {
namespace {

using nlohmann::json;

constexpr const char* kEnd = "";          // the command ended on rank 0
constexpr const char* kError = "!error";  // rank 0 stopped with an error (info.message)

// [info as bytes, files..., tensors...]
std::string pack_plan(const StagePlan& p) {
  json head = p.info;
  head["__stage"] = p.stage;
  head["__run"] = p.run;
  head["__files"] = p.files.size();
  const std::string text = head.dump();
  std::vector<at::Tensor> parts;
  auto bytes = [](const std::string& s) {
    auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
    if (!s.empty()) std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
    return t;
  };
  parts.push_back(bytes(text));
  for (const auto& f : p.files) parts.push_back(bytes(f));
  for (const auto& t : p.tensors) parts.push_back(t);
  return dist::pack_tensors(parts);
}

StagePlan unpack_plan(const std::string& packed) {
  auto parts = dist::unpack_tensors(packed);
  auto text = [](const at::Tensor& t) {
    return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(t.numel()));
  };
  StagePlan p;
  json head = json::parse(text(parts.at(0)));
  p.stage = head.at("__stage").get<std::string>();
  p.run = head.at("__run").get<bool>();
  const size_t files = head.at("__files").get<size_t>();
  for (const char* k : {"__stage", "__run", "__files"}) head.erase(k);
  p.info = std::move(head);
  for (size_t i = 0; i < files; ++i) p.files.push_back(text(parts.at(1 + i)));
  for (size_t i = 1 + files; i < parts.size(); ++i) p.tensors.push_back(parts[i]);
  return p;
}

void broadcast_plan(const StagePlan& plan, std::chrono::milliseconds wait = {}) {
  dist::World* world = dist::current_world();
  world->broadcast_bytes(pack_plan(plan), 0, wait);
}

}  // namespace

bool worker_rank() { return dist::current_size() > 1 && dist::current_rank() != 0; }
bool root_of_many() { return dist::current_size() > 1 && dist::current_rank() == 0; }

PlanSender::PlanSender(std::string stage)
    : stage_(std::move(stage)), name_(std::make_unique<dist::StageName>(stage_)) {}

PlanSender::~PlanSender() {
  // Left with an exception: the command's edge sends the error (end_workers).
  if (sent_ || !root_of_many() || std::uncaught_exceptions() > 0) return;
  try {
    StagePlan plan;
    plan.stage = stage_;
    broadcast_plan(plan);
  } catch (...) {
    // The group is gone; the workers learn it from their own collectives.
  }
}

void PlanSender::send(StagePlan plan) {
  if (sent_ || !root_of_many()) return;
  sent_ = true;
  plan.stage = stage_;
  broadcast_plan(plan);
}

void serve_rank0(const StageEnv& env, const StageHandlers& handlers) {
  dist::World* world = dist::current_world();
  if (!world || world->is_root()) return;
  for (;;) {
    // Rank 0 may spend long on the stages that stay on it (distill, a person annotating):
    // wait for its next plan as long as it lives (a dead rank 0 closes the connection).
    StagePlan plan = unpack_plan(world->broadcast_bytes({}, 0, std::chrono::hours(24 * 7)));
    if (plan.stage == kEnd) return;
    if (plan.stage == kError)
      throw dist::DistError("rank 0 stopped: " + plan.info.value("message", std::string("an error")));
    auto handler = handlers.find(plan.stage);
    if (handler == handlers.end())
      throw dist::DistError(
          fmt::format("{}: rank 0 runs stage {}, which this rank's command does not: start every "
                      "rank with the same command",
                      plan.stage, plan.stage));
    dist::StageName name(plan.stage);
    env.info(fmt::format("{}: rank {} of {}: {}", plan.stage, world->rank(), world->size(),
                         plan.run ? "computing its share" : "up to date on rank 0"));
    // Test hooks (tests/e2e/distributed_cli_test.cpp): this rank dies as it starts computing;
    // with DEFUSE_TEST_KILL_RANK_ONCE=RANK:FILE only while FILE does not exist (it makes it).
    if (const char* kill = std::getenv("DEFUSE_TEST_KILL_RANK"); plan.run && kill && std::atoi(kill) == world->rank())
      ::raise(SIGKILL);
    if (const char* hang = std::getenv("DEFUSE_TEST_HANG_RANK"); plan.run && hang && std::atoi(hang) == world->rank())
      ::raise(SIGSTOP);
    if (const char* once = std::getenv("DEFUSE_TEST_KILL_RANK_ONCE");
        plan.run && once && std::strchr(once, ':') && std::atoi(once) == world->rank()) {
      const std::filesystem::path marker(std::strchr(once, ':') + 1);
      if (!std::filesystem::exists(marker)) {
        std::ofstream(marker) << "killed\n";
        ::raise(SIGKILL);
      }
    }
    if (plan.run) handler->second(plan);
  }
}

void end_workers(const std::string& error) {
  if (!root_of_many()) return;
  StagePlan plan;
  plan.stage = error.empty() ? kEnd : kError;
  if (!error.empty()) plan.info["message"] = error;
  // After an error the others may be inside another collective, where this plan never
  // arrives: wait briefly, then leave; the process's end closes the connections and stops them.
  broadcast_plan(plan, error.empty() ? std::chrono::milliseconds{} : std::chrono::milliseconds(5000));
}

namespace {

// `mine` and rank 0's `root` must be equal; DistError naming the first key that differs.
void check_same_as_root(const json& mine, const json& root, const std::string& what, const std::string& stage) {
  if (mine == root) return;
  std::string key = "?";
  if (mine.is_object() && root.is_object()) {
    for (auto it = root.begin(); it != root.end(); ++it)
      if (!mine.contains(it.key()) || mine[it.key()] != it.value()) {
        key = it.key();
        break;
      }
    if (key == "?")
      for (auto it = mine.begin(); it != mine.end(); ++it)
        if (!root.contains(it.key())) {
          key = it.key();
          break;
        }
  }
  throw dist::DistError(fmt::format(
      "{}: rank {}'s {} differ from rank 0's at '{}' ({} here, {} on rank 0): start every rank with the same "
      "options, data and defuse version",
      stage, dist::current_rank(), what, key, mine.is_object() && mine.contains(key) ? mine[key].dump() : "none",
      root.is_object() && root.contains(key) ? root[key].dump() : "none"));
}

}  // namespace

json plan_info(json options, const std::string& spec, const std::string& dataset_fingerprint) {
  options.erase("data");
  options.erase("device");  // cuda:LOCAL_RANK differs from rank to rank
  return {{"options", options}, {"data", spec}, {"dataset", dataset_fingerprint}};
}

void check_options(json mine, const StagePlan& plan) {
  mine.erase("data");
  mine.erase("device");
  check_same_as_root(mine, plan.info.at("options"), "options", plan.stage);
}

Dataset worker_dataset(const StageEnv& env, const std::string& own_spec, const StagePlan& plan) {
  const std::string spec = own_spec.empty() ? plan.info.at("data").get<std::string>() : own_spec;
  Dataset dataset = load_dataset_logged(env, spec);
  const std::string fingerprint = dataset_fingerprint(dataset);
  if (fingerprint != plan.info.at("dataset").get<std::string>())
    throw dist::DistError(
        fmt::format("{}: rank {} read other data from {} than rank 0 did from {}: every node needs "
                    "the same dataset (the same files, at any path)",
                    plan.stage, dist::current_rank(), spec, plan.info.at("data").get<std::string>()));
  return dataset;
}

json distributed_json(int ranks, double comm_seconds, int64_t comm_bytes, int64_t steps) {
  const double n = static_cast<double>(std::max<int64_t>(1, steps));
  return {{"ranks", ranks},
          {"comm_seconds", comm_seconds},
          {"comm_bytes", comm_bytes},
          {"comm_ms_per_step", 1000.0 * comm_seconds / n},
          {"comm_bytes_per_step", static_cast<double>(comm_bytes) / n}};
}

ScratchDir::ScratchDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "defuse-rank-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw IoError("distributed: cannot create a scratch directory in " + pattern);
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path ScratchDir::write(const std::string& name, const std::string& bytes) const {
  auto p = path_ / name;
  write_file_atomic(p, bytes);
  return p;
}

}  // namespace defuse
