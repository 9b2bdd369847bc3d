#include "defuse/model/tensors.h"

#include <cmath>

namespace defuse {

at::Tensor images_tensor(const DataSplit& split, const Dataset& dataset) {
  return torch::from_blob(const_cast<uint8_t*>(split.images.data()),
                          {split.size(), dataset.channels, dataset.height, dataset.width}, torch::kUInt8)
      .clone();
}

at::Tensor labels_tensor(const DataSplit& split) {
  return torch::from_blob(const_cast<int64_t*>(split.labels.data()), {split.size()}, torch::kInt64).clone();
}

at::Tensor to_unit_float(const at::Tensor& images_u8, c10::Device device) {
  return images_u8.to(device, torch::kFloat32).div_(255.0f).contiguous(at::MemoryFormat::ChannelsLast);
}

std::pair<std::vector<double>, std::vector<double>> channel_statistics(const DataSplit& split, const Dataset& dataset) {
  const int64_t n = split.size(), c = dataset.channels, hw = dataset.height * dataset.width;
  std::vector<double> mean(static_cast<size_t>(c), 0.0), std(static_cast<size_t>(c), 1.0);
  if (n == 0) return {mean, std};
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = split.images.data() + (i * c + ch) * hw;
      int64_t s = 0, s2 = 0;
      for (int64_t j = 0; j < hw; ++j) {
        s += p[j];
        s2 += static_cast<int64_t>(p[j]) * p[j];
      }
      sum += static_cast<double>(s);
      sum_sq += static_cast<double>(s2);
    }
    double count = static_cast<double>(n * hw);
    double m = sum / count;
    double var = std::max(sum_sq / count - m * m, 1e-6);
    mean[static_cast<size_t>(ch)] = m / 255.0;
    std[static_cast<size_t>(ch)] = std::sqrt(var) / 255.0;
  }
  return {mean, std};
}

Image tensor_to_image(const at::Tensor& chw_u8) {
  auto hwc = chw_u8.to(torch::kCPU, torch::kUInt8).permute({1, 2, 0}).contiguous();
  Image image{hwc.size(1), hwc.size(0), hwc.size(2), {}};
  image.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return image;
}

}  // namespace defuse
