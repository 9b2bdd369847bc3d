// The report's inline SVG charts: the latent map and the λ curves (svg_charts.h).
#include "defuse/report/svg_charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "defuse/base/html.h"
#include "defuse/report/report_format.h"

namespace defuse {

using namespace report;

namespace {

// ---------------------------------------------------------------------------------------
// SVG pieces

std::string svg_open(double width, double height, const std::string& id, const std::string& title,
                     const std::string& desc) {
  return fmt::format(
             "<svg class=\"plot\" id=\"{0}\" width=\"{1}\" height=\"{2}\" viewBox=\"0 0 {1} {2}\" role=\"img\" "
             "aria-labelledby=\"{0}-title {0}-desc\" font-family=\"system-ui, sans-serif\" font-size=\"12\">",
             id, c1(width), c1(height)) +
         "<title id=\"" + id + "-title\">" + html_escape(title) + "</title><desc id=\"" + id + "-desc\">" +
         html_escape(desc) + "</desc>";
}

std::string svg_text(double x, double y, const std::string& text, const std::string& attributes = "") {
  return "<text x=\"" + c1(x) + "\" y=\"" + c1(y) + "\"" + (attributes.empty() ? "" : " " + attributes) + ">" +
         html_escape(text) + "</text>";
}

// A placeholder drawing for an empty plot, still with a title.
std::string svg_empty(const std::string& id, const std::string& title, const std::string& message) {
  return svg_open(520, 80, id, title, message) +
         "<rect x=\"0.5\" y=\"0.5\" width=\"519\" height=\"79\" fill=\"#fafbfc\" stroke=\"#d5d9e0\"/>" +
         svg_text(260, 45, message, "text-anchor=\"middle\" fill=\"#5f6b7e\"") + "</svg>";
}

// A path's `d` for a cross of half-size `s` centred on (x, y).
std::string cross(double x, double y, double s) {
  return "M" + c1(x - s) + " " + c1(y - s) + "l" + c1(2 * s) + " " + c1(2 * s) + "m0 " + c1(-2 * s) + "l" + c1(-2 * s) +
         " " + c1(2 * s);
}

// A nice step (1, 2 or 5 times a power of ten) near `raw`.
double nice_step(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

constexpr const char* kTestColour = "#1f5fbf";
constexpr const char* kScenarioColour = "#d9480f";

}  // namespace

// ---------------------------------------------------------------------------------------
// Helpers

std::string class_colour(int64_t index) {
  static constexpr std::array<const char*, 20> kPalette = {
      "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
      "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"};
  const auto n = static_cast<int64_t>(kPalette.size());
  if (index < 0) return "#555555";  // no class
  if (index < n) return kPalette[static_cast<size_t>(index)];
  // Beyond the 20 hand-picked colours (GTSRB has 43 classes): hues a golden angle apart, at
  // alternating lightness, so that no two classes share a colour.
  const double hue = std::fmod(static_cast<double>(index - n) * 137.50776405003785 + 15.0, 360.0) / 60.0;
  const double light = index % 2 == 0 ? 0.42 : 0.62, sat = 0.7;
  const double chroma = (1 - std::abs(2 * light - 1)) * sat;
  const double x = chroma * (1 - std::abs(std::fmod(hue, 2.0) - 1));
  double rgb[3] = {0, 0, 0};
  const int sector = static_cast<int>(hue);
  const int big[6] = {0, 1, 1, 2, 2, 0}, small[6] = {1, 0, 2, 1, 0, 2};
  rgb[big[sector]] = chroma;
  rgb[small[sector]] = x;
  const double m = light - chroma / 2;
  auto byte = [&](double v) { return static_cast<int>(std::lround(std::clamp(v + m, 0.0, 1.0) * 255)); };
  return fmt::format("#{:02x}{:02x}{:02x}", byte(rgb[0]), byte(rgb[1]), byte(rgb[2]));
}

// ---------------------------------------------------------------------------------------
// The latent map: a square plot (equal aspect, as t-SNE distances are isotropic) and a
// legend column on its right.

std::string svg_latent_map(const ReportMap& map, const std::vector<std::string>& class_names) {
  const std::string id = "latent-map-svg", title = "Latent map (t-SNE)";
  auto finite = [](const ReportPoint& p) { return std::isfinite(p.x) && std::isfinite(p.y); };
  double min_x = INFINITY, max_x = -INFINITY, min_y = INFINITY, max_y = -INFINITY;
  std::set<int32_t> classes;
  for (const auto* points : {&map.train, &map.failures, &map.scenario_means}) {
    for (const ReportPoint& p : *points) {
      if (!finite(p)) continue;
      min_x = std::min<double>(min_x, p.x), max_x = std::max<double>(max_x, p.x);
      min_y = std::min<double>(min_y, p.y), max_y = std::max<double>(max_y, p.y);
      classes.insert(p.label);
    }
  }
  if (classes.empty()) return svg_empty(id, title, "No points to draw.");

  constexpr double kPlot = 540, kInset = 18, kLegendX = kPlot + 24, kRow = 17;
  const double range = std::max(max_x - min_x, max_y - min_y);
  const double scale = range > 0 ? (kPlot - 2 * kInset) / range : 0;
  const double mid_x = (min_x + max_x) / 2, mid_y = (min_y + max_y) / 2;
  auto px = [&](double x) { return kPlot / 2 + (x - mid_x) * scale; };
  auto py = [&](double y) { return kPlot / 2 - (y - mid_y) * scale; };  // y up, as in a plot

  const double legend_height = 40 + kRow * (4 + static_cast<double>(classes.size()));
  const double width = kLegendX + 200, height = std::max(kPlot, legend_height);
  const std::string desc =
      fmt::format("Scatter of {} training codes, {} failure codes and {} scenario means in 2-D, coloured by class.",
                  map.train.size(), map.failures.size(), map.scenario_means.size());
  std::string out = svg_open(width, height, id, title, desc);
  out += "<rect x=\"0.5\" y=\"0.5\" width=\"" + c1(kPlot - 1) + "\" height=\"" + c1(kPlot - 1) +
         "\" fill=\"#fcfcfd\" stroke=\"#d5d9e0\"/>";

  // Training codes: one path per class of zero-length round-capped strokes (small dots),
  // light; failure codes: one path of crosses per class, on top.
  std::map<int32_t, std::string> dots, crosses;
  for (const ReportPoint& p : map.train) {
    if (finite(p)) dots[p.label] += "M" + c1(px(p.x)) + " " + c1(py(p.y)) + "h0";
  }
  for (const ReportPoint& p : map.failures) {
    if (finite(p)) crosses[p.label] += cross(px(p.x), py(p.y), 2.6);
  }
  out += "<g class=\"train\" stroke-linecap=\"round\" stroke-width=\"4\" stroke-opacity=\"0.3\">";
  for (const auto& [label, d] : dots) out += "<path stroke=\"" + class_colour(label) + "\" d=\"" + d + "\"/>";
  out += "</g><g class=\"failures\" stroke-width=\"1.4\" fill=\"none\">";
  for (const auto& [label, d] : crosses) out += "<path stroke=\"" + class_colour(label) + "\" d=\"" + d + "\"/>";
  out += "</g><g class=\"means\" font-weight=\"700\" text-anchor=\"middle\">";
  for (size_t i = 0; i < map.scenario_means.size(); ++i) {
    const ReportPoint& p = map.scenario_means[i];
    if (!finite(p)) continue;
    const int64_t number = i < map.scenario_ids.size() ? map.scenario_ids[i] : static_cast<int64_t>(i) + 1;
    const std::string text = std::to_string(number);
    const double r = 7 + 3.5 * static_cast<double>(text.size());
    const double x = px(p.x), y = py(p.y);
    out += "<g class=\"mean\"><title>" +
           html_escape(fmt::format("Scenario {}: mean of its failure codes (class {})", number,
                                   class_name(class_names, p.label))) +
           "</title><circle cx=\"" + c1(x) + "\" cy=\"" + c1(y) + "\" r=\"" + c1(r) + "\" fill=\"" +
           class_colour(p.label) + "\" stroke=\"#1c2130\" stroke-width=\"1.5\"/>" +
           svg_text(x, y + 4, text, "fill=\"#fff\" stroke=\"#1c2130\" stroke-width=\"2.2\" paint-order=\"stroke\"") +
           "</g>";
  }
  out += "</g>";

  // Legend: the three marks, then the classes present.
  double y = 20;
  out += "<g class=\"legend\">" + svg_text(kLegendX, y, "Marks", "font-weight=\"600\"");
  y += kRow;
  out += "<path d=\"M" + c1(kLegendX + 6) + " " + c1(y - 4) +
         "h0\" stroke=\"#5f6b7e\" stroke-opacity=\"0.5\" stroke-width=\"5\" stroke-linecap=\"round\"/>" +
         svg_text(kLegendX + 20, y, "training code");
  y += kRow;
  out += "<path d=\"" + cross(kLegendX + 6, y - 4, 3.5) + "\" stroke=\"#5f6b7e\" stroke-width=\"1.6\"/>" +
         svg_text(kLegendX + 20, y, "failure code");
  y += kRow + 4;
  out += "<circle cx=\"" + c1(kLegendX + 6) + "\" cy=\"" + c1(y - 4) +
         "\" r=\"8\" fill=\"#5f6b7e\" stroke=\"#1c2130\" stroke-width=\"1.5\"/>" +
         svg_text(kLegendX + 6, y, "n", "fill=\"#fff\" font-weight=\"700\" text-anchor=\"middle\"") +
         svg_text(kLegendX + 20, y, "scenario mean (id)");
  y += kRow + 12;
  out += svg_text(kLegendX, y, "Classes", "font-weight=\"600\"");
  for (int32_t label : classes) {
    y += kRow;
    out += "<rect x=\"" + c1(kLegendX) + "\" y=\"" + c1(y - 10) + "\" width=\"12\" height=\"12\" rx=\"2\" fill=\"" +
           class_colour(label) + "\"/>" + svg_text(kLegendX + 20, y, shorten(class_name(class_names, label), 24));
  }
  return out + "</g></svg>";
}

// ---------------------------------------------------------------------------------------
// The λ curves: two panels over one x axis, test accuracy above and scenario accuracy below,
// each with its own y range in % (one shared axis would flatten the test accuracy, whose
// changes of a point or less are the point of the figure). x is log λ with a tick at every λ
// of the sweep (λ = 0, which has no logarithm, gets its own slot at the left behind an axis
// break). The sweep's models are lines with points; the other models (original, baseline)
// are horizontal reference lines labelled in the right margin.

std::string svg_lambda_curves(const std::vector<ReportModel>& models, const std::string& scenario_what) {
  const std::string id = "lambda-curves-svg", title = "Accuracy against \u03bb";
  if (models.empty()) return svg_empty(id, title, "No models evaluated.");
  auto is_sweep = [](const ReportModel& m) {
    return std::isfinite(m.lambda) && m.lambda >= 0 && m.name != "original" && m.name != "baseline";
  };
  std::vector<ReportModel> sweep, references;
  for (const ReportModel& m : models) (is_sweep(m) ? sweep : references).push_back(m);
  std::stable_sort(sweep.begin(), sweep.end(),
                   [](const ReportModel& a, const ReportModel& b) { return a.lambda < b.lambda; });

  constexpr double kWidth = 780, kLeft = 62, kRight = 170, kTop = 52, kPanel = 170, kGap = 34;
  const double x0 = kLeft, x1 = kWidth - kRight, axis_y = kTop + 2 * kPanel + kGap, height = axis_y + 62;

  // x positions: λ = 0 in its own slot, positive λ on a log scale.
  double pos_min = INFINITY, pos_max = 0;
  bool has_zero = false;
  for (const ReportModel& m : sweep) {
    if (m.lambda == 0)
      has_zero = true;
    else
      pos_min = std::min(pos_min, m.lambda), pos_max = std::max(pos_max, m.lambda);
  }
  const bool has_positive = pos_max > 0;
  const double zero_x = has_positive ? x0 + 24 : (x0 + x1) / 2;
  const double log_x0 = has_zero ? x0 + 78 : x0 + 30, log_x1 = x1 - 30;
  auto xpos = [&](double lambda) {
    if (lambda <= 0) return zero_x;
    const double a = std::log10(pos_min), b = std::log10(pos_max);
    if (!(b - a > 1e-12)) return (log_x0 + log_x1) / 2;
    return log_x0 + (std::log10(lambda) - a) / (b - a) * (log_x1 - log_x0);
  };

  std::string desc = "Test accuracy (upper panel) and held-out " + scenario_what +
                     " accuracy (lower panel), in %, of the models "
                     "fine-tuned with each \u03bb";
  if (!references.empty()) desc += ", with reference lines for the other models";
  std::string out = svg_open(kWidth, height, id, title, desc + ".");

  struct Panel {
    double ReportModel::*field;
    const char* what;
    const char* colour;
    bool square;
  };
  const Panel panels[] = {{&ReportModel::test_accuracy, "test", kTestColour, false},
                          {&ReportModel::scenario_accuracy, scenario_what.c_str(), kScenarioColour, true}};
  for (int p = 0; p < 2; ++p) {
    const Panel& panel = panels[p];
    const double top = kTop + p * (kPanel + kGap), bottom = top + kPanel;

    // y range in %, from the panel's finite accuracies, padded and rounded to a nice step.
    double lo = INFINITY, hi = -INFINITY;
    for (const ReportModel& m : models) {
      const double v = m.*panel.field;
      if (known(v)) lo = std::min(lo, 100 * std::min(v, 1.0)), hi = std::max(hi, 100 * std::min(v, 1.0));
    }
    if (!(lo <= hi)) lo = 0, hi = 100;
    const double step = nice_step(std::max(hi - lo, 2.0) / 4);
    double y_lo = std::max(0.0, std::floor((lo - step / 2) / step) * step);
    double y_hi = std::min(100.0, std::ceil((hi + step / 2) / step) * step);
    if (y_hi - y_lo < step) y_hi = std::min(100.0, y_lo + step), y_lo = y_hi - step;
    auto ypos = [&](double fraction) {
      return bottom - (100 * std::min(fraction, 1.0) - y_lo) / (y_hi - y_lo) * kPanel;
    };

    // Chosen λ: a band behind everything.
    for (const ReportModel& m : sweep) {
      if (!m.chosen) continue;
      const double x = xpos(m.lambda);
      out += "<rect class=\"chosen-band\" x=\"" + c1(x - 13) + "\" y=\"" + c1(top) + "\" width=\"26\" height=\"" +
             c1(kPanel) + "\" fill=\"#fff1c2\"/>";
      if (p == 0) {
        out += svg_text(x, top - 6, "chosen",
                        "text-anchor=\"middle\" font-size=\"11\" font-weight=\"600\" fill=\"#9a6200\"");
      }
    }

    // Grid, y axis and its label.
    out += "<g class=\"y-axis\" font-size=\"11\" fill=\"#5f6b7e\" text-anchor=\"end\">";
    for (int i = 0; i <= 20; ++i) {
      const double v = y_lo + i * step;
      if (v > y_hi + step * 1e-6) break;
      const double y = bottom - (v - y_lo) / (y_hi - y_lo) * kPanel;
      out += "<line x1=\"" + c1(x0) + "\" x2=\"" + c1(x1) + "\" y1=\"" + c1(y) + "\" y2=\"" + c1(y) +
             "\" stroke=\"#e6e8ed\"/>" + svg_text(x0 - 8, y + 4, fmt::format("{:g}", v));
    }
    out += "</g><g stroke=\"#8a93a3\"><line x1=\"" + c1(x0) + "\" x2=\"" + c1(x0) + "\" y1=\"" + c1(top) + "\" y2=\"" +
           c1(bottom) + "\"/>";
    for (const ReportModel& m : sweep) {  // tick marks at every λ, on both panels
      out += "<line x1=\"" + c1(xpos(m.lambda)) + "\" x2=\"" + c1(xpos(m.lambda)) + "\" y1=\"" + c1(bottom) +
             "\" y2=\"" + c1(bottom + 5) + "\"/>";
    }
    out += "</g>";
    const double mid = (top + bottom) / 2;
    out +=
        svg_text(16, mid, std::string(panel.what) + " accuracy (%)",
                 "transform=\"rotate(-90 16 " + c1(mid) + ")\" text-anchor=\"middle\" fill=\"" + panel.colour + "\"");

    // x axis line, with a break between the λ = 0 slot and the log scale.
    out += "<g class=\"x-axis\" stroke=\"#8a93a3\">";
    if (has_zero && has_positive) {
      const double gap = (zero_x + log_x0) / 2;
      out += "<line x1=\"" + c1(x0) + "\" x2=\"" + c1(gap - 5) + "\" y1=\"" + c1(bottom) + "\" y2=\"" + c1(bottom) +
             "\"/>";
      out += "<line x1=\"" + c1(gap + 5) + "\" x2=\"" + c1(x1) + "\" y1=\"" + c1(bottom) + "\" y2=\"" + c1(bottom) +
             "\"/>";
      for (double dx : {-5.0, 5.0}) {
        out += "<line x1=\"" + c1(gap + dx - 3) + "\" x2=\"" + c1(gap + dx + 3) + "\" y1=\"" + c1(bottom + 5) +
               "\" y2=\"" + c1(bottom - 5) + "\"/>";
      }
    } else {
      out += "<line x1=\"" + c1(x0) + "\" x2=\"" + c1(x1) + "\" y1=\"" + c1(bottom) + "\" y2=\"" + c1(bottom) + "\"/>";
    }
    out += "</g>";

    // Reference lines and their labels in the right margin (pushed apart so they never overlap).
    std::vector<std::pair<double, std::string>> labels;
    for (const ReportModel& m : references) {
      const double v = m.*panel.field;
      if (!known(v)) continue;
      const double y = ypos(v);
      out += "<line class=\"ref\" x1=\"" + c1(x0) + "\" x2=\"" + c1(x1) + "\" y1=\"" + c1(y) + "\" y2=\"" + c1(y) +
             "\" stroke=\"" + panel.colour + "\" stroke-width=\"" + (m.chosen ? "2.5" : "1.6") +
             "\" stroke-dasharray=\"" + (m.name == "original" ? "2 4" : "7 4") + "\"><title>" +
             html_escape(fmt::format("{}: {} accuracy {}", m.name, panel.what, percent(v, 2))) + "</title></line>";
      labels.emplace_back(y, shorten(m.name, 12) + " " + percent(v) + (m.chosen ? " (chosen)" : ""));
    }
    std::sort(labels.begin(), labels.end());
    for (size_t i = 1; i < labels.size(); ++i) labels[i].first = std::max(labels[i].first, labels[i - 1].first + 14);
    if (!labels.empty() && labels.back().first > bottom + 8) {
      const double shift = labels.back().first - (bottom + 8);
      for (auto& label : labels) label.first -= shift;
    }
    for (const auto& [y, text] : labels) {
      out += svg_text(x1 + 8, y + 4, text, "fill=\"" + std::string(panel.colour) + "\" font-size=\"11.5\"");
    }

    // The sweep: a line, then points with a tooltip each (the chosen one larger, ringed).
    std::string points;
    for (const ReportModel& m : sweep) {
      if (known(m.*panel.field)) points += c1(xpos(m.lambda)) + "," + c1(ypos(m.*panel.field)) + " ";
    }
    if (!points.empty()) {
      points.pop_back();
      out += "<polyline fill=\"none\" stroke=\"" + std::string(panel.colour) + "\" stroke-width=\"2\" points=\"" +
             points + "\"/>";
    }
    for (const ReportModel& m : sweep) {
      const double v = m.*panel.field;
      if (!known(v)) continue;
      const double x = xpos(m.lambda), y = ypos(v), r = m.chosen ? 6 : 4;
      const std::string tip = fmt::format("\u03bb = {}: {} accuracy {}{}", lambda_label(m.lambda), panel.what,
                                          percent(v, 2), m.chosen ? " (chosen)" : "");
      const std::string common =
          fmt::format(" class=\"pt-{}\" data-lambda=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"",
                      p == 0 ? "test" : "scenario", lambda_label(m.lambda), panel.colour, m.chosen ? "#1c2130" : "#fff",
                      m.chosen ? 2 : 1.5);
      out += "<g><title>" + html_escape(tip) + "</title>";
      out += panel.square ? "<rect x=\"" + c1(x - r) + "\" y=\"" + c1(y - r) + "\" width=\"" + c1(2 * r) +
                                "\" height=\"" + c1(2 * r) + "\"" + common + "/>"
                          : "<circle cx=\"" + c1(x) + "\" cy=\"" + c1(y) + "\" r=\"" + c1(r) + "\"" + common + "/>";
      out += "</g>";
    }
    if (sweep.empty()) {
      out += svg_text((x0 + x1) / 2, mid, "no \u03bb sweep evaluated", "text-anchor=\"middle\" fill=\"#5f6b7e\"");
    }
  }

  // Tick labels under the lower panel (skipping those that would overlap their left neighbour).
  out += "<g class=\"x-ticks\" font-size=\"11\" fill=\"#5f6b7e\" text-anchor=\"middle\">";
  double last_right = -INFINITY;
  for (const ReportModel& m : sweep) {
    const double x = xpos(m.lambda);
    const std::string label = lambda_label(m.lambda);
    const double half = text_px(label, 11) / 2;
    if (x - half < last_right + 4) continue;
    out += svg_text(x, axis_y + 18, label, m.chosen ? "font-weight=\"700\" fill=\"#1c2130\"" : "");
    last_right = x + half;
  }
  out += "</g>";
  out +=
      svg_text((x0 + x1) / 2, axis_y + 44,
               has_positive ? "\u03bb, weight of the scenario loss (log scale)" : "\u03bb, weight of the scenario loss",
               "text-anchor=\"middle\" fill=\"#1c2130\"");

  // Legend across the top.
  double lx = x0;
  const double ly = 18;
  auto legend = [&](const std::string& mark, const std::string& text) {
    out += mark + svg_text(lx + 30, ly + 4, text, "fill=\"#1c2130\"");
    lx += 30 + text_px(text, 12) + 18;
  };
  auto line = [&](const char* colour, const std::string& dash) {
    return "<line x1=\"" + c1(lx) + "\" x2=\"" + c1(lx + 24) + "\" y1=\"" + c1(ly) + "\" y2=\"" + c1(ly) +
           "\" stroke=\"" + colour + "\" stroke-width=\"2\"" +
           (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + "/>";
  };
  out += "<g class=\"legend\">";
  if (!sweep.empty()) {
    legend(line(kTestColour, "") + "<circle cx=\"" + c1(lx + 12) + "\" cy=\"" + c1(ly) + "\" r=\"4\" fill=\"" +
               kTestColour + "\"/>",
           "test accuracy");
    legend(line(kScenarioColour, "") + "<rect x=\"" + c1(lx + 8) + "\" y=\"" + c1(ly - 4) +
               "\" width=\"8\" height=\"8\" fill=\"" + kScenarioColour + "\"/>",
           "scenario accuracy");
  }
  auto any_reference = [&](bool original) {
    return std::any_of(references.begin(), references.end(),
                       [&](const ReportModel& m) { return (m.name == "original") == original; });
  };
  if (any_reference(true)) legend(line("#5f6b7e", "2 4"), "original");
  if (any_reference(false)) legend(line("#5f6b7e", "7 4"), "baseline");
  if (std::any_of(sweep.begin(), sweep.end(), [](const ReportModel& m) { return m.chosen; })) {
    legend("<rect x=\"" + c1(lx + 5) + "\" y=\"" + c1(ly - 7) + "\" width=\"14\" height=\"14\" fill=\"#fff1c2\"/>",
           "chosen \u03bb");
  }
  return out + "</g></svg>";
}

}  // namespace defuse
