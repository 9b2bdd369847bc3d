#include "defuse/model/classifier.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <sstream>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"
#include "defuse/model/tensors.h"

namespace defuse {
namespace nn = torch::nn;
using nlohmann::json;

namespace {

constexpr const char* kMetaKey = "defuse_meta";

// The informative line of a LibTorch or TorchScript error: the "...Error: ..." line of a
// script traceback, else the first line without the C++ backtrace.
std::string torch_error_summary(const std::exception& e) {
  std::string text = e.what();
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) text = c10->what_without_backtrace();
  std::istringstream lines(text);
  std::string line, first, error_line;
  while (std::getline(lines, line)) {
    if (first.empty() && !line.empty()) first = line;
    if (line.find("Error: ") != std::string::npos) error_line = line;
  }
  std::string out = error_line.empty() ? first : error_line;
  while (!out.empty() && out.front() == ' ') out.erase(out.begin());
  return out.substr(0, 300);
}

// Normalises [0, 1] inputs with the training set's per-channel statistics (kept as buffers
// so they travel with the checkpoint).
struct NormalizeImpl : nn::Module {
  NormalizeImpl(const std::vector<double>& mean, const std::vector<double>& std) {
    auto c = static_cast<int64_t>(mean.size());
    mean_ = register_buffer("mean", torch::tensor(mean, torch::kFloat32).view({1, c, 1, 1}));
    inv_std_ = register_buffer("inv_std", torch::tensor(std, torch::kFloat32).reciprocal().view({1, c, 1, 1}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return (x - mean_) * inv_std_; }
  torch::Tensor mean_, inv_std_;
};
TORCH_MODULE(Normalize);

// 3x3 convolution, batch norm, ReLU.
struct ConvBnReluImpl : nn::Module {
  ConvBnReluImpl(int64_t in, int64_t out, int64_t stride = 1) {
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn = register_module("bn", nn::BatchNorm2d(out));
  }
  torch::Tensor forward(const torch::Tensor& x) { return torch::relu(bn(conv(x))); }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(ConvBnRelu);

// "cnn": two blocks of two 3x3 convolutions (16 then 32 channels) with batch norm, each
// followed by 2x2 max pooling, then a 128-unit hidden layer with dropout. Widths chosen by
// measurement: 32/64 channels trained 5x slower per epoch here (oneDNN is memory-bound on
// 28x28 maps) for no accuracy gain at 1-2 epochs. Any input side divisible by 4.
nn::Sequential make_cnn(const ClassifierSpec& s) {
  int64_t flat = 32 * (s.height / 4) * (s.width / 4);
  return nn::Sequential(ConvBnRelu(s.channels, 16), ConvBnRelu(16, 16), nn::MaxPool2d(2), ConvBnRelu(16, 32),
                        ConvBnRelu(32, 32), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(flat, 128),
                        nn::ReLU(nn::ReLUOptions(true)), nn::Dropout(0.3), nn::Linear(128, s.num_classes));
}

// A residual block with two 3x3 convolutions (He et al. 2016, "basic block").
struct BasicBlockImpl : nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {
      shortcut_conv =
          register_module("shortcut_conv", nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      shortcut_bn = register_module("shortcut_bn", nn::BatchNorm2d(out));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    return torch::relu(y + (shortcut_conv ? shortcut_bn(shortcut_conv(x)) : x));
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Conv2d shortcut_conv{nullptr};
  nn::BatchNorm2d shortcut_bn{nullptr};
};
TORCH_MODULE(BasicBlock);

// "resnet": a small ResNet for 3-channel images (stem 32, stages 32/64/128 with two
// basic blocks each, global average pooling): a ResNet-20-like network at 1/2 the depth.
nn::Sequential make_resnet(const ClassifierSpec& s) {
  return nn::Sequential(ConvBnRelu(s.channels, 32), BasicBlock(32, 32, 1), BasicBlock(32, 32, 1), BasicBlock(32, 64, 2),
                        BasicBlock(64, 64, 1), BasicBlock(64, 128, 2), BasicBlock(128, 128, 1),
                        nn::AdaptiveAvgPool2d(1), nn::Flatten(), nn::Linear(128, s.num_classes));
}

// "mlp": a two-layer perceptron, the weakest baseline (and the fastest to train).
nn::Sequential make_mlp(const ClassifierSpec& s) {
  return nn::Sequential(nn::Flatten(), nn::Linear(s.channels * s.height * s.width, 512),
                        nn::ReLU(nn::ReLUOptions(true)), nn::Linear(512, 256), nn::ReLU(nn::ReLUOptions(true)),
                        nn::Linear(256, s.num_classes));
}

struct ZooNetImpl : nn::Module {
  explicit ZooNetImpl(const ClassifierSpec& s) {
    normalize = register_module("normalize", Normalize(s.mean, s.std));
    if (s.arch == "cnn")
      body = make_cnn(s);
    else if (s.arch == "resnet")
      body = make_resnet(s);
    else
      body = make_mlp(s);
    register_module("body", body);
  }
  torch::Tensor forward(const torch::Tensor& x) { return body->forward(normalize(x)); }
  Normalize normalize{nullptr};
  nn::Sequential body{nullptr};
};
TORCH_MODULE(ZooNet);

json spec_to_json(const ClassifierSpec& s) {
  return {{"format", "defuse-classifier-1"},
          {"arch", s.arch},
          {"channels", s.channels},
          {"height", s.height},
          {"width", s.width},
          {"num_classes", s.num_classes},
          {"mean", s.mean},
          {"std", s.std}};
}

ClassifierSpec spec_from_json(const json& j) {
  ClassifierSpec s;
  s.arch = j.at("arch").get<std::string>();
  s.channels = j.at("channels");
  s.height = j.at("height");
  s.width = j.at("width");
  s.num_classes = j.at("num_classes");
  s.mean = j.at("mean").get<std::vector<double>>();
  s.std = j.at("std").get<std::vector<double>>();
  return s;
}

// Builds a TorchScript module equivalent to a zoo network in inference mode (batch norm with
// its running statistics, dropout off), from the network's own layers: its parameters and
// buffers are copied in under generated names and its forward is generated as TorchScript
// source calling the same ATen operators. No Python and no tracer needed.
class ScriptEmitter {
 public:
  explicit ScriptEmitter(const ClassifierSpec& spec) : module_("DefuseZoo" + spec.arch) {}

  torch::jit::Module emit(ZooNetImpl& net, const ClassifierSpec& spec) {
    code_ = "def forward(self, x):\n";
    line("x = (x - " + buffer("norm_mean", net.normalize->mean_) + ") * " +
         buffer("norm_inv_std", net.normalize->inv_std_));
    for (const auto& child : net.body->children()) layer(*child);
    line("return x");
    module_.register_attribute("defuse_zoo", c10::StringType::get(), spec_to_json(spec).dump());
    module_.define(code_);
    module_.eval();
    return module_;
  }

 private:
  void line(const std::string& text) { code_ += "    " + text + "\n"; }
  std::string name(const std::string& what) { return "l" + std::to_string(counter_++) + "_" + what; }
  std::string param(const std::string& what, const torch::Tensor& t) {
    auto n = name(what);
    module_.register_parameter(n, t.detach().clone().contiguous(), false);
    return "self." + n;
  }
  std::string buffer(const std::string& what, const torch::Tensor& t) {
    auto n = name(what);
    module_.register_buffer(n, t.detach().clone().contiguous());
    return "self." + n;
  }
  static std::string ints(const c10::ArrayRef<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
  }
  std::string conv(const std::string& in, nn::Conv2dImpl& c) {
    const auto& o = c.options;
    const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    if (!pad) throw ModelError("export: unsupported convolution padding mode");
    return "torch.conv2d(" + in + ", " + param("conv_w", c.weight) + ", " +
           (c.bias.defined() ? param("conv_b", c.bias) : std::string("None")) + ", " + ints(*o.stride()) + ", " +
           ints(**pad) + ", " + ints(*o.dilation()) + ", " + std::to_string(o.groups()) + ")";
  }
  std::string bn(const std::string& in, nn::BatchNorm2dImpl& b) {
    return "torch.batch_norm(" + in + ", " + param("bn_w", b.weight) + ", " + param("bn_b", b.bias) + ", " +
           buffer("bn_mean", b.running_mean) + ", " + buffer("bn_var", b.running_var) + ", False, 0.0, " +
           fmt::format("{:.17g}", b.options.eps()) + ", True)";
  }
  void layer(nn::Module& m) {
    if (auto* c = dynamic_cast<ConvBnReluImpl*>(&m)) {
      line("x = torch.relu(" + bn(conv("x", *c->conv), *c->bn) + ")");
    } else if (auto* b = dynamic_cast<BasicBlockImpl*>(&m)) {
      line("y = torch.relu(" + bn(conv("x", *b->conv1), *b->bn1) + ")");
      line("y = " + bn(conv("y", *b->conv2), *b->bn2));
      if (b->shortcut_conv)
        line("x = torch.relu(y + " + bn(conv("x", *b->shortcut_conv), *b->shortcut_bn) + ")");
      else
        line("x = torch.relu(y + x)");
    } else if (auto* p = dynamic_cast<nn::MaxPool2dImpl*>(&m)) {
      const auto& o = p->options;
      line("x = torch.max_pool2d(x, " + ints(*o.kernel_size()) + ", " + ints(*o.stride()) + ", " + ints(*o.padding()) +
           ", " + ints(*o.dilation()) + ", " + (o.ceil_mode() ? "True" : "False") + ")");
    } else if (auto* a = dynamic_cast<nn::AdaptiveAvgPool2dImpl*>(&m)) {
      const auto& size = a->options.output_size();
      line("x = torch.adaptive_avg_pool2d(x, [" + std::to_string(*(*size)[0]) + ", " + std::to_string(*(*size)[1]) +
           "])");
    } else if (dynamic_cast<nn::FlattenImpl*>(&m)) {
      line("x = torch.flatten(x, 1)");
    } else if (auto* l = dynamic_cast<nn::LinearImpl*>(&m)) {
      line("x = torch.linear(x, " + param("fc_w", l->weight) + ", " +
           (l->bias.defined() ? param("fc_b", l->bias) : std::string("None")) + ")");
    } else if (dynamic_cast<nn::ReLUImpl*>(&m)) {
      line("x = torch.relu(x)");
    } else if (dynamic_cast<nn::DropoutImpl*>(&m)) {
      // inference: identity
    } else {
      throw ModelError("export: no TorchScript form for layer " + m.name());
    }
  }

  torch::jit::Module module_;
  std::string code_;
  int counter_ = 0;
};

class ZooClassifier : public Classifier {
 public:
  explicit ZooClassifier(const ClassifierSpec& spec) : Classifier(spec), net_(spec) {}
  ZooClassifier(const ClassifierSpec& spec, ZooNet net) : Classifier(spec), net_(std::move(net)) {}

  at::Tensor forward(const at::Tensor& images) override { return net_->forward(images); }
  std::vector<at::Tensor> parameters() override { return net_->parameters(); }
  std::vector<at::Tensor> buffers() override { return net_->buffers(); }
  void set_training(bool training) override { net_->train(training); }
  void freeze_batch_norm() override {
    for (const auto& m : net_->modules(/*include_self=*/false))
      if (auto* bn = dynamic_cast<nn::BatchNorm2dImpl*>(m.get())) bn->eval();
  }
  void to(c10::Device device) override {
    net_->to(device);
    device_ = device;
  }
  void save(const std::filesystem::path& path) override {
    auto archive = to_archive();
    archive.save_to(path.string());
  }
  std::unique_ptr<Classifier> clone() const override {
    // Round-trip through an in-memory checkpoint: exact, and needs no Cloneable plumbing.
    std::ostringstream bytes;
    to_archive().save_to(bytes);
    torch::serialize::InputArchive in;
    std::istringstream source(bytes.str());
    in.load_from(source, device_);
    auto copy = std::make_unique<ZooClassifier>(spec_);
    copy->net_->load(in);
    copy->to(device_);
    copy->net_->train(net_->is_training());
    return copy;
  }
  ZooNet& net() { return net_; }
  torch::jit::Module to_script() {
    auto was = net_->is_training();
    net_->to(torch::kCPU);
    auto module = ScriptEmitter(spec_).emit(*net_, spec_);
    net_->to(device_);
    net_->train(was);
    return module;
  }

 private:
  torch::serialize::OutputArchive to_archive() const {
    torch::serialize::OutputArchive archive;
    archive.write(kMetaKey, c10::IValue(spec_to_json(spec_).dump()));
    net_->save(archive);
    return archive;
  }

  ZooNet net_;
  c10::Device device_{c10::kCPU};
};

// A user's TorchScript module. Its forward must take [N, C, H, W] float images in [0, 1]
// and return [N, num_classes] logits (see docs/classifiers.md for the export recipe).
class ScriptedClassifier : public Classifier {
 public:
  ScriptedClassifier(ClassifierSpec spec, torch::jit::Module module)
      : Classifier(std::move(spec)), module_(std::move(module)) {}

  at::Tensor forward(const at::Tensor& images) override {
    auto out = module_.forward({images});
    if (!out.isTensor())
      throw ModelError("classifier: TorchScript forward returned a " + out.tagKind() + ", not a tensor");
    return out.toTensor();
  }
  std::vector<at::Tensor> parameters() override {
    std::vector<at::Tensor> out;
    for (const auto& p : module_.parameters()) out.push_back(p);
    return out;
  }
  std::vector<at::Tensor> buffers() override {
    std::vector<at::Tensor> out;
    for (const auto& b : module_.buffers()) out.push_back(b);
    return out;
  }
  void set_training(bool training) override { module_.train(training); }
  void freeze_batch_norm() override {
    // TorchScript keeps no C++ types: recognise batch norm by its qualified type name
    // (torch.nn.modules.batchnorm.BatchNorm1d/2d/3d, SyncBatchNorm).
    for (auto m : module_.modules()) {  // Module is a handle: the copy refers to the same module
      const auto type = m.type()->name();
      if (type && type->qualifiedName().find("BatchNorm") != std::string::npos) m.train(false);
    }
  }
  void to(c10::Device device) override { module_.to(device); }
  void save(const std::filesystem::path& path) override { module_.save(path.string()); }
  std::unique_ptr<Classifier> clone() const override {
    return std::make_unique<ScriptedClassifier>(spec_, module_.deepcopy());
  }
  void set_spec(ClassifierSpec spec) { spec_ = std::move(spec); }

 private:
  torch::jit::Module module_;
};

}  // namespace

const std::vector<std::string>& zoo_architectures() {
  static const std::vector<std::string> names{"cnn", "resnet", "mlp"};
  return names;
}

std::string auto_architecture(int64_t /*channels*/, int64_t /*height*/, int64_t /*width*/) {
  // The cnn on every shape: on GTSRB (3x32x32) it reached 98.29% in 29 s where the small
  // ResNet reached 98.07% in 17 min (docs/benchmarks.md, "Time to result: GTSRB"); the ResNet
  // stays in the zoo (--arch resnet).
  return "cnn";
}

std::unique_ptr<Classifier> make_classifier(const ClassifierSpec& spec_in) {
  ClassifierSpec spec = spec_in;
  if (spec.arch.empty() || spec.arch == "auto") spec.arch = auto_architecture(spec.channels, spec.height, spec.width);
  const auto& names = zoo_architectures();
  if (std::find(names.begin(), names.end(), spec.arch) == names.end())
    throw ConfigError("train-classifier: unknown architecture '" + spec.arch + "' (expected auto, cnn, resnet or mlp)");
  if (spec.channels <= 0 || spec.height <= 0 || spec.width <= 0 || spec.num_classes < 2)
    throw ConfigError("train-classifier: invalid input shape or class count for a classifier");
  if (spec.arch == "cnn" && (spec.height < 4 || spec.width < 4))
    throw ConfigError("train-classifier: architecture cnn needs images of at least 4x4 pixels");
  if (spec.mean.empty()) spec.mean.assign(static_cast<size_t>(spec.channels), 0.5);
  if (spec.std.empty()) spec.std.assign(static_cast<size_t>(spec.channels), 0.25);
  return std::make_unique<ZooClassifier>(spec);
}

std::unique_ptr<Classifier> load_classifier(const std::filesystem::path& path, c10::Device device) {
  if (!std::filesystem::exists(path)) throw IoError("classifier: " + path.string() + " does not exist");
  // A defuse checkpoint is a serialize archive carrying our metadata string.
  std::optional<ClassifierSpec> spec;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string(), device);
    c10::IValue meta;
    if (archive.try_read(kMetaKey, meta) && meta.isString()) spec = spec_from_json(json::parse(meta.toStringRef()));
  } catch (const c10::Error& e) {
    throw ModelError("classifier: " + path.string() + " is neither a defuse checkpoint nor a TorchScript module (" +
                     torch_error_summary(e) + ")");
  } catch (const json::exception& e) {
    throw ModelError("classifier: " + path.string() + " has unreadable metadata: " + e.what());
  }
  if (spec) {
    auto model = std::make_unique<ZooClassifier>(*spec);
    try {
      model->net()->load(archive);
    } catch (const c10::Error& e) {
      throw ModelError("classifier: " + path.string() + " does not match its " + spec->arch +
                       " architecture: " + torch_error_summary(e));
    }
    model->to(device);
    return model;
  }
  try {
    torch::jit::Module module = torch::jit::load(path.string(), device);
    ClassifierSpec s;
    s.arch = "torchscript";
    return std::make_unique<ScriptedClassifier>(s, std::move(module));
  } catch (const c10::Error& e) {
    throw ModelError("classifier: cannot load TorchScript module " + path.string() + ": " + torch_error_summary(e));
  }
}

void validate_classifier(Classifier& model, const Dataset& dataset, const std::string& what,
                         const std::string& against) {
  const auto& s = model.spec();
  if (s.arch != "torchscript") {
    if (s.channels != dataset.channels || s.height != dataset.height || s.width != dataset.width)
      throw ModelError("classifier: " + what + " takes " + std::to_string(s.channels) + "x" + std::to_string(s.height) +
                       "x" + std::to_string(s.width) + " images but " + against + "'s are " +
                       std::to_string(dataset.channels) + "x" + std::to_string(dataset.height) + "x" +
                       std::to_string(dataset.width));
    if (s.num_classes != dataset.num_classes())
      throw ModelError("classifier: " + what + " has " + std::to_string(s.num_classes) + " classes but " + against +
                       " has " + std::to_string(dataset.num_classes()));
  }
  // Run it once on two images of the dataset's shape: catches TorchScript models that take
  // another shape or emit another number of logits.
  torch::NoGradGuard no_grad;
  at::Tensor logits;
  try {
    model.set_training(false);
    auto device = model.parameters().empty() ? c10::Device(c10::kCPU) : model.parameters().front().device();
    logits = model.forward(
        torch::full({2, dataset.channels, dataset.height, dataset.width}, 0.5f, torch::TensorOptions().device(device)));
  } catch (const std::exception& e) {
    // TorchScript reports interpreter errors as std::runtime_error with a script traceback.
    throw ModelError("classifier: " + what + " fails on a batch of " + std::to_string(dataset.channels) + "x" +
                     std::to_string(dataset.height) + "x" + std::to_string(dataset.width) +
                     " images: " + torch_error_summary(e));
  }
  if (logits.dim() != 2 || logits.size(0) != 2)
    throw ModelError("classifier: " + what + " returns a tensor of shape " + c10::str(logits.sizes()) +
                     " for 2 images; expected [2, " + std::to_string(dataset.num_classes()) + "] logits");
  if (logits.size(1) != dataset.num_classes())
    throw ModelError("classifier: " + what + " outputs " + std::to_string(logits.size(1)) + " logits but " + against +
                     " has " + std::to_string(dataset.num_classes()) + " classes");
  if (auto* scripted = dynamic_cast<ScriptedClassifier*>(&model)) {
    // Record the shape it was validated on.
    ClassifierSpec spec = scripted->spec();
    spec.channels = dataset.channels;
    spec.height = dataset.height;
    spec.width = dataset.width;
    spec.num_classes = dataset.num_classes();
    scripted->set_spec(std::move(spec));
  }
}

void export_torchscript(Classifier& model, const std::filesystem::path& path) {
  if (auto* zoo = dynamic_cast<ZooClassifier*>(&model)) {
    zoo->to_script().save(path.string());
    return;
  }
  model.set_training(false);
  model.save(path);
}

at::Tensor predict_logits(Classifier& model, const at::Tensor& images_u8, int64_t batch_size, c10::Device device) {
  torch::NoGradGuard no_grad;
  model.set_training(false);
  const int64_t n = images_u8.size(0);
  std::vector<at::Tensor> chunks;
  for (int64_t start = 0; start < n; start += batch_size) {
    auto batch = to_unit_float(images_u8.slice(0, start, std::min(n, start + batch_size)), device);
    chunks.push_back(model.forward(batch).to(torch::kCPU, torch::kFloat32));
  }
  if (chunks.empty()) return torch::empty({0, model.spec().num_classes});
  return torch::cat(chunks);
}

}  // namespace defuse
