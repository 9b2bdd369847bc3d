// The pipeline on several ranks (DESIGN §6, "Distribution"). Rank 0 runs every command as one
// process does and owns the workspace; the other ranks never open it. When rank 0 reaches a
// stage that computes in parallel (train-classifier, train-judges, train-vae, identify,
// correct) it sends a StagePlan: whether the stage runs (it may be up to date), the options
// and dataset fingerprint every rank must share, and what it read from the workspace (model
// files, tensors). The other ranks serve plans (serve_rank0) until rank 0 ends the command,
// each with the worker side of the stage (run_<stage>_worker), which computes its share and
// hands its results back through the stage's collectives. Stages that stay on rank 0
// (distill, annotate, evaluate, report) send no plan.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "defuse/base/stage_env.h"
#include "defuse/data/dataset.h"

namespace defuse::dist {
class StageName;
}

namespace defuse {

struct StagePlan {
  std::string stage;                               // the stage rank 0 runs
  bool run = false;                                // false: up to date on rank 0 (or it stopped before computing)
  nlohmann::json info = nlohmann::json::object();  // options, dataset fingerprint, figures
  std::vector<std::string> files;                  // artifacts' bytes (model files)
  std::vector<at::Tensor> tensors;                 // CPU tensors
};

// In a distributed run, on a rank other than 0.
bool worker_rank();
// In a distributed run, on rank 0.
bool root_of_many();

// Rank 0: the plan of one stage, sent exactly once: send() at the start of the work, or, if
// the driver leaves without sending (the stage was up to date), a plan with run = false.
class PlanSender {
 public:
  explicit PlanSender(std::string stage);
  ~PlanSender();
  PlanSender(const PlanSender&) = delete;
  PlanSender& operator=(const PlanSender&) = delete;
  void send(StagePlan plan);

 private:
  std::string stage_;
  bool sent_ = false;
  std::unique_ptr<dist::StageName> name_;  // the stage named in this rank's collective errors
};

// The other ranks: handle rank 0's plans until it ends the command. A plan for a stage
// without a handler (rank 0 runs another command) and rank 0's error both throw DistError.
using StageHandlers = std::map<std::string, std::function<void(const StagePlan&)>>;
void serve_rank0(const StageEnv& env, const StageHandlers& handlers);

// Rank 0, at the end of a command: the other ranks stop serving (with `error`, they stop
// with it, naming rank 0). No-op outside a distributed run.
void end_workers(const std::string& error = "");

// Rank 0's plan info for a stage: its fingerprint options without the data spec (each node
// reads the data from its own path) and the device (each rank its own GPU), the spec itself,
// and the data's content fingerprint.
nlohmann::json plan_info(nlohmann::json options, const std::string& spec, const std::string& dataset_fingerprint);
// A worker's check of its own fingerprint options against rank 0's (DistError naming the key).
void check_options(nlohmann::json mine, const StagePlan& plan);
// A worker's dataset: from its own spec when it gave one, else from rank 0's; its content must
// be rank 0's (DistError otherwise).
Dataset worker_dataset(const StageEnv& env, const std::string& own_spec, const StagePlan& plan);

// A training stage's figures on several ranks: ranks, rank 0's seconds in gradient
// allreduces, and bytes and seconds per step.
nlohmann::json distributed_json(int ranks, double comm_seconds, int64_t comm_bytes, int64_t steps);

// A worker's private directory for the files rank 0 sent (removed with it); never the workspace.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  // Writes `bytes` as `name` inside it and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& bytes) const;

 private:
  std::filesystem::path path_;
};

}  // namespace defuse
