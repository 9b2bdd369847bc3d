// Classifiers: the zoo of native torch::nn models and the user's TorchScript models behind
// one interface. Every classifier takes images as float in [0, 1], [N, C, H, W]; input
// normalisation lives inside the model, so callers never need to know its statistics.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace defuse {

struct Dataset;

// What a classifier expects and produces.
struct ClassifierSpec {
  std::string arch;  // zoo architecture name, or "torchscript"
  int64_t channels = 0, height = 0, width = 0;
  int64_t num_classes = 0;
  std::vector<double> mean, std;  // per-channel input normalisation (zoo models)
};

class Classifier {
 public:
  virtual ~Classifier() = default;
  // images: float [N, C, H, W] in [0, 1] on the model's device -> logits [N, num_classes].
  virtual at::Tensor forward(const at::Tensor& images) = 0;
  virtual std::vector<at::Tensor> parameters() = 0;
  // Batch-norm running statistics and other non-trained state (data-parallel training keeps
  // them the same on every rank).
  virtual std::vector<at::Tensor> buffers() = 0;
  virtual void set_training(bool training) = 0;
  // Puts every batch-norm layer in eval mode (running statistics used and left unchanged),
  // the rest as it is: fine-tuning on a mix of real and decoded images would otherwise shift
  // the statistics the model was trained with.
  virtual void freeze_batch_norm() = 0;
  virtual void to(c10::Device device) = 0;
  // Writes the checkpoint to `path` (callers make it atomic with write_atomic_via).
  virtual void save(const std::filesystem::path& path) = 0;
  // A deep copy (fine-tuning starts from copies of the trained model).
  virtual std::unique_ptr<Classifier> clone() const = 0;
  const ClassifierSpec& spec() const { return spec_; }

 protected:
  explicit Classifier(ClassifierSpec spec) : spec_(std::move(spec)) {}
  ClassifierSpec spec_;
};

// Architecture names of the zoo, and which one "auto" picks for an input shape ("cnn" for
// every shape today: the ResNet cost 35x the time on GTSRB for a lower test accuracy).
const std::vector<std::string>& zoo_architectures();
std::string auto_architecture(int64_t channels, int64_t height, int64_t width);

// A fresh zoo model with randomly initialised weights (from the global torch seed).
// Throws ConfigError for an unknown architecture or one that cannot take the input shape.
std::unique_ptr<Classifier> make_classifier(const ClassifierSpec& spec);

// Loads a classifier file: a defuse zoo checkpoint (recognised by its metadata) or a user's
// TorchScript module. Throws ModelError when the file is neither.
std::unique_ptr<Classifier> load_classifier(const std::filesystem::path& path, c10::Device device);

// Checks that `model` takes the dataset's images and outputs one logit per class, by
// running it on two images of the dataset's shape. Throws ModelError naming `what`, and
// `against` for what the shape and classes are those of.
void validate_classifier(Classifier& model, const Dataset& dataset, const std::string& what,
                         const std::string& against = "the dataset");

// Writes `model` as a TorchScript module taking float [N, C, H, W] images in [0, 1] and
// returning [N, classes] logits, loadable in Python with torch.jit.load and by defuse as a
// classifier: a user's TorchScript classifier as itself (in eval mode), a zoo model as a
// generated inference-mode module (batch norm with its running statistics, dropout off,
// normalisation inside, the zoo metadata in a string attribute `defuse_zoo`: not
// `defuse_meta`, which marks a zoo checkpoint). The caller makes the write atomic
// (write_atomic_via).
void export_torchscript(Classifier& model, const std::filesystem::path& path);

// Logits for uint8 images [N, C, H, W] (CPU), computed in batches in eval mode without
// gradients; returns float [N, num_classes] on the CPU.
at::Tensor predict_logits(Classifier& model, const at::Tensor& images_u8, int64_t batch_size, c10::Device device);

}  // namespace defuse
