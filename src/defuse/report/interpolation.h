// The interpolation strip of `defuse interpolate` and of the report: it needs the models
// (interpolation_torch.cpp); the rest of the report module is torch-free.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <nlohmann/json.hpp>

#include "defuse/base/image_io.h"

namespace defuse {
class Vae;
class Classifier;
}  // namespace defuse

namespace defuse {

struct InterpolationStrip {
  Image strip;                 // both endpoints framed, the decodes between, each marked with its prediction
  nlohmann::json predictions;  // [{t, predicted, probability}] per decode
  int64_t other = 0;           // decodes predicted as neither endpoint's label
};

// Decodes `steps` points on the straight line between the latent means of `ends` (uint8
// [2, C, H, W], CPU) and classifies them; tiles predicted as neither `label_from` nor
// `label_to` are marked red.
InterpolationStrip interpolation_strip(Vae& vae, Classifier& classifier, const at::Tensor& ends, int64_t label_from,
                                       int64_t label_to, int64_t steps, c10::Device device);

}  // namespace defuse
