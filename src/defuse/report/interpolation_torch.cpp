#include "defuse/report/interpolation.h"

#include "defuse/model/classifier.h"
#include "defuse/model/generate.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"
#include "defuse/report/grid.h"

namespace defuse {

InterpolationStrip interpolation_strip(Vae& vae, Classifier& classifier, const at::Tensor& ends, int64_t label_from,
                                       int64_t label_to, int64_t steps, c10::Device device) {
  auto mu = encode_means(vae, ends, 2);                                     // [2, Z]
  auto t = torch::linspace(0.0, 1.0, steps, torch::kFloat32).unsqueeze(1);  // [S, 1]
  auto z = mu[0].unsqueeze(0) * (1 - t) + mu[1].unsqueeze(0) * t;           // [S, Z]
  DecodeOptions d;
  d.keep_probabilities = true;
  Decoded decodes = decode_and_classify(vae, &classifier, z, device, d);
  const at::Tensor& decoded = decodes.images;  // [S, C, H, W]
  at::Tensor probability, predicted;
  std::tie(probability, predicted) = decodes.probability.max(1);
  InterpolationStrip out;
  out.predictions = nlohmann::json::array();
  std::vector<GridTile> tiles;
  tiles.push_back({tensor_to_image(ends[0]), std::to_string(label_from), kTextGrey, true});
  for (int64_t i = 0; i < steps; ++i) {
    const int64_t p = predicted[i].item<int64_t>();
    const bool odd = p != label_from && p != label_to;
    out.other += odd;
    tiles.push_back({tensor_to_image(decoded[i]), std::to_string(p), odd ? kTextRed : kTextWhite, false});
    out.predictions.push_back({{"t", static_cast<double>(i) / static_cast<double>(std::max<int64_t>(1, steps - 1))},
                               {"predicted", p},
                               {"probability", probability[i].item<double>()}});
  }
  tiles.push_back({tensor_to_image(ends[1]), std::to_string(label_to), kTextGrey, true});
  GridOptions options;
  options.columns = static_cast<int>(tiles.size());
  options.scale = ends.size(2) <= 32 ? 2 : 1;
  out.strip = make_grid(tiles, options);
  return out;
}

}  // namespace defuse
