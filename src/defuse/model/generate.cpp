#include "defuse/model/generate.h"

#include <torch/torch.h>

#include <vector>

#include "defuse/model/classifier.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"

namespace defuse {

at::Tensor scenario_codes(const at::Tensor& mean, const at::Tensor& cov, double tau, int64_t n, at::Generator& gen) {
  const int64_t z = mean.size(0);
  auto chol = torch::linalg_cholesky(cov.to(torch::kFloat64) * tau + torch::eye(z, torch::kFloat64) * 1e-12);
  auto eps = torch::randn({n, z}, gen, torch::kFloat64);
  return (mean.to(torch::kFloat64).unsqueeze(0) + eps.mm(chol.t())).to(torch::kFloat32);
}

Decoded decode_and_classify(Vae& vae, Classifier* classifier, const at::Tensor& codes, c10::Device device,
                            const DecodeOptions& options) {
  const int64_t n = codes.size(0);
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  vae.set_training(false);
  if (classifier) classifier->set_training(false);
  std::vector<at::Tensor> images, predicted, probability;
  {
    c10::InferenceMode guard;
    for (int64_t r0 = 0; r0 < n; r0 += batch) {
      auto z = codes.slice(0, r0, std::min(n, r0 + batch)).to(device, torch::kFloat32);
      auto decoded = quantize_images(vae.decode(z));  // what a stored image would be
      if (options.keep_images) images.push_back(decoded.to(torch::kCPU).contiguous());
      if (classifier) {
        auto logits = classifier->forward(to_unit_float(decoded, device)).to(torch::kFloat32);
        predicted.push_back(logits.argmax(1).to(torch::kCPU));
        if (options.keep_probabilities) probability.push_back(torch::softmax(logits, 1).to(torch::kCPU));
      }
    }
  }
  // Outside inference mode: ordinary tensors that callers may modify.
  Decoded out;
  const auto& s = vae.spec();
  if (options.keep_images)
    out.images =
        images.empty() ? torch::empty({0, s.channels, s.height, s.width}, torch::kUInt8) : torch::cat(images).clone();
  if (classifier) {
    out.predicted = predicted.empty() ? torch::empty({0}, torch::kLong) : torch::cat(predicted).clone();
    if (options.keep_probabilities && !probability.empty()) out.probability = torch::cat(probability).clone();
  }
  return out;
}

Decoded reconstruct_and_classify(Vae& vae, Classifier* classifier, const at::Tensor& images_u8, c10::Device device,
                                 const DecodeOptions& options) {
  auto mu = encode_means(vae, images_u8, std::max<int64_t>(1, options.batch_size));
  return decode_and_classify(vae, classifier, mu, device, options);
}

}  // namespace defuse
