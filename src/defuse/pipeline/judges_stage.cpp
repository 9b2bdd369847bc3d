#include "defuse/pipeline/judges_stage.h"

#include <fmt/format.h>

#include "defuse/base/hash.h"
#include "defuse/base/progress.h"
#include "defuse/data/fingerprint.h"
#include "defuse/model/device.h"
#include "defuse/pipeline/distributed_stage.h"
#include "defuse/train/train_classifier.h"

namespace defuse {

using nlohmann::json;

json options_json(const JudgesStageOptions& o, const std::string& data, const std::vector<std::string>& archs,
                  const std::string& device) {
  const TrainJudgesOptions& t = o.train;
  json options = {{"data", data},         {"archs", archs}, {"files", t.files}, {"epochs", t.epochs},
                  {"augment", t.augment}, {"seed", t.seed}, {"device", device}};
  // fp32 stays out, so that fingerprints of before the option still match.
  const std::string precision = resolve_precision(t.precision, device);
  if (precision != "fp32" && !archs.empty()) options["precision"] = precision;
  // Likewise the batch size judges trained with before the option (the classifier's default).
  constexpr int64_t kBatchBeforeTheOption = 128;
  if (t.batch_size != kBatchBeforeTheOption) options["batch_size"] = t.batch_size;
  return options;
}

JudgesStageResult run_judges_stage(const StageEnv& env, JudgesStageOptions o) {
  prepare_compute(env);
  o.train.device = env.device;
  parse_device(env.device, "train-judges");
  if (o.train.archs.size() == 1 && o.train.archs.front() == "none") o.train.archs.clear();
  o.train.validate();
  auto lock = hold_workspace(env, "train-judges");
  Workspace workspace(env.workspace);
  const std::string spec = resolve_data_spec(workspace, o.data);
  Dataset dataset = load_dataset_logged(env, spec);
  std::vector<std::string> archs;
  for (const auto& a : o.train.archs)
    if (a == "auto")
      for (const auto& d : default_judge_archs(dataset.channels, dataset.height, dataset.width)) archs.push_back(d);
    else
      archs.push_back(a);
  json files = json::array();
  for (const auto& f : o.train.files) files.push_back(hash_file(f));
  json inputs = {{"dataset", dataset_fingerprint(dataset)}, {"files", files}};

  std::unique_ptr<Progress> bar;
  o.train.on_progress = [&](int judge, int judges, const TrainProgress& p) {
    if (p.batch == 1) {
      if (bar) bar->finish();
      bar = std::make_unique<Progress>(env.log(),
                                       fmt::format("judge {}/{} epoch {}/{}", judge, judges, p.epoch, p.epochs),
                                       p.batches, env.progress());
    }
    bar->update(p.batch, fmt::format("loss {:.4f}  acc {}", p.loss, percent(p.accuracy)));
  };
  JudgesStageResult r;
  PlanSender plan(kJudgesStage);
  const json options = options_json(o, spec, archs, env.device);
  StageRun run = run_stage(env, workspace, kJudgesStage, options, inputs, [&](int64_t) {
    json info = plan_info(options, spec, inputs["dataset"].get<std::string>());
    info["archs"] = archs;
    plan.send({kJudgesStage, true, info});
    auto result = train_judges(dataset, o.train);
    if (bar) bar->finish();
    json judges = json::array();
    std::vector<std::string> described;
    for (const auto& j : result.panel.info()) {
      judges.push_back({{"name", j.name},
                        {"origin", j.origin},
                        {"arch", j.arch},
                        {"seed", j.seed},
                        {"test_accuracy", j.test_accuracy},
                        {"seconds", j.seconds}});
      described.push_back(fmt::format("{} ({}, test accuracy {})", j.name, j.origin == "trained" ? j.arch : j.origin,
                                      percent(j.test_accuracy)));
    }
    r.text = result.panel.empty() ? std::string("train-judges: no judges (failures will not be checked)")
                                  : fmt::format("train-judges: {}", fmt::join(described, ", "));
    return Workspace::StageOutput{
        {{"judges", judges}, {"count", result.panel.size()}}, save_judges(workspace, result.panel), nullptr};
  });
  take_run(r, run);
  r.count = need(r.summary, "count", "train-judges").get<int64_t>();
  return r;
}

void run_judges_worker(const StageEnv& env, JudgesStageOptions o, const StagePlan& plan) {
  prepare_compute(env);
  o.train.device = env.device;
  if (o.train.archs.size() == 1 && o.train.archs.front() == "none") o.train.archs.clear();
  const auto archs = plan.info.at("archs").get<std::vector<std::string>>();
  check_options(options_json(o, plan.info.at("data").get<std::string>(), archs, env.device), plan);
  Dataset dataset = worker_dataset(env, o.data, plan);
  // The user's judges are only scored, on rank 0 (their files may exist only there); the
  // trained ones train together, judge i with the same seed on every rank.
  o.train.files.clear();
  o.train.archs = archs;
  train_judges(dataset, o.train);
}

}  // namespace defuse
