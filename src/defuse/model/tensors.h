// Moving dataset splits into tensors and back.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "defuse/base/image_io.h"
#include "defuse/data/dataset.h"

namespace defuse {

// The split's images as a uint8 tensor [N, C, H, W] (a copy, owned by the tensor).
at::Tensor images_tensor(const DataSplit& split, const Dataset& dataset);
// The split's labels as an int64 tensor [N].
at::Tensor labels_tensor(const DataSplit& split);
// uint8 [N, C, H, W] -> float32 in [0, 1] on `device`, in channels-last memory format
// (faster for the oneDNN convolutions on CPU).
at::Tensor to_unit_float(const at::Tensor& images_u8, c10::Device device);
// Per-channel mean and standard deviation of uint8 images, in [0, 1] units: [C] each.
std::pair<std::vector<double>, std::vector<double>> channel_statistics(const DataSplit& split, const Dataset& dataset);
// One uint8 image [C, H, W] (any device, any memory format) as an interleaved Image, for
// PNG figures.
Image tensor_to_image(const at::Tensor& chw_u8);

}  // namespace defuse
