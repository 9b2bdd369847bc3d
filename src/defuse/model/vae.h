// The β-VAE of the Defuse method (DESIGN §3, "VAE"): a convolutional encoder to a diagonal
// Gaussian over a small latent space, and a decoder back to images in [0, 1].
//
// Architecture (the reference's, sized to the input): four stride-2 convolutions of
// `filters` channels (kernel 4, padding 1 on even sides; kernel 3, padding 1 on odd sides so
// that 7 -> 4 rounds up), ReLU between them, two linear heads for μ and log σ². The decoder
// mirrors it: a linear layer to the last feature map, then four ×2 upsampling steps (crop by
// one pixel where the encoder rounded an odd side up) and a sigmoid. Sides seen in practice:
//   1x28x28: 28 -> 14 -> 7 -> 4 -> 2     3x32x32: 32 -> 16 -> 8 -> 4 -> 2
//   3x64x64: 64 -> 32 -> 16 -> 8 -> 4
// The upsampling step is either "subpixel" (3x3 convolution to 4x the channels, then a
// pixel shuffle; Shi et al. 2016, a superset of the transposed convolution below that runs
// on oneDNN) or "transposed" (the reference's ConvTranspose2d, kernel 4, stride 2, which
// LibTorch runs through im2col + BLAS on the CPU). docs/benchmarks.md ("Identify") has the
// measurements behind the default.
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

struct VaeSpec {
  int64_t channels = 0, height = 0, width = 0;  // input shape, [C, H, W]
  int64_t latent = 10;                          // latent dimensions Z (reference: 10, 15 for GTSRB)
  int64_t filters = 64;                         // channels of every hidden convolution (reference: 64)
  std::string decoder = "subpixel";             // upsampling step: "subpixel" or "transposed"

  // "1x28x28, latent 10, 64 filters, subpixel decoder"
  std::string describe() const;
  // Throws ConfigError("<stage>: ...") for an unusable spec: sides outside 8..512, latent or
  // filters outside 1..4096, channels outside 1..4, an unknown decoder.
  void validate(const std::string& stage) const;
};

class Vae {
 public:
  struct Encoding {
    at::Tensor mu;      // [N, Z]
    at::Tensor logvar;  // [N, Z], log σ²
  };

  ~Vae();
  Vae(const Vae&) = delete;
  Vae& operator=(const Vae&) = delete;

  const VaeSpec& spec() const { return spec_; }
  // images: float [N, C, H, W] in [0, 1] on the model's device.
  Encoding encode(const at::Tensor& images);
  // z: [N, Z] -> the decoder's logits [N, C, H, W] (before the sigmoid; for BCE with logits).
  at::Tensor decode_logits(const at::Tensor& z);
  // z: [N, Z] -> images [N, C, H, W] in [0, 1], channels-last memory format.
  at::Tensor decode(const at::Tensor& z);
  std::vector<at::Tensor> parameters();
  std::vector<at::Tensor> buffers();  // none in the zoo's VAE today; kept for data-parallel training
  void set_training(bool training);
  // Moves the weights (4-D ones in channels-last format, which oneDNN runs fastest here).
  void to(c10::Device device);
  c10::Device device() const { return device_; }
  // Writes the checkpoint (a torch::serialize archive with a "defuse_meta" JSON string);
  // callers make it atomic with write_atomic_via.
  void save(const std::filesystem::path& path) const;

  struct Net;  // the torch::nn modules, defined in vae.cpp

 private:
  friend std::unique_ptr<Vae> make_vae(const VaeSpec& spec);
  friend std::unique_ptr<Vae> load_vae(const std::filesystem::path& path, c10::Device device);
  explicit Vae(const VaeSpec& spec);

  VaeSpec spec_;
  std::shared_ptr<Net> net_;  // shared: torch::nn modules expect shared ownership
  c10::Device device_{c10::kCPU};
};

// A fresh VAE, initialised from the global torch seed. Throws ConfigError for a bad spec.
std::unique_ptr<Vae> make_vae(const VaeSpec& spec);

// Loads a VAE checkpoint. Throws IoError when the file is missing, ModelError when it is not
// a defuse VAE checkpoint or its weights do not fit its recorded architecture.
std::unique_ptr<Vae> load_vae(const std::filesystem::path& path, c10::Device device);

// As above, and throws ModelError naming both shapes when the checkpoint's input shape
// differs from `expected`'s, or its latent size does (when expected.latent > 0).
std::unique_ptr<Vae> load_vae(const std::filesystem::path& path, c10::Device device, const VaeSpec& expected);

// Throws ModelError("<stage>: ...") unless `vae` takes the dataset's image shape.
void check_vae_fits(const Vae& vae, const Dataset& dataset, const std::string& stage);

// The latent means μ of uint8 images [N, C, H, W] (CPU), in batches, eval mode, no
// gradients: float32 [N, Z] on the CPU.
at::Tensor encode_means(Vae& vae, const at::Tensor& images_u8, int64_t batch_size);

// Rounds decoder output in [0, 1] to the 8-bit grid, as the images are stored: the
// classifier must see exactly what a later stage reloads. Returns uint8 of the same shape.
at::Tensor quantize_images(const at::Tensor& images);

}  // namespace defuse
