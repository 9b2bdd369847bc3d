#include "defuse/model/vae.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"
#include "defuse/model/tensors.h"

namespace defuse {
namespace nn = torch::nn;
using nlohmann::json;

namespace {

constexpr const char* kMetaKey = "defuse_meta";
constexpr const char* kFormat = "defuse-vae-1";
constexpr int kStages = 4;

// Side lengths after each stride-2 stage: even sides halve (kernel 4), odd ones round up
// (kernel 3), so that the decoder can mirror every step exactly.
std::vector<int64_t> side_chain(int64_t side) {
  std::vector<int64_t> sides{side};
  for (int i = 0; i < kStages; ++i) sides.push_back((sides.back() + 1) / 2);
  return sides;
}

int64_t kernel_for(int64_t side) { return side % 2 == 0 ? 4 : 3; }

// One ×2 upsampling step of the decoder, from [a_h, a_w] to [b_h, b_w] where b = 2a or 2a - 1.
struct UpsampleImpl : nn::Module {
  UpsampleImpl(int64_t in, int64_t out, int64_t target_h, int64_t target_w, bool subpixel)
      : target_h(target_h), target_w(target_w), subpixel(subpixel) {
    if (subpixel) {
      conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, 4 * out, 3).padding(1)));
    } else {
      // ConvTranspose2d(k, stride 2, padding 1) gives 2a - 2 + k: k = 4 for 2a, k = 3 for 2a - 1.
      deconv = register_module(
          "deconv",
          nn::ConvTranspose2d(
              nn::ConvTranspose2dOptions(in, out, {kernel_for(target_h), kernel_for(target_w)}).stride(2).padding(1)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (!subpixel) return deconv(x);
    auto y = torch::pixel_shuffle(conv(x), 2);
    if (y.size(2) != target_h || y.size(3) != target_w) y = y.slice(2, 0, target_h).slice(3, 0, target_w);
    return y;
  }
  int64_t target_h, target_w;
  bool subpixel;
  nn::Conv2d conv{nullptr};
  nn::ConvTranspose2d deconv{nullptr};
};
TORCH_MODULE(Upsample);

json spec_to_json(const VaeSpec& s) {
  return {{"format", kFormat},  {"channels", s.channels}, {"height", s.height},  {"width", s.width},
          {"latent", s.latent}, {"filters", s.filters},   {"decoder", s.decoder}};
}

VaeSpec spec_from_json(const json& j) {
  if (j.value("format", "") != kFormat)
    throw ModelError("unknown VAE checkpoint format '" + j.value("format", "") + "'");
  VaeSpec s;
  s.channels = j.at("channels");
  s.height = j.at("height");
  s.width = j.at("width");
  s.latent = j.at("latent");
  s.filters = j.at("filters");
  s.decoder = j.at("decoder").get<std::string>();
  return s;
}

std::string shape_text(int64_t c, int64_t h, int64_t w) { return fmt::format("{}x{}x{}", c, h, w); }

// Converts the 4-D weights to channels-last, in place, keeping them parameters.
void weights_channels_last(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

}  // namespace

struct Vae::Net : nn::Module {
  explicit Net(const VaeSpec& s) : spec(s) {
    auto hs = side_chain(s.height), ws = side_chain(s.width);
    encoder = register_module("encoder", nn::Sequential());
    int64_t in = s.channels;
    for (int i = 0; i < kStages; ++i) {
      encoder->push_back(
          nn::Conv2d(nn::Conv2dOptions(in, s.filters, {kernel_for(hs[i]), kernel_for(ws[i])}).stride(2).padding(1)));
      encoder->push_back(nn::ReLU(nn::ReLUOptions(true)));
      in = s.filters;
    }
    last_h = hs.back();
    last_w = ws.back();
    const int64_t flat = s.filters * last_h * last_w;
    mu = register_module("mu", nn::Linear(flat, s.latent));
    logvar = register_module("logvar", nn::Linear(flat, s.latent));
    expand = register_module("expand", nn::Linear(s.latent, flat));
    decoder = register_module("decoder", nn::Sequential());
    const bool subpixel = s.decoder == "subpixel";
    for (int i = kStages; i > 0; --i) {
      const int64_t out = i == 1 ? s.channels : s.filters;
      decoder->push_back(Upsample(s.filters, out, hs[i - 1], ws[i - 1], subpixel));
      if (i > 1) decoder->push_back(nn::ReLU(nn::ReLUOptions(true)));
    }
  }

  VaeSpec spec;
  int64_t last_h = 0, last_w = 0;
  nn::Sequential encoder{nullptr}, decoder{nullptr};
  nn::Linear mu{nullptr}, logvar{nullptr}, expand{nullptr};
};

std::string VaeSpec::describe() const {
  return fmt::format("{}, latent {}, {} filters, {} decoder", shape_text(channels, height, width), latent, filters,
                     decoder);
}

void VaeSpec::validate(const std::string& stage) const {
  check_option(channels >= 1 && channels <= 4, stage,
               "a VAE needs images of 1 to 4 channels (got " + std::to_string(channels) + ")");
  check_option(
      height >= 8 && height <= 512 && width >= 8 && width <= 512, stage,
      "a VAE needs image sides of 8 to 512 pixels (got " + std::to_string(height) + "x" + std::to_string(width) + ")");
  check_option(latent >= 1 && latent <= 4096, stage,
               "--latent must be between 1 and 4096 (got " + std::to_string(latent) + ")");
  check_option(filters >= 1 && filters <= 4096, stage,
               "--filters must be between 1 and 4096 (got " + std::to_string(filters) + ")");
  check_option(decoder == "subpixel" || decoder == "transposed", stage,
               "unknown decoder '" + decoder + "' (expected subpixel or transposed)");
}

Vae::Vae(const VaeSpec& spec) : spec_(spec), net_(std::make_shared<Net>(spec)) { weights_channels_last(*net_); }

Vae::~Vae() = default;

Vae::Encoding Vae::encode(const at::Tensor& images) {
  auto h = net_->encoder->forward(images.contiguous(at::MemoryFormat::ChannelsLast)).flatten(1);
  return {net_->mu(h), net_->logvar(h)};
}

at::Tensor Vae::decode_logits(const at::Tensor& z) {
  auto h = torch::relu(net_->expand(z))
               .view({z.size(0), spec_.filters, net_->last_h, net_->last_w})
               .contiguous(at::MemoryFormat::ChannelsLast);
  return net_->decoder->forward(h);
}

at::Tensor Vae::decode(const at::Tensor& z) {
  return torch::sigmoid(decode_logits(z)).contiguous(at::MemoryFormat::ChannelsLast);
}

std::vector<at::Tensor> Vae::parameters() { return net_->parameters(); }

std::vector<at::Tensor> Vae::buffers() { return net_->buffers(); }

void Vae::set_training(bool training) { net_->train(training); }

void Vae::to(c10::Device device) {
  net_->to(device);
  weights_channels_last(*net_);
  device_ = device;
}

void Vae::save(const std::filesystem::path& path) const {
  torch::serialize::OutputArchive archive;
  archive.write(kMetaKey, c10::IValue(spec_to_json(spec_).dump()));
  net_->save(archive);
  archive.save_to(path.string());
}

std::unique_ptr<Vae> make_vae(const VaeSpec& spec) {
  spec.validate("train-vae");
  return std::unique_ptr<Vae>(new Vae(spec));
}

std::unique_ptr<Vae> load_vae(const std::filesystem::path& path, c10::Device device) {
  if (!std::filesystem::exists(path)) throw IoError("vae: " + path.string() + " does not exist");
  torch::serialize::InputArchive archive;
  VaeSpec spec;
  try {
    archive.load_from(path.string(), c10::Device(c10::kCPU));
    c10::IValue meta;
    if (!archive.try_read(kMetaKey, meta) || !meta.isString())
      throw ModelError("vae: " + path.string() + " is not a defuse VAE checkpoint (no metadata)");
    spec = spec_from_json(json::parse(meta.toStringRef()));
    spec.validate("vae");
  } catch (const ModelError& e) {
    throw ModelError(std::string(e.what()).rfind("vae: ", 0) == 0 ? e.what()
                                                                  : "vae: " + path.string() + ": " + e.what());
  } catch (const ConfigError& e) {
    throw ModelError("vae: " + path.string() + " records an unusable architecture: " + e.what());
  } catch (const c10::Error& e) {
    throw ModelError("vae: " + path.string() + " is not a defuse VAE checkpoint (" +
                     std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  } catch (const json::exception& e) {
    throw ModelError("vae: " + path.string() + " has unreadable metadata: " + e.what());
  }
  std::unique_ptr<Vae> vae(new Vae(spec));
  try {
    vae->net_->load(archive);
  } catch (const c10::Error& e) {
    throw ModelError("vae: " + path.string() + " does not match its recorded architecture (" + spec.describe() +
                     "): " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
  vae->to(device);
  return vae;
}

std::unique_ptr<Vae> load_vae(const std::filesystem::path& path, c10::Device device, const VaeSpec& expected) {
  auto vae = load_vae(path, device);
  const auto& s = vae->spec();
  if (s.channels != expected.channels || s.height != expected.height || s.width != expected.width)
    throw ModelError("vae: " + path.string() + " was trained on " + shape_text(s.channels, s.height, s.width) +
                     " images but these are " + shape_text(expected.channels, expected.height, expected.width) +
                     ": run `defuse train-vae` on this dataset");
  if (expected.latent > 0 && s.latent != expected.latent)
    throw ModelError("vae: " + path.string() + " has " + std::to_string(s.latent) + " latent dimensions, expected " +
                     std::to_string(expected.latent));
  return vae;
}

void check_vae_fits(const Vae& vae, const Dataset& dataset, const std::string& stage) {
  const auto& s = vae.spec();
  if (s.channels != dataset.channels || s.height != dataset.height || s.width != dataset.width)
    throw ModelError(stage + ": the workspace's VAE was trained on " + shape_text(s.channels, s.height, s.width) +
                     " images but the dataset's are " + shape_text(dataset.channels, dataset.height, dataset.width) +
                     ": run `defuse train-vae` on this dataset");
}

at::Tensor encode_means(Vae& vae, const at::Tensor& images_u8, int64_t batch_size) {
  vae.set_training(false);
  const int64_t n = images_u8.size(0);
  // Allocated outside inference mode so that callers may modify the result in place.
  auto out = torch::empty({n, vae.spec().latent}, torch::kFloat32);
  c10::InferenceMode guard;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min(n, start + batch_size);
    auto x = to_unit_float(images_u8.slice(0, start, end), vae.device());
    out.slice(0, start, end).copy_(vae.encode(x).mu.to(torch::kCPU));
  }
  return out;
}

at::Tensor quantize_images(const at::Tensor& images) {
  return images.mul(255.0f).round_().clamp_(0, 255).to(torch::kUInt8);
}

}  // namespace defuse
