// The report's charts, drawn as inline SVG for an HTML page (no xmlns, so no URL), each with
// a <title> and <desc>, and never containing NaN: the t-SNE latent map and the λ curves.
// Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace defuse {

struct ReportPoint {
  float x = 0, y = 0;
  int32_t label = 0;  // class index
};

// A 2-D embedding (t-SNE) of latent codes, in any scale: the map keeps the aspect ratio.
struct ReportMap {
  std::vector<ReportPoint> train, failures;  // failures: label = the seed label
  std::vector<ReportPoint>
      scenario_means;                 // label = scenario's seed label; drawn big, numbered by scenario id in order
  std::vector<int64_t> scenario_ids;  // one per mean (missing ones are numbered 1, 2, ...)
  std::string note;  // e.g. "t-SNE of 2,000 training codes, 1,000 failure codes, 12 scenario means (perplexity 30)"
};

struct ReportModel {
  std::string name;    // "original", "lambda=<λ>", "baseline" (any other name is drawn as a reference line)
  double lambda = -1;  // the sweep's λ (>= 0) for "lambda=..." models; -1 otherwise
  double test_accuracy = 0, scenario_accuracy = 0, failure_accuracy = -1;  // failure: -1 = not evaluated
  double genuine_scenario_accuracy = -1;  // on the genuine scenarios; -1 = none judged genuine
  bool chosen = false;                    // the model `correct` picked
};

// A scatter of the map's points, equal aspect, with a legend of the classes.
std::string svg_latent_map(const ReportMap& map, const std::vector<std::string>& class_names);
// Test accuracy (upper panel) and `scenario_what` accuracy (lower panel: each model's
// scenario_accuracy) against λ, with the other models as reference lines.
std::string svg_lambda_curves(const std::vector<ReportModel>& models, const std::string& scenario_what = "scenario");

// The categorical colour of class `index` ("#rrggbb"): 20 colours, the first 10 strongly
// distinct (D3's category10), then their light variants; beyond 20, hues a golden angle apart.
std::string class_colour(int64_t index);

}  // namespace defuse
