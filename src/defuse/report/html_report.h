// The self-contained HTML report of `defuse report` (DESIGN.md §2, stage "report"): one
// HTML5 file that opens from disk and works offline. Every image is inline as a base64
// data: URI, every plot is inline SVG drawn here, the CSS is inline, there is no script and
// no external URL (a Content-Security-Policy meta tag forbids loading anything else).
//
// Torch-free: the CLI gathers the data from a workspace into ReportData (PNG thumbnails,
// t-SNE coordinates, metrics) and calls render_report. Every string from the data is
// HTML-escaped. Accuracies, weights and rates are fractions in [0, 1]; a negative value
// means "unknown" or "not evaluated" where the field says so, and non-finite numbers are
// shown as unknown, never written into the SVG.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "defuse/base/html.h"

namespace defuse {

struct ReportImage {
  std::string png;      // raw PNG bytes ("" = missing, drawn as a placeholder)
  std::string caption;  // shown under the image and used as its alt text
  std::string tone;     // "" | "bad" (misclassified) | "good" (correct) | "muted"
};

struct ReportKeyValue {
  std::string key, value;
};

// One summary table (one per stage: data, classifier, VAE, search, clustering, timings...).
struct ReportSection {
  std::string title;
  std::vector<ReportKeyValue> rows;
};

struct ReportScenario {
  int64_t id = 0;
  std::string seed_label, predicted_label;  // the seeds' true class, and what the classifier said
  double weight = 0;                        // mixture weight (share of the failure codes)
  double failure_rate = 0;                  // share of the scenario's samples that are misclassified
  int64_t members = 0;                      // failure codes assigned to the scenario
  double neighbour_accuracy = -1;           // accuracy on the nearest real images; -1 unknown
  std::string annotation;  // "labelled: Sneaker", "rejected: unrealistic", "unlabelled", "tie"
  bool automatic = false;  // label from --auto, not a person
  double accuracy_before = -1, accuracy_after = -1;  // held-out scenario accuracy, original vs chosen; -1 = not evaluated
  std::vector<ReportImage> samples, neighbours;      // decoded samples; nearest real images
};

struct ReportPoint {
  float x = 0, y = 0;
  int32_t label = 0;  // class index
};

// A 2-D embedding (t-SNE) of latent codes, in any scale: the map keeps the aspect ratio.
struct ReportMap {
  std::vector<ReportPoint> train, failures;  // failures: label = the seed label
  std::vector<ReportPoint> scenario_means;   // label = scenario's seed label; drawn big, numbered by scenario id in order
  std::vector<int64_t> scenario_ids;         // one per mean (missing ones are numbered 1, 2, ...)
  std::string note;  // e.g. "t-SNE of 2,000 training codes, 1,000 failure codes, 12 scenario means (perplexity 30)"
};

struct ReportModel {
  std::string name;  // "original", "lambda=<λ>", "baseline" (any other name is drawn as a reference line)
  double lambda = -1;  // the sweep's λ (>= 0) for "lambda=..." models; -1 otherwise
  double test_accuracy = 0, scenario_accuracy = 0, failure_accuracy = -1;  // failure: -1 = not evaluated
  bool chosen = false;  // the model `correct` picked
};

struct ReportData {
  std::string title;         // "defuse report: runs/default"
  std::string generated_at;  // ISO time
  std::vector<std::string> class_names;
  std::vector<ReportSection> summary;
  std::vector<ReportScenario> scenarios;  // ranked
  ReportMap map;                          // empty vectors = section says "not available"
  std::vector<ReportModel> models;  // original first ("original"), then "lambda=<λ>"..., "baseline"; empty = not evaluated
  std::string choice_rule;          // how λ was chosen
  std::optional<ReportImage> failure_grid, interpolation;
  std::vector<std::string> notes;  // warnings shown at the top (e.g. "labels were automatic")
};

// The whole page as one HTML5 string (UTF-8). Sections (with these ids, linked from the
// table of contents): summary, scenarios (one "scenario-<id>" per scenario), latent-map,
// lambda-curves, before-after, interpolation, failure-grid.
std::string render_report(const ReportData& data);

// Pieces, exposed for tests: an SVG scatter and an SVG line chart. Both are inline SVG for
// an HTML page (no xmlns, so no URL), with a <title> and <desc>, and never contain NaN.
std::string svg_latent_map(const ReportMap& map, const std::vector<std::string>& class_names);
std::string svg_lambda_curves(const std::vector<ReportModel>& models);

// Helpers, exposed for tests (html_escape and base64_encode come from defuse/base/html.h).
// "data:image/png;base64,..." for raw PNG bytes.
std::string png_data_uri(std::string_view png);
// The categorical colour of class `index` ("#rrggbb"): 20 colours, the first 10 strongly
// distinct (D3's category10), then their light variants; cycles beyond 20.
std::string class_colour(int64_t index);

}  // namespace defuse
