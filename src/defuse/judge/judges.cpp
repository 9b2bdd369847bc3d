#include "defuse/judge/judges.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "defuse/correct/correct.h"
#include "defuse/data/dataset.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/train/train_classifier.h"

namespace defuse {

namespace {

constexpr const char* kStage = kJudgesStage;

std::string judge_artifact(size_t i) { return fmt::format("judges/judge-{}.pt", i + 1); }

}  // namespace

at::Tensor confident(const JudgeReading& r, const VerdictRule& rule) {
  // A hair below the thresholds, so that "all of 3 judges" (agreement 1.0) and rounding in
  // float32 never fail a rule they meet.
  return r.agreement.ge(rule.min_agreement - 1e-6).logical_and(r.confidence.ge(rule.min_confidence - 1e-6));
}

at::Tensor failure_verdicts(const JudgeReading& r, const at::Tensor& seed_label, const at::Tensor& predicted,
                            const VerdictRule& rule) {
  auto sure = confident(r, rule);
  auto out = torch::full({r.size()}, static_cast<int8_t>(Verdict::kAmbiguous), torch::kInt8);
  out.masked_fill_(sure.logical_and(r.label.eq(seed_label)), static_cast<int8_t>(Verdict::kGenuine));
  out.masked_fill_(sure.logical_and(r.label.eq(predicted)), static_cast<int8_t>(Verdict::kLabelChange));
  return out;
}

// ---------------------------------------------------------------------------------------
// JudgePanel

JudgePanel::JudgePanel() = default;
JudgePanel::~JudgePanel() = default;
JudgePanel::JudgePanel(JudgePanel&&) noexcept = default;
JudgePanel& JudgePanel::operator=(JudgePanel&&) noexcept = default;

void JudgePanel::add(std::unique_ptr<Classifier> model, JudgeInfo info) {
  models_.push_back(std::move(model));
  info_.push_back(std::move(info));
}

int64_t JudgePanel::size() const { return static_cast<int64_t>(models_.size()); }

Classifier& JudgePanel::model(int64_t i) { return *models_.at(static_cast<size_t>(i)); }

JudgeReading JudgePanel::read(const at::Tensor& images_u8, c10::Device device, int64_t batch_size) {
  if (empty()) throw Error("judges: reading with an empty panel");
  const int64_t n = images_u8.size(0), j = size();
  JudgeReading out;
  out.votes = torch::empty({j, n}, torch::kLong);
  at::Tensor mean;
  for (int64_t i = 0; i < j; ++i) {
    auto& m = *models_[static_cast<size_t>(i)];
    m.to(device);
    auto p = torch::softmax(predict_logits(m, images_u8, batch_size, device), 1);  // [N, K]
    if (i > 0 && p.size(1) != mean.size(1))
      throw ModelError(fmt::format("judges: {} outputs {} classes but {} outputs {}", info_[i].name, p.size(1),
                                   info_[0].name, mean.size(1)));
    out.votes[i].copy_(p.argmax(1));
    mean = i == 0 ? p : mean + p;
  }
  mean /= static_cast<double>(j);
  auto [confidence, label] = mean.max(1);
  out.label = label.contiguous();
  out.confidence = confidence.to(torch::kFloat32).contiguous();
  out.agreement = out.votes.eq(label.unsqueeze(0)).to(torch::kFloat32).mean(0).contiguous();
  return out;
}

// ---------------------------------------------------------------------------------------
// Training

void TrainJudgesOptions::validate() const {
  check_option(epochs > 0, kStage, "--epochs must be positive (got " + std::to_string(epochs) + ")");
  check_option(batch_size > 0, kStage, "--batch-size must be positive (got " + std::to_string(batch_size) + ")");
  for (const auto& a : archs) {
    const auto& zoo = zoo_architectures();
    check_option(a == "auto" || std::find(zoo.begin(), zoo.end(), a) != zoo.end(), kStage,
                 "unknown judge architecture '" + a + "' (expected auto, cnn, resnet or mlp)");
  }
}

std::vector<std::string> default_judge_archs(int64_t /*channels*/, int64_t /*height*/, int64_t /*width*/) {
  // Judges of architectures other than each other: one like the zoo's default for the shape
  // (trained with another seed and augmentation), one of another family, the MLP (the small
  // ResNet costs 15x the CNN's time on MNIST: 1,658 s against 107 s for 3 epochs, and 35x on
  // GTSRB), and a second CNN with its own seed: with the three, the independent reader
  // confirms 82-88% of MNIST's kept failures (three searches), with cnn + mlp 74% at 0.9 and
  // 56-87% at 0.93 (docs/benchmarks.md, "Validity"). On GTSRB the three take 54 s (cnn
  // 98.17%, mlp 85.07%, cnn 97.66%) where resnet + cnn would take about 9 minutes (the ResNet's
  // 162 s an epoch).
  return {"cnn", "mlp", "cnn"};
}

TrainJudgesResult train_judges(const Dataset& dataset, const TrainJudgesOptions& options) {
  options.validate();
  auto device = parse_device(options.device, kStage);
  TrainJudgesResult out;
  // The user's judges first, and all of them checked before any training starts.
  for (const auto& file : options.files) {
    auto model = load_classifier(file, device);
    validate_classifier(*model, dataset, "judge " + file);
    auto eval = evaluate_classifier(*model, dataset.test, dataset, 1000, options.device);
    model->to(torch::kCPU);
    JudgeInfo info;
    info.name = fmt::format("judge-{}", out.panel.size() + 1);
    info.origin = file;
    info.arch = model->spec().arch;
    info.test_accuracy = eval.accuracy;
    out.panel.add(std::move(model), info);
  }
  std::vector<std::string> archs;
  for (const auto& a : options.archs) {
    if (a != "auto") {
      archs.push_back(a);
      continue;
    }
    for (const auto& d : default_judge_archs(dataset.channels, dataset.height, dataset.width)) archs.push_back(d);
  }
  for (size_t i = 0; i < archs.size(); ++i) {
    TrainClassifierOptions t;
    t.arch = archs[i];
    t.epochs = options.epochs;
    t.batch_size = options.batch_size;
    t.augment = options.augment;
    t.seed = derive_seed(options.seed, i + 1);
    t.device = options.device;
    t.precision = options.precision;
    if (options.on_progress)
      t.on_progress = [&, i](const TrainProgress& p) {
        options.on_progress(static_cast<int>(i) + 1, static_cast<int>(archs.size()), p);
      };
    auto r = train_classifier(dataset, t);
    JudgeInfo info;
    info.name = fmt::format("judge-{}", out.panel.size() + 1);
    info.origin = "trained";
    info.arch = r.model->spec().arch;
    info.seed = t.seed;
    info.test_accuracy = r.test.accuracy;
    info.seconds = r.seconds;
    out.panel.add(std::move(r.model), info);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> save_judges(Workspace& workspace, JudgePanel& panel) {
  std::vector<std::pair<std::string, std::string>> artifacts;
  for (int64_t i = 0; i < panel.size(); ++i) {
    const std::string rel = judge_artifact(static_cast<size_t>(i));
    write_atomic_via(workspace.path(rel), [&](const std::filesystem::path& tmp) { panel.model(i).save(tmp); });
    artifacts.emplace_back(panel.info()[static_cast<size_t>(i)].name, rel);
  }
  return artifacts;
}

std::vector<std::pair<JudgeInfo, std::filesystem::path>> workspace_judge_files(Workspace& workspace,
                                                                               std::string* fingerprint) {
  std::vector<std::pair<JudgeInfo, std::filesystem::path>> out;
  if (fingerprint) fingerprint->clear();
  auto record = workspace.latest(kJudgesStage);
  if (!record) return out;
  StageRecord r = workspace.require(kJudgesStage, "train-judges");
  const auto& listed = r.metrics.value("judges", nlohmann::json::array());
  for (size_t i = 0; i < listed.size(); ++i) {
    const auto& j = listed[i];
    const std::string name = j.value("name", fmt::format("judge-{}", i + 1));
    const ArtifactRecord* a = r.artifact(name);
    if (!a)
      throw StateError(
          fmt::format("train-judges: run {} lists {} but recorded no file for it: run `defuse "
                      "train-judges` again",
                      r.id, name));
    JudgeInfo info;
    info.name = name;
    info.origin = j.value("origin", std::string("trained"));
    info.arch = j.value("arch", std::string());
    info.seed = j.value("seed", uint64_t{0});
    info.test_accuracy = j.value("test_accuracy", -1.0);
    out.emplace_back(info, workspace.path(a->path));
  }
  if (fingerprint) *fingerprint = r.fingerprint;
  return out;
}

JudgePanel load_workspace_judges(Workspace& workspace, c10::Device device, std::string* fingerprint) {
  JudgePanel panel;
  for (auto& [info, path] : workspace_judge_files(workspace, fingerprint))
    panel.add(load_classifier(path, device), info);
  return panel;
}

}  // namespace defuse
