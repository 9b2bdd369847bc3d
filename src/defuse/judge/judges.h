// Judges (DESIGN §3, "Validity"): classifiers other than the one under test that read every
// found failure. A decode is a failure of the classifier only if a careful reader gives it
// the seed's label; a decode that has turned into another class, where the classifier is
// right, is a false alarm, and training on it makes the model worse. The judges tell the two
// apart so that the annotator does not have to.
//
// A panel holds the judges defuse trains itself (zoo models of other architectures and seeds
// than the classifier's, with augmentation) and the user's own (`--judge FILE.pt`, a
// TorchScript model they trust more). Its reading of an image is the consensus of its
// judges: the class with the highest mean probability, how many judges pick it, and that
// mean probability. A failure's verdict compares the reading with the seed's label and the
// classifier's prediction:
//   genuine       the judges read the seed's label (the classifier is wrong here)
//   label change  the judges read what the classifier read (the decode crossed into that
//                 class; the classifier is right)
//   ambiguous     anything else (the judges disagree, are unsure, or read a third class)
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "defuse/judge/verdict.h"

namespace defuse {

class Classifier;
class Workspace;
struct Dataset;
struct TrainProgress;

inline constexpr const char* kJudgesStage = "train-judges";

struct JudgeReading {
  at::Tensor label;       // int64 [N]: the consensus class (highest mean probability)
  at::Tensor agreement;   // float32 [N]: share of the judges whose own argmax is that class
  at::Tensor confidence;  // float32 [N]: the consensus class's mean probability
  at::Tensor votes;       // int64 [J, N]: each judge's argmax
  int64_t size() const { return label.defined() ? label.size(0) : 0; }
};

// Whether each reading passes `rule` (agreement and confidence at least the thresholds).
at::Tensor confident(const JudgeReading& reading, const VerdictRule& rule);  // bool [N]

// The verdict of each of N failures (int8 [N], Verdict values) from the judges' reading, the
// seed labels [N] and the classifier's predictions [N].
at::Tensor failure_verdicts(const JudgeReading& reading, const at::Tensor& seed_label, const at::Tensor& predicted,
                            const VerdictRule& rule);

struct JudgeInfo {
  std::string name;           // "judge-1"
  std::string origin;         // "trained" or the user's file
  std::string arch;           // zoo architecture or "torchscript"
  uint64_t seed = 0;          // trained judges
  double test_accuracy = -1;  // on the dataset's test split
  double seconds = 0;         // training time
};

// The judges of a workspace, loaded for reading.
class JudgePanel {
 public:
  JudgePanel();
  ~JudgePanel();
  JudgePanel(JudgePanel&&) noexcept;
  JudgePanel& operator=(JudgePanel&&) noexcept;

  void add(std::unique_ptr<Classifier> model, JudgeInfo info);
  int64_t size() const;
  bool empty() const { return size() == 0; }
  const std::vector<JudgeInfo>& info() const { return info_; }
  Classifier& model(int64_t i);

  // Reads uint8 images [N, C, H, W] (CPU) with every judge (eval mode, no gradients).
  JudgeReading read(const at::Tensor& images_u8, c10::Device device, int64_t batch_size = 500);

 private:
  std::vector<std::unique_ptr<Classifier>> models_;
  std::vector<JudgeInfo> info_;
};

struct TrainJudgesOptions {
  // Zoo architectures of the judges defuse trains, one judge each ("auto": the list of
  // default_judge_archs, cnn,mlp,cnn today). Each gets its own seed, and augmentation, so that its
  // blind spots differ from the classifier's.
  std::vector<std::string> archs{"auto"};
  std::vector<std::string> files;  // the user's judges (TorchScript or defuse checkpoints)
  int epochs = 3;                  // passes over the training split per trained judge
  int64_t batch_size = 128;        // training batch size of each trained judge
  bool augment = true;             // random shifts (the classifier trains without by default)
  uint64_t seed = 1;               // judge i trains with derive_seed(seed, i): never the classifier's seed 0
  std::string device = "cpu";      // cpu or cuda[:N]
  std::string precision = "fp32";  // of the judges' training (TrainClassifierOptions::precision); fp32 by default:
                                   // bf16 judges (57 s against 1 min 24 s) kept 23 and 43 failures where fp32's
                                   // kept 40 and 49, and gave 4 genuine scenarios where fp32's gave 5 and 6
                                   // (docs/benchmarks.md, "Time to result: the levers of issue 16")
  std::function<void(int judge, int judges, const TrainProgress&)> on_progress;

  void validate() const;  // throws ConfigError
};

// The architectures "auto" stands for on images of this shape (measured: docs/benchmarks.md).
std::vector<std::string> default_judge_archs(int64_t channels, int64_t height, int64_t width);

struct TrainJudgesResult {
  JudgePanel panel;  // the user's judges first, then the trained ones; models on the CPU
};

// Loads and checks every user judge against the dataset first (ModelError naming the file
// for another input shape or number of classes: refused before any training), then trains the
// zoo judges, and scores every judge on the test split.
TrainJudgesResult train_judges(const Dataset& dataset, const TrainJudgesOptions& options);

// Moving the panel in and out of a workspace: judges/judge-<i>.pt (zoo checkpoints, or the
// user's TorchScript file as it is) and the stage's metrics, which list them.
std::vector<std::pair<std::string, std::string>> save_judges(Workspace& workspace, JudgePanel& panel);
// The judges of the latest complete train-judges stage (an empty panel when the workspace has
// none), with its fingerprint in `fingerprint` ("" without one).
JudgePanel load_workspace_judges(Workspace& workspace, c10::Device device, std::string* fingerprint = nullptr);
// The same judges' descriptions and files, unloaded.
std::vector<std::pair<JudgeInfo, std::filesystem::path>> workspace_judge_files(Workspace& workspace,
                                                                               std::string* fingerprint = nullptr);

}  // namespace defuse
