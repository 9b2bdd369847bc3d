// Writes an HTML report from synthetic data (real small PNGs, a clustered 2-D map, a λ sweep)
// for the browser test of the report (scripts/browser_report_test.sh) and for looking at it:
//   defuse_make_report OUT.html [--empty]
// --empty writes the report of an empty workspace (every section "not available").
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "defuse/report/grid.h"
#include "defuse/report/html_report.h"
#include "support/scenario_support.h"

namespace {

using namespace defuse;

std::string png(const Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  return std::string(bytes.begin(), bytes.end());
}

ReportData synthetic_report() {
  ReportData d;
  d.title = "defuse report: runs/default";
  d.generated_at = "2024-05-01T12:00:00Z";
  d.class_names = test::fashion_mnist_classes();
  d.class_names[8] = "Bag <& \"odd\" name>";  // escaping, seen in the browser
  d.notes = {"Labels were chosen automatically (--auto): no person checked them."};
  d.summary = {
      {"Data",
       {{"dataset", "fashion-mnist"},
        {"path", "/usr/share/datasets/fashion-mnist"},
        {"classes", "10"},
        {"training images", "60,000"},
        {"test images", "10,000"}}},
      {"Classifier",
       {{"architecture", "small-cnn"}, {"epochs", "5"}, {"test accuracy", "91.24%"}, {"seed", "1"}, {"time", "58 s"}}},
      {"VAE",
       {{"latent size", "10"}, {"beta", "4"}, {"reconstruction", "ssim"}, {"epochs", "20"}, {"time", "4 min 12 s"}}},
      {"Search",
       {{"seeds", "correctly classified training images"},
        {"perturbations per seed (Q)", "100"},
        {"kept per seed (M)", "5"},
        {"noise", "gaussian, scale 0.5"},
        {"failures kept", "31,402"},
        {"time", "2 min 3 s"}}},
      {"Clustering",
       {{"components", "100"},
        {"concentration", "0.01"},
        {"fit on", "10,000 codes"},
        {"scenarios (weight > 0.01)", "6"},
        {"iterations", "143"},
        {"time", "9.8 s"}}},
      {"Versions", {{"defuse", "0.1.0"}, {"LibTorch", "1.13.1"}, {"BLAS", "OpenBLAS 0.3.21"}, {"threads", "2"}}},
  };

  // Scenarios: seed class -> predicted class, samples (mostly misclassified) and neighbours.
  const int pairs[][2] = {{6, 0}, {4, 2}, {9, 7}, {2, 4}, {0, 3}, {5, 7}};
  const char* annotations[] = {"labelled: Shirt",       "labelled: Coat", "labelled: Ankle boot", "tie",
                               "rejected: unrealistic", "unlabelled"};
  const double before[] = {0.08, 0.15, 0.22, 0.31, -1, 0.4}, after[] = {0.86, 0.79, 0.91, 0.52, -1, 0.37};
  for (int k = 0; k < 6; ++k) {
    ReportScenario s;
    s.id = k + 1 + (k >= 3 ? 6 : 0);
    s.seed_label = d.class_names[pairs[k][0]];
    s.predicted_label = d.class_names[pairs[k][1]];
    s.weight = 0.31 / (k + 1);
    s.failure_rate = 0.93 - 0.08 * k;
    s.members = 3120 / (k + 1);
    s.neighbour_accuracy = k == 5 ? -1 : 0.97 - 0.03 * k;
    s.annotation = annotations[k];
    s.automatic = k < 3;
    s.accuracy_before = before[k];
    s.accuracy_after = after[k];
    for (int i = 0; i < 10; ++i) {
      const bool wrong = i % 4 != 3;
      s.samples.push_back(
          {png(test::blob_image(28, k, i, false)), wrong ? s.predicted_label : s.seed_label, wrong ? "bad" : "good"});
    }
    for (int i = 0; i < 5; ++i) {
      s.neighbours.push_back({png(test::blob_image(28, k, i, true)), s.seed_label + " (train)", ""});
    }
    d.scenarios.push_back(std::move(s));
  }

  // The map: a blob per class, failures between the seed class and the predicted class.
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0, 1);
  auto centre = [](int c) { return std::pair<float, float>(30 * std::cos(c * 0.628f), 30 * std::sin(c * 0.628f)); };
  for (int i = 0; i < 2000; ++i) {
    const int c = i % 10;
    auto [x, y] = centre(c);
    d.map.train.push_back({x + 5 * noise(rng), y + 5 * noise(rng), c});
  }
  for (int k = 0; k < 6; ++k) {
    auto [ax, ay] = centre(pairs[k][0]);
    auto [bx, by] = centre(pairs[k][1]);
    const float mx = 0.6f * ax + 0.4f * bx, my = 0.6f * ay + 0.4f * by;
    for (int i = 0; i < 120; ++i)
      d.map.failures.push_back({mx + 2.5f * noise(rng), my + 2.5f * noise(rng), pairs[k][0]});
    d.map.scenario_means.push_back({mx, my, pairs[k][0]});
    d.map.scenario_ids.push_back(d.scenarios[k].id);
  }
  d.map.note = "t-SNE of 2,000 training codes, 720 failure codes and 6 scenario means (perplexity 30).";

