// defuse interpolate: decode the straight line between the latent means of two test
// images and write a PNG strip marked with the classifier's predictions (the Defuse
// paper's interpolation figure). Not a stage: it writes a figure and records nothing.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae_store.h"
#include "defuse/report/grid.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

const Registrar registrar(
    "interpolate",
    "Decode the line between two test images' latent codes into a PNG strip marked with the classifier's predictions",
    [](CLI::App& app, Context& ctx) -> Action {
      auto from = std::make_shared<int64_t>(-1);
      auto to = std::make_shared<int64_t>(-1);
      auto steps = std::make_shared<int64_t>(10);
      auto output = std::make_shared<std::string>();
      auto data = std::make_shared<std::string>();
      add_common_options(app, ctx);
      add_device_option(app, ctx);
      app.add_option("--from", *from, "Index of the first test image")->required();
      app.add_option("--to", *to, "Index of the second test image")->required();
      app.add_option("--steps", *steps, "Decodes along the line, both ends included")->capture_default_str();
      app.add_option("-o,--output", *output, "PNG file to write (default: <workspace>/figures/interpolation_I_J.png)");
      app.add_option("-d,--data", *data, "Dataset spec (default: the one the workspace's classifier was trained on)");

      return [from, to, steps, output, data](Context& ctx) {
        prepare_compute(ctx);
        check_option(*steps >= 2 && *steps <= 1000, "interpolate", "--steps must be between 2 and 1000");
        auto device = parse_device(ctx.device, "interpolate");
        Workspace workspace(ctx.workspace);
        const std::string spec = resolve_data_spec(workspace, *data);
        auto vae = load_workspace_vae(workspace, device);
        auto classifier = load_workspace_classifier(workspace, device);
        Dataset dataset = load_dataset_logged(ctx, spec);
        check_vae_fits(*vae.model, dataset, "interpolate");
        validate_classifier(*classifier.model, dataset, "the workspace's classifier");
        const int64_t n = dataset.test.size();
        for (int64_t index : {*from, *to})
          check_option(index >= 0 && index < n, "interpolate",
                       fmt::format("test image {} does not exist (the test split has {} images)", index, n));

        auto images = images_tensor(dataset.test, dataset);
        auto ends = images.index_select(0, torch::tensor({*from, *to}, torch::kLong));  // [2, C, H, W]
        const int64_t label_from = dataset.test.labels[static_cast<size_t>(*from)];
        const int64_t label_to = dataset.test.labels[static_cast<size_t>(*to)];
        at::Tensor decoded, predicted, probability;
        {
          torch::NoGradGuard no_grad;
          auto mu = encode_means(*vae.model, ends, 2);                                 // [2, Z]
          auto t = torch::linspace(0.0, 1.0, *steps, torch::kFloat32).unsqueeze(1);    // [S, 1]
          auto z = (mu[0].unsqueeze(0) * (1 - t) + mu[1].unsqueeze(0) * t).to(device);  // [S, Z]
          vae.model->set_training(false);
          decoded = quantize_images(vae.model->decode(z)).to(torch::kCPU).contiguous();  // [S, C, H, W]
          auto logits = predict_logits(*classifier.model, decoded, 256, device);
          std::tie(probability, predicted) = torch::softmax(logits, 1).max(1);
        }

        std::vector<GridTile> tiles;
        tiles.push_back({tensor_to_image(ends[0]), std::to_string(label_from), kTextGrey, true});
        json predictions = json::array();
        for (int64_t i = 0; i < *steps; ++i) {
          const int64_t p = predicted[i].item<int64_t>();
          const bool odd = p != label_from && p != label_to;
          tiles.push_back({tensor_to_image(decoded[i]), std::to_string(p), odd ? kTextRed : kTextWhite, false});
          predictions.push_back({{"t", static_cast<double>(i) / static_cast<double>(*steps - 1)},
                                 {"predicted", p},
                                 {"probability", probability[i].item<double>()}});
        }
        tiles.push_back({tensor_to_image(ends[1]), std::to_string(label_to), kTextGrey, true});
        GridOptions options;
        options.columns = static_cast<int>(tiles.size());
        options.scale = dataset.height <= 32 ? 2 : 1;
        Image strip = make_grid(tiles, options);

        std::filesystem::path path = output->empty() ? workspace.path(fmt::format("figures/interpolation_{}_{}.png",
                                                                                  *from, *to))
                                                     : std::filesystem::path(*output);
        auto png = encode_png(strip);
        write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
        int64_t odd = 0;
        for (const auto& p : predictions) odd += p["predicted"] != label_from && p["predicted"] != label_to;
        json summary = {{"output", path.string()}, {"from", *from},           {"to", *to},
                        {"steps", *steps},         {"labels", {label_from, label_to}},
                        {"predictions", predictions}, {"other_predictions", odd}};
        ctx.result(summary, fmt::format("interpolate: test images {} (label {}) -> {} (label {}), {} steps, {} "
                                        "decodes predicted as neither label -> {}",
                                        *from, label_from, *to, label_to, *steps, odd, path.string()));
      };
    },
    25);

}  // namespace
}  // namespace defuse::cli
