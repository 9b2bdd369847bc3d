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
#include "defuse/report/svg_charts.h"

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
  std::string annotation;                   // "labelled: Sneaker", "rejected: unrealistic", "unlabelled", "tie"
  bool automatic = false;                   // label from --auto, not a person
  double accuracy_before = -1,
         accuracy_after = -1;                    // held-out scenario accuracy, original vs chosen; -1 = not evaluated
  std::vector<ReportImage> samples, neighbours;  // decoded samples; nearest real images
  std::vector<ReportImage> member_images;        // decodes of its member failures
  // Validity (DESIGN §3): "" when the scenario was not judged.
  std::string verdict;            // "genuine", "label-change", "ambiguous"
  std::string judges_read;        // "7 (100% of its failures)"
  double genuine_share = -1;      // share of its failures the judges call genuine
  double knn_seed_share = -1;     // share of its failures' nearest training codes with the seed label
  double realism = -1;            // median realism score of its failures
  double draw_genuine_rate = -1;  // share of draws at its own spread that are genuine failures
};

// What the report opens with (DESIGN §3, "Validity"): how many scenarios are genuine, how
// faithful the generator is, and what the correction did on the genuine scenarios. Negative
// numbers: not measured.
struct ReportFindings {
  int64_t scenarios = -1;                                   // -1: not distilled yet
  int64_t genuine = -1, label_change = -1, ambiguous = -1;  // -1: not judged
  std::string judges;                                       // "2 judges: cnn (99.30%), resnet (99.41%)"
  int64_t failing_decodes = -1, failing_genuine = -1, failing_label_change = -1, failing_ambiguous = -1;
  int64_t failures = -1;  // kept
  std::string gate;       // identify's gate
  double test_accuracy = -1,
         reconstruction_accuracy = -1;  // the classifier on test images and on their reconstructions
  int64_t seeds_checked = -1, seeds_bad_reconstruction = -1;
  std::string labels_from;  // who labelled the scenarios, in words
  std::string chosen;       // the chosen model
  double chosen_test_accuracy = -1;
  double original_genuine = -1, chosen_genuine = -1;    // genuine-scenario accuracy before / after
  double original_scenario = -1, chosen_scenario = -1;  // all labelled scenarios
};

struct ReportData {
  std::string title;         // "defuse report: runs/default"
  std::string generated_at;  // ISO time
  std::vector<std::string> class_names;
  std::vector<ReportSection> summary;     // settings and timings of every stage, in words (shown last)
  std::vector<ReportScenario> scenarios;  // ranked
  ReportMap map;                          // empty vectors = section says "not available"
  std::vector<ReportModel>
      models;               // original first ("original"), then "lambda=<λ>"..., "baseline"; empty = not evaluated
  std::string choice_rule;  // how λ was chosen
  std::optional<ReportImage> failure_grid, interpolation;
  std::optional<ReportImage> label_change_grid;  // what identify's gate left out
  ReportFindings findings;
  std::vector<std::string> notes;  // warnings shown at the top (e.g. "labels were automatic")
};

// The whole page as one HTML5 string (UTF-8). Sections (with these ids, linked from the
// table of contents), in this order: findings, scenarios (one "scenario-<id>" per scenario;
// genuine ones first, label changes apart), before-after, lambda-curves, latent-map,
// interpolation, failure-grid, summary (the settings and timings of every stage).
std::string render_report(const ReportData& data);

// Helpers, exposed for tests (html_escape and base64_encode come from defuse/base/html.h;
// the charts and class colours from svg_charts.h).
// "data:image/png;base64,..." for raw PNG bytes.
std::string png_data_uri(std::string_view png);

}  // namespace defuse
