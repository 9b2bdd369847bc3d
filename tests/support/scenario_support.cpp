#include "support/scenario_support.h"

#include <algorithm>
#include <cmath>

#include "defuse/base/image_io.h"
#include "defuse/base/workspace.h"

namespace defuse::test {

namespace fs = std::filesystem;

Image blob_image(int64_t size, int64_t scenario, int64_t index, bool real) {
  Image image{size, size, 1, std::vector<uint8_t>(static_cast<size_t>(size * size), 0)};
  uint32_t state = static_cast<uint32_t>(scenario * 7919 + index * 104729 + (real ? 1 : 0));
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<double>(state >> 8) / static_cast<double>(1u << 24);
  };
  const double c = static_cast<double>(size) / 2.0;
  const double rx = size * (0.18 + 0.06 * (scenario % 3)) * (0.9 + 0.2 * next());
  const double ry = size * (0.30 - 0.04 * (scenario % 2)) * (0.9 + 0.2 * next());
  const double cx = c + (next() - 0.5) * 3, cy = c + (next() - 0.5) * 3;
  const double bar = scenario % 2 ? 0.5 : 0.0;  // "sleeves" on odd scenarios
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x) {
      double dx = (x - cx) / rx, dy = (y - cy) / ry;
      double d = std::sqrt(dx * dx + dy * dy);
      if (bar > 0 && std::abs(y - (cy - ry * 0.6)) < size * 0.08 && std::abs(x - cx) < rx * 1.8) d = std::min(d, 0.8);
      double value = std::clamp(1.25 - d, 0.0, 1.0) * (real ? 235 : 210);
      value += (next() - 0.5) * (real ? 20 : 40);
      image.pixels[static_cast<size_t>(y * size + x)] = static_cast<uint8_t>(std::clamp(value, 0.0, 255.0));
    }
  return image;
}

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

ScenarioSet make_scenario_workspace(const fs::path& dir, const ScenarioWorkspaceOptions& options) {
  Workspace workspace(dir);
  ScenarioSet set;
  set.class_names = options.class_names.empty() ? fashion_mnist_classes() : options.class_names;
  const int64_t classes = static_cast<int64_t>(set.class_names.size());
  const nlohmann::json distill_options = {{"test", "make_scenario_workspace"}, {"tau", 0.01}};
  auto record = workspace.run_stage("distill", distill_options, {{"failures", "synthetic"}}, [&](int64_t run_id) {
    std::vector<std::pair<std::string, std::string>> artifacts;
    const std::string folder = std::string(kScenarioImageDir) + "/run-" + std::to_string(run_id);
    fs::create_directories(workspace.path(folder));
    for (int64_t k = 1; k <= options.scenarios; ++k) {
      Scenario s;
      s.id = k;
      s.component = k * 3;
      s.weight = 0.4 / static_cast<double>(k);
      s.failure_rate = 0.9 - 0.1 * static_cast<double>(k);
      s.seed_label = (2 * k) % classes;
      s.seed_label_share = 0.8;
      s.predicted_label = (2 * k + 1) % classes;
      s.predicted_share = 0.7;
      s.members = 100 / k;
      s.neighbour_accuracy = k % 2 ? 0.75 : -1.0;
      s.score = 1.0 / static_cast<double>(k);
      s.mean.assign(static_cast<size_t>(options.latent), static_cast<float>(k));
      s.covariance.assign(static_cast<size_t>(options.latent * options.latent), 0.0f);
      for (int64_t i = 0; i < options.latent; ++i) s.covariance[static_cast<size_t>(i * options.latent + i)] = 1.0f;
      auto add = [&](bool real, int64_t count, std::vector<ScenarioImage>& out) {
        for (int64_t i = 0; i < count; ++i) {
          std::string path =
              folder + "/s" + std::to_string(k) + (real ? "-neighbour-" : "-sample-") + std::to_string(i) + ".png";
          write_png(workspace.path(path).string(), blob_image(options.image_size, k, i, real));
          ScenarioImage image;
          image.path = path;
          image.predicted =
              real ? (i % 2 ? s.seed_label : s.predicted_label) : (i % 3 ? s.predicted_label : s.seed_label);
          image.label = real ? s.seed_label : -1;
          out.push_back(image);
          artifacts.emplace_back("thumb:" + path, path);
        }
      };
      add(false, options.samples, s.samples);
      add(true, options.neighbours, s.neighbours);
      set.scenarios.push_back(std::move(s));
    }
    Workspace::StageOutput out;
    out.metrics = {{"scenarios", options.scenarios}};
    out.artifacts = artifacts;
    out.extra = [&set, run_id](Database& db) { write_scenarios(db, run_id, set); };
    return out;
  });
  set.run_id = record.id;
  return set;
}

}  // namespace defuse::test