  d.models = {{"original", -1, 0.9124, 0.18, 0.0, false}};
  const double lambdas[] = {0, 0.001, 0.003, 0.01, 0.03, 0.1, 1};
  for (double l : lambdas) {
    const double t = std::log10(l + 1e-4) + 4;  // 0 .. 4
    ReportModel m;
    m.name = fmt::format("lambda={:g}", l);
    m.lambda = l;
    m.test_accuracy = 0.9130 - 0.0009 * t * t;
    m.scenario_accuracy = 0.2 + 0.18 * t;
    m.failure_accuracy = 0.1 + 0.2 * t;
    m.chosen = l == 0.03;
    d.models.push_back(m);
  }
  d.models.push_back({"baseline", -1, 0.781, 0.93, 0.99, false});
  d.choice_rule = "the largest scenario accuracy whose test accuracy stays within 1 point of the original's";

  // The failure grid (seeds framed) and an interpolation strip, drawn with the grid helpers.
  std::vector<GridTile> tiles;
  for (int r = 0; r < 4; ++r) {
    tiles.push_back({test::blob_image(28, r, 0, true), d.class_names[pairs[r][0]].substr(0, 8), kTextGreen, true});
    for (int i = 1; i < 8; ++i) {
      tiles.push_back({test::blob_image(28, r, i, false), d.class_names[pairs[r][1]].substr(0, 8), kTextRed, false});
    }
  }
  GridOptions grid;
  grid.columns = 8;
  grid.title = "failures (seed framed)";
  d.failure_grid = ReportImage{png(make_grid(tiles, grid)), "4 seeds and 7 failures each", ""};
  tiles.clear();
  for (int i = 0; i < 10; ++i) {
    tiles.push_back({test::blob_image(28, i < 5 ? 0 : 1, i, i == 0), i < 6 ? "Shirt" : "T-shirt",
                     i < 6 ? kTextGreen : kTextRed, i == 0});
  }
  grid.columns = 10;
  grid.title = "seed -> scenario 1";
  d.interpolation = ReportImage{png(make_grid(tiles, grid)), "from a Shirt seed to the mean of scenario 1", ""};
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "--empty") != 0)) {
    std::cerr << "usage: " << argv[0] << " OUT.html [--empty]\n";
    return 2;
  }
  try {
    const ReportData data = argc == 3 ? ReportData{"defuse report: empty workspace"} : synthetic_report();
    const std::string html = render_report(data);
    std::ofstream out(argv[1], std::ios::binary);
    out << html;
    out.close();
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[1]);
    std::cout << argv[1] << ": " << html.size() << " bytes\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    return 1;
  }
}
