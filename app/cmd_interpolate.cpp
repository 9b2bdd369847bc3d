// defuse interpolate: decode the straight line between the latent means of two test
// images and write a PNG strip marked with the classifier's predictions (the Defuse
// paper's interpolation figure). Not a stage: it writes a figure and records nothing.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common.h"
#include "defuse/report/interpolation.h"
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
        auto made = interpolation_strip(*vae.model, *classifier.model, ends, label_from, label_to, *steps, device);
        Image& strip = made.strip;
        json& predictions = made.predictions;

        std::filesystem::path path = output->empty()
                                         ? workspace.path(fmt::format("figures/interpolation_{}_{}.png", *from, *to))
                                         : std::filesystem::path(*output);
        auto png = encode_png(strip);
        write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
        const int64_t odd = made.other;
        json summary = {{"output", path.string()},
                        {"from", *from},
                        {"to", *to},
                        {"steps", *steps},
                        {"labels", {label_from, label_to}},
                        {"predictions", predictions},
                        {"other_predictions", odd}};
        ctx.result(summary, fmt::format("interpolate: test images {} (label {}) -> {} (label {}), {} steps, {} "
                                        "decodes predicted as neither label -> {}",
                                        *from, label_from, *to, label_to, *steps, odd, path.string()));
      };
    },
    25);

}  // namespace
}  // namespace defuse::cli
