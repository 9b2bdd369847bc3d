#include "defuse/report/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <utility>

namespace defuse {

namespace {

// ---------------------------------------------------------------------------------------
// Formatting

bool known(double v) { return std::isfinite(v) && v >= 0; }

// A coordinate for SVG: one decimal, never NaN or infinite (those are drawn at 0).
std::string c1(double v) { return fmt::format("{:.1f}", std::isfinite(v) ? v : 0.0); }

std::string percent(double fraction, int decimals = 1) {
  if (!known(fraction)) return "\u2013";
  return fmt::format("{:.{}f}%", 100.0 * fraction, decimals);
}

std::string count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// λ as a short tick label: 0, 0.001, 1e-05, 0.3, 10.
std::string lambda_label(double lambda) { return lambda == 0 ? "0" : fmt::format("{:g}", lambda); }

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Whether a summary value reads as a number (with an optional unit): right-aligned.
bool looks_numeric(std::string_view v) {
  if (v.empty() || v.size() > 32) return false;
  size_t i = (v[0] == '-' || v[0] == '+') ? 1 : 0;
  return i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]));
}

std::string class_name(const std::vector<std::string>& names, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(names.size())) return names[index];
  return "class " + std::to_string(index);
}

// Long names would run out of a legend: cut at `max` code points with an ellipsis.
std::string shorten(const std::string& text, size_t max) {
  size_t points = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && points++ == max) {
      return text.substr(0, i) + "\u2026";
    }
  }
  return text;
}

// Rough width in pixels of `text` at `font_px` (sans-serif averages ~0.58 em a glyph).
double text_px(const std::string& text, double font_px) {
  size_t points = 0;
  for (unsigned char c : text) points += (c & 0xC0) != 0x80;
  return 0.58 * font_px * static_cast<double>(points);
}

// The width and height in an image's PNG header (IHDR), if it has one.
std::optional<std::pair<int64_t, int64_t>> png_size(std::string_view png) {
  static constexpr std::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  if (png.size() < 24 || png.substr(0, 8) != kSignature || png.substr(12, 4) != "IHDR") return std::nullopt;
  auto be32 = [&](size_t at) {
    int64_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(png[at + i]);
    return v;
  };
  int64_t w = be32(16), h = be32(20);
  if (w <= 0 || h <= 0) return std::nullopt;
  return std::make_pair(w, h);
}

// ---------------------------------------------------------------------------------------
// Images

// An <img> with its PNG inline. Small images are upscaled by an integer factor (at most
// `max_scale`, and so that neither side exceeds `max_px`) and drawn pixelated.
std::string img_tag(const ReportImage& image, int64_t max_px, int64_t max_scale, const std::string& css_class) {
  const std::string alt = html_escape(image.caption.empty() ? "image" : image.caption);
  if (image.png.empty()) return "<span class=\"" + css_class + " missing\" role=\"img\" aria-label=\"" + alt + "\">no image</span>";
  std::string size;
  if (auto wh = png_size(image.png)) {
    const int64_t side = std::max(wh->first, wh->second);
    const int64_t scale = std::clamp<int64_t>(max_px / side, 1, max_scale);
    size = fmt::format(" width=\"{}\" height=\"{}\"", wh->first * scale, wh->second * scale);
  }
  return "<img class=\"" + css_class + "\" src=\"" + png_data_uri(image.png) + "\"" + size + " alt=\"" + alt + "\">";
}

std::string tone_class(const std::string& tone) {
  if (tone == "bad" || tone == "good" || tone == "muted") return " tone-" + tone;
  return "";
}

std::string gallery(const std::vector<ReportImage>& images, const std::string& label) {
  std::string out = "<div class=\"gallery\" role=\"list\" aria-label=\"" + html_escape(label) + "\">";
  for (const ReportImage& image : images) {
    out += "<figure class=\"tile" + tone_class(image.tone) + "\" role=\"listitem\">";
    out += img_tag(image, 84, 3, "thumb");
    if (!image.caption.empty()) out += "<figcaption>" + html_escape(image.caption) + "</figcaption>";
    out += "</figure>";
  }
  return out + "</div>";
}

// A figure wide enough for a page (failure grid, interpolation strip).
std::string wide_figure(const ReportImage& image) {
  std::string out = "<figure class=\"wide" + tone_class(image.tone) + "\">" + img_tag(image, 1100, 3, "wide-img");
  if (!image.caption.empty()) out += "<figcaption>" + html_escape(image.caption) + "</figcaption>";
  return out + "</figure>";
}

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
  return "M" + c1(x - s) + " " + c1(y - s) + "l" + c1(2 * s) + " " + c1(2 * s) + "m0 " + c1(-2 * s) + "l" +
         c1(-2 * s) + " " + c1(2 * s);
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

// ---------------------------------------------------------------------------------------
// Page sections

const char* kCss = R"css(
:root { --ink:#1c2130; --muted:#5f6b7e; --line:#e1e4ea; --bg:#f5f6f8; --card:#fff; --accent:#2b59c3;
  --accent-soft:#e9effc; --good:#1d7f46; --good-soft:#e3f4ea; --bad:#c0392b; --bad-soft:#fbe9e7;
  --warn:#9a6200; --warn-soft:#fdf3dc; color-scheme: light; }
* { box-sizing: border-box; }
html { scroll-padding-top: 56px; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 26px 0 18px; }
h1 { font-size: 26px; line-height: 1.25; margin: 0 0 4px; letter-spacing: -0.01em; overflow-wrap: anywhere; }
.meta { color: var(--muted); margin: 0; font-size: 13.5px; }
nav.toc { position: sticky; top: 0; z-index: 2; background: rgba(255,255,255,0.96);
  border-bottom: 1px solid var(--line); box-shadow: 0 1px 3px rgba(20,30,60,0.05); }
nav.toc ol { list-style: none; display: flex; flex-wrap: wrap; gap: 2px 4px; margin: 0; padding: 8px 0; }
nav.toc a { display: inline-block; padding: 4px 10px; border-radius: 6px; color: var(--ink);
  text-decoration: none; font-size: 13.5px; }
nav.toc a:hover, nav.toc a:focus { background: var(--accent-soft); color: var(--accent); }
nav.toc .n { color: var(--muted); font-variant-numeric: tabular-nums; }
main { padding: 8px 0 40px; }
section { margin: 34px 0 0; }
h2 { font-size: 21px; margin: 0 0 6px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h2 a.anchor { color: var(--line); text-decoration: none; margin-left: 6px; font-weight: 400; }
h2:hover a.anchor { color: var(--muted); }
h3 { font-size: 16px; margin: 0 0 8px; }
h4 { font-size: 12.5px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.05em; }
p.lead { color: var(--muted); margin: 4px 0 14px; max-width: 820px; }
p.na { color: var(--muted); font-style: italic; background: var(--card); border: 1px dashed var(--line);
  border-radius: 8px; padding: 12px 16px; }
.notes { background: var(--warn-soft); border: 1px solid #efd28f; border-radius: 8px; padding: 10px 16px 10px 36px;
  margin: 18px 0 0; color: #5c3d00; }
.notes li { margin: 2px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 18px;
  box-shadow: 0 1px 2px rgba(20,30,60,0.04); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 14px; align-items: start; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; text-align: left; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:last-child td, tbody tr:last-child th { border-bottom: none; }
.kv th { font-weight: 500; color: var(--muted); width: 45%; }
.kv td { overflow-wrap: anywhere; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.table-card { padding: 6px 10px; overflow-x: auto; }
tr.chosen td { background: var(--accent-soft); font-weight: 600; }
a { color: var(--accent); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: #eceef2; color: var(--muted); white-space: nowrap; }
.badge.good { background: var(--good-soft); color: var(--good); }
.badge.bad { background: var(--bad-soft); color: var(--bad); }
.badge.warn { background: var(--warn-soft); color: var(--warn); }
.badge.auto { background: var(--accent-soft); color: var(--accent); }
.arrow { color: var(--muted); padding: 0 3px; }
.scenario { margin: 14px 0 0; }
.scenario header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 12px; margin-bottom: 6px; }
.scenario header h3 { margin: 0; }
.rank { color: var(--muted); font-weight: 500; margin-right: 4px; }
dl.stats { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 4px 0 0; }
dl.stats div { display: flex; flex-direction: column; }
dl.stats dt { font-size: 11.5px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
dl.stats dd { margin: 0; font-size: 16px; font-weight: 600; font-variant-numeric: tabular-nums; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px 8px; }
figure { margin: 0; }
figure.tile { display: flex; flex-direction: column; align-items: center; max-width: 96px; }
figure.tile figcaption { font-size: 11.5px; line-height: 1.25; color: var(--muted); text-align: center;
  margin-top: 3px; overflow-wrap: anywhere; }
img.thumb, img.wide-img { image-rendering: pixelated; image-rendering: crisp-edges; display: block; }
img.thumb { border: 2px solid #d5d9e0; border-radius: 4px; background: #000; max-width: 88px; height: auto; }
.tone-bad img.thumb { border-color: var(--bad); }
.tone-bad figcaption { color: var(--bad); }
.tone-good img.thumb { border-color: var(--good); }
.tone-good figcaption { color: var(--good); }
.tone-muted { opacity: 0.55; }
.missing { display: inline-flex; align-items: center; justify-content: center; width: 84px; height: 84px;
  border: 2px dashed #d5d9e0; border-radius: 4px; color: var(--muted); font-size: 11px; }
figure.wide { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; overflow-x: auto; }
figure.wide img { max-width: 100%; height: auto; margin: 0 auto; }
figure.wide figcaption, figure.plot figcaption { color: var(--muted); font-size: 13px; margin-top: 8px; }
figure.plot { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
svg.plot { display: block; max-width: 100%; height: auto; margin: 0 auto; }
.bars { width: 180px; }
.bar { height: 7px; border-radius: 4px; background: #eceef2; position: relative; margin: 3px 0; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 4px; }
.bar.before span { background: #9aa3b2; }
.bar.after span { background: var(--good); }
.bar.after.worse span { background: var(--bad); }
.delta.up { color: var(--good); } .delta.down { color: var(--bad); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
footer { color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); padding: 16px 0 28px; margin-top: 40px; }
@media print { nav.toc { position: static; } .card, figure, .scenario { break-inside: avoid; } body { background: #fff; } }
)css";

struct TocEntry {
  std::string id, label, count;
};

std::string section_open(const std::string& id, const std::string& title) {
  return "<section id=\"" + id + "\" aria-labelledby=\"" + id + "-h\"><h2 id=\"" + id + "-h\">" + html_escape(title) +
         "<a class=\"anchor\" href=\"#" + id + "\" aria-label=\"link to this section\">#</a></h2>";
}

std::string not_available(const std::string& text) { return "<p class=\"na\">" + html_escape(text) + "</p>"; }

std::string annotation_badge(const ReportScenario& s) {
  const std::string& a = s.annotation;
  std::string tone = starts_with(a, "labelled") ? "good" : starts_with(a, "rejected") ? "bad"
                     : starts_with(a, "tie")    ? "warn" : "";
  std::string out = "<span class=\"badge " + tone + "\">" + html_escape(a.empty() ? "unlabelled" : a) + "</span>";
  if (s.automatic) out += " <span class=\"badge auto\" title=\"label chosen by --auto, not by a person\">automatic</span>";
  return out;
}

std::string scenario_title(const ReportScenario& s) {
  return html_escape(s.seed_label) + "<span class=\"arrow\" aria-label=\"predicted as\">\u2192</span>" +
         html_escape(s.predicted_label);
}

std::string summary_section(const ReportData& data) {
  std::string out = section_open("summary", "Summary");
  if (data.summary.empty()) return out + not_available("No stage settings recorded.") + "</section>";
  out += "<div class=\"cards\">";
  for (const ReportSection& section : data.summary) {
    out += "<div class=\"card\"><h3>" + html_escape(section.title) + "</h3><table class=\"kv\"><tbody>";
    for (const ReportKeyValue& row : section.rows) {
      out += "<tr><th scope=\"row\">" + html_escape(row.key) + "</th><td" +
             (looks_numeric(row.value) ? " class=\"num\"" : "") + ">" + html_escape(row.value) + "</td></tr>";
    }
    out += "</tbody></table></div>";
  }
  return out + "</div></section>";
}

std::string scenarios_section(const ReportData& data) {
  std::string out = section_open("scenarios", "Failure scenarios");
  if (data.scenarios.empty()) return out + not_available("No failure scenarios (run distill).") + "</section>";
  out += "<p class=\"lead\">Clusters of the classifier's failures in the VAE's latent space, ranked. "
         "Each shows decoded samples from the scenario (red: misclassified) and the nearest real images.</p>";
  // Overview table.
  out += "<div class=\"card table-card\"><table><thead><tr><th class=\"num\">rank</th><th>scenario</th>"
         "<th>true \u2192 predicted</th><th class=\"num\">weight</th><th class=\"num\">failure rate</th>"
         "<th class=\"num\">members</th><th class=\"num\">neighbour acc.</th><th>annotation</th></tr></thead><tbody>";
  for (size_t i = 0; i < data.scenarios.size(); ++i) {
    const ReportScenario& s = data.scenarios[i];
    out += fmt::format("<tr><td class=\"num\">{}</td><td><a href=\"#scenario-{}\">scenario {}</a></td><td>", i + 1, s.id, s.id) +
           scenario_title(s) + "</td><td class=\"num\">" + percent(s.weight) + "</td><td class=\"num\">" +
           percent(s.failure_rate) + "</td><td class=\"num\">" + count(s.members) + "</td><td class=\"num\">" +
           percent(s.neighbour_accuracy) + "</td><td>" + annotation_badge(s) + "</td></tr>";
  }
  out += "</tbody></table></div>";
  // One card per scenario.
  for (size_t i = 0; i < data.scenarios.size(); ++i) {
    const ReportScenario& s = data.scenarios[i];
    out += fmt::format("<article class=\"card scenario\" id=\"scenario-{}\"><header><h3><span class=\"rank\">#{}</span>"
                       "Scenario {}: ", s.id, i + 1, s.id) +
           scenario_title(s) + "</h3>" + annotation_badge(s) + "</header><dl class=\"stats\">";
    auto stat = [&](const std::string& name, const std::string& value) {
      out += "<div><dt>" + name + "</dt><dd>" + value + "</dd></div>";
    };
    stat("weight", percent(s.weight));
    stat("failure rate", percent(s.failure_rate));
    stat("members", count(s.members));
    stat("neighbour accuracy", percent(s.neighbour_accuracy));
    if (known(s.accuracy_before) || known(s.accuracy_after)) {
      stat("accuracy before \u2192 after", percent(s.accuracy_before) + " \u2192 " + percent(s.accuracy_after));
    }
    out += "</dl>";
    const std::string name = fmt::format("scenario {}", s.id);
    out += "<h4>Samples</h4>";
    out += s.samples.empty() ? not_available("No samples.") : gallery(s.samples, "samples of " + name);
    out += "<h4>Nearest real images</h4>";
    out += s.neighbours.empty() ? not_available("No nearest images.") : gallery(s.neighbours, "nearest real images of " + name);
    out += "</article>";
  }
  return out + "</section>";
}

bool map_empty(const ReportMap& map) {
  return map.train.empty() && map.failures.empty() && map.scenario_means.empty();
}

std::string map_section(const ReportData& data) {
  std::string out = section_open("latent-map", "Latent map");
  if (map_empty(data.map)) return out + not_available("Latent map not available.") + "</section>";
  out += "<p class=\"lead\">A 2-D embedding of the latent codes: training codes as light dots, failure codes as "
         "crosses, scenario means as numbered discs, coloured by (seed) class.</p>";
  out += "<figure class=\"plot\">" + svg_latent_map(data.map, data.class_names);
  if (!data.map.note.empty()) out += "<figcaption>" + html_escape(data.map.note) + "</figcaption>";
  return out + "</figure></section>";
}

std::string lambda_section(const ReportData& data) {
  std::string out = section_open("lambda-curves", "\u03bb sweep");
  if (data.models.empty()) return out + not_available("Not evaluated: no corrected models.") + "</section>";
  out += "<p class=\"lead\">Test accuracy and held-out scenario accuracy of each fine-tuned model against the weight "
         "\u03bb of the scenario loss, with the failures-only baseline (dashed) and the original model (dotted).</p>";
  out += "<figure class=\"plot\">" + svg_lambda_curves(data.models);
  if (!data.choice_rule.empty()) out += "<figcaption>Choice of \u03bb: " + html_escape(data.choice_rule) + "</figcaption>";
  out += "</figure>";
  out += "<h4>Models</h4><div class=\"card table-card\"><table><thead><tr><th>model</th><th class=\"num\">\u03bb</th>"
         "<th class=\"num\">test accuracy</th><th class=\"num\">scenario accuracy</th><th class=\"num\">failure accuracy</th>"
         "<th>chosen</th></tr></thead><tbody>";
  for (const ReportModel& m : data.models) {
    out += std::string("<tr") + (m.chosen ? " class=\"chosen\"" : "") + "><td>" + html_escape(m.name) +
           "</td><td class=\"num\">" + (std::isfinite(m.lambda) && m.lambda >= 0 ? lambda_label(m.lambda) : "\u2013") +
           "</td><td class=\"num\">" + percent(m.test_accuracy, 2) + "</td><td class=\"num\">" +
           percent(m.scenario_accuracy, 2) + "</td><td class=\"num\">" + percent(m.failure_accuracy, 2) + "</td><td>" +
           (m.chosen ? "<span class=\"badge good\">chosen</span>" : "") + "</td></tr>";
  }
  return out + "</tbody></table></div></section>";
}

std::string before_after_section(const ReportData& data) {
  std::string out = section_open("before-after", "Before and after, per scenario");
  const bool any = std::any_of(data.scenarios.begin(), data.scenarios.end(), [](const ReportScenario& s) {
    return known(s.accuracy_before) || known(s.accuracy_after);
  });
  if (!any) return out + not_available("Not evaluated: no held-out scenario accuracy.") + "</section>";
  out += "<p class=\"lead\">Accuracy on fresh draws from each scenario (not used for training): the original model "
         "against the chosen corrected model.</p>";
  out += "<div class=\"card table-card\"><table><thead><tr><th>scenario</th><th>true \u2192 predicted</th>"
         "<th>annotation</th><th class=\"num\">before</th><th class=\"num\">after</th><th class=\"num\">change</th>"
         "<th><span class=\"sr\">bars</span></th></tr></thead><tbody>";
  for (const ReportScenario& s : data.scenarios) {
    std::string change = "\u2013", change_class;
    if (known(s.accuracy_before) && known(s.accuracy_after)) {
      const double d = 100.0 * (s.accuracy_after - s.accuracy_before);
      change = fmt::format("{}{:.1f} pp", d > 0 ? "+" : d < 0 ? "\u2212" : "", std::fabs(d));
      change_class = d > 0.05 ? " up" : d < -0.05 ? " down" : "";
    }
    auto bar = [](const char* kind, double v, bool worse) {
      const double w = known(v) ? std::min(1.0, v) * 100.0 : 0.0;
      return fmt::format("<div class=\"bar {}{}\" title=\"{} {}\"><span style=\"width:{:.1f}%\"></span></div>", kind,
                         worse ? " worse" : "", kind, known(v) ? fmt::format("{:.1f}%", 100 * v) : "not evaluated", w);
    };
    const bool worse = known(s.accuracy_before) && known(s.accuracy_after) && s.accuracy_after < s.accuracy_before;
    out += fmt::format("<tr><td><a href=\"#scenario-{0}\">scenario {0}</a></td><td>", s.id) + scenario_title(s) +
           "</td><td>" + annotation_badge(s) + "</td><td class=\"num\">" + percent(s.accuracy_before) +
           "</td><td class=\"num\">" + percent(s.accuracy_after) + "</td><td class=\"num delta" + change_class + "\">" +
           change + "</td><td class=\"bars\">" + bar("before", s.accuracy_before, false) +
           bar("after", s.accuracy_after, worse) + "</td></tr>";
  }
  return out + "</tbody></table></div></section>";
}

std::string image_section(const std::string& id, const std::string& title, const std::string& lead,
                          const std::optional<ReportImage>& image) {
  std::string out = section_open(id, title);
  if (!image) return out + not_available(title + " not available.") + "</section>";
  return out + "<p class=\"lead\">" + html_escape(lead) + "</p>" + wide_figure(*image) + "</section>";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Helpers

std::string png_data_uri(std::string_view png) { return "data:image/png;base64," + base64_encode(png); }

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
  const std::string desc = fmt::format(
      "Scatter of {} training codes, {} failure codes and {} scenario means in 2-D, coloured by class.",
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

std::string svg_lambda_curves(const std::vector<ReportModel>& models) {
  const std::string id = "lambda-curves-svg", title = "Accuracy against \u03bb";
  if (models.empty()) return svg_empty(id, title, "No models evaluated.");
  auto is_sweep = [](const ReportModel& m) {
    return std::isfinite(m.lambda) && m.lambda >= 0 && m.name != "original" && m.name != "baseline";
  };
  std::vector<ReportModel> sweep, references;
  for (const ReportModel& m : models) (is_sweep(m) ? sweep : references).push_back(m);
  std::stable_sort(sweep.begin(), sweep.end(), [](const ReportModel& a, const ReportModel& b) { return a.lambda < b.lambda; });

  constexpr double kWidth = 780, kLeft = 62, kRight = 170, kTop = 52, kPanel = 170, kGap = 34;
  const double x0 = kLeft, x1 = kWidth - kRight, axis_y = kTop + 2 * kPanel + kGap, height = axis_y + 62;

  // x positions: λ = 0 in its own slot, positive λ on a log scale.
  double pos_min = INFINITY, pos_max = 0;
  bool has_zero = false;
  for (const ReportModel& m : sweep) {
    if (m.lambda == 0) has_zero = true;
    else pos_min = std::min(pos_min, m.lambda), pos_max = std::max(pos_max, m.lambda);
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

  std::string desc = "Test accuracy (upper panel) and held-out scenario accuracy (lower panel), in %, of the models "
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
                          {&ReportModel::scenario_accuracy, "scenario", kScenarioColour, true}};
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
    auto ypos = [&](double fraction) { return bottom - (100 * std::min(fraction, 1.0) - y_lo) / (y_hi - y_lo) * kPanel; };

    // Chosen λ: a band behind everything.
    for (const ReportModel& m : sweep) {
      if (!m.chosen) continue;
      const double x = xpos(m.lambda);
      out += "<rect class=\"chosen-band\" x=\"" + c1(x - 13) + "\" y=\"" + c1(top) + "\" width=\"26\" height=\"" +
             c1(kPanel) + "\" fill=\"#fff1c2\"/>";
      if (p == 0) {
        out += svg_text(x, top - 6, "chosen", "text-anchor=\"middle\" font-size=\"11\" font-weight=\"600\" fill=\"#9a6200\"");
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
    out += svg_text(16, mid, std::string(panel.what) + " accuracy (%)",
                    "transform=\"rotate(-90 16 " + c1(mid) + ")\" text-anchor=\"middle\" fill=\"" + panel.colour + "\"");

    // x axis line, with a break between the λ = 0 slot and the log scale.
    out += "<g class=\"x-axis\" stroke=\"#8a93a3\">";
    if (has_zero && has_positive) {
      const double gap = (zero_x + log_x0) / 2;
      out += "<line x1=\"" + c1(x0) + "\" x2=\"" + c1(gap - 5) + "\" y1=\"" + c1(bottom) + "\" y2=\"" + c1(bottom) + "\"/>";
      out += "<line x1=\"" + c1(gap + 5) + "\" x2=\"" + c1(x1) + "\" y1=\"" + c1(bottom) + "\" y2=\"" + c1(bottom) + "\"/>";
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
      out += "<polyline fill=\"none\" stroke=\"" + std::string(panel.colour) + "\" stroke-width=\"2\" points=\"" + points + "\"/>";
    }
    for (const ReportModel& m : sweep) {
      const double v = m.*panel.field;
      if (!known(v)) continue;
      const double x = xpos(m.lambda), y = ypos(v), r = m.chosen ? 6 : 4;
      const std::string tip = fmt::format("\u03bb = {}: {} accuracy {}{}", lambda_label(m.lambda), panel.what,
                                          percent(v, 2), m.chosen ? " (chosen)" : "");
      const std::string common =
          fmt::format(" class=\"pt-{}\" data-lambda=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"", panel.what,
                      lambda_label(m.lambda), panel.colour, m.chosen ? "#1c2130" : "#fff", m.chosen ? 2 : 1.5);
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
  out += svg_text((x0 + x1) / 2, axis_y + 44,
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
    return "<line x1=\"" + c1(lx) + "\" x2=\"" + c1(lx + 24) + "\" y1=\"" + c1(ly) + "\" y2=\"" + c1(ly) + "\" stroke=\"" +
           colour + "\" stroke-width=\"2\"" + (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") + "/>";
  };
  out += "<g class=\"legend\">";
  if (!sweep.empty()) {
    legend(line(kTestColour, "") + "<circle cx=\"" + c1(lx + 12) + "\" cy=\"" + c1(ly) + "\" r=\"4\" fill=\"" +
               kTestColour + "\"/>", "test accuracy");
    legend(line(kScenarioColour, "") + "<rect x=\"" + c1(lx + 8) + "\" y=\"" + c1(ly - 4) +
               "\" width=\"8\" height=\"8\" fill=\"" + kScenarioColour + "\"/>", "scenario accuracy");
  }
  auto any_reference = [&](bool original) {
    return std::any_of(references.begin(), references.end(), [&](const ReportModel& m) { return (m.name == "original") == original; });
  };
  if (any_reference(true)) legend(line("#5f6b7e", "2 4"), "original");
  if (any_reference(false)) legend(line("#5f6b7e", "7 4"), "baseline");
  if (std::any_of(sweep.begin(), sweep.end(), [](const ReportModel& m) { return m.chosen; })) {
    legend("<rect x=\"" + c1(lx + 5) + "\" y=\"" + c1(ly - 7) + "\" width=\"14\" height=\"14\" fill=\"#fff1c2\"/>", "chosen \u03bb");
  }
  return out + "</g></svg>";
}

// ---------------------------------------------------------------------------------------
// The page

std::string render_report(const ReportData& data) {
  const std::string title = data.title.empty() ? "defuse report" : data.title;
  std::vector<TocEntry> toc = {
      {"summary", "Summary", ""},
      {"scenarios", "Scenarios", data.scenarios.empty() ? "" : std::to_string(data.scenarios.size())},
      {"latent-map", "Latent map", ""},
      {"lambda-curves", "\u03bb sweep", data.models.empty() ? "" : std::to_string(data.models.size())},
      {"before-after", "Before / after", ""},
      {"interpolation", "Interpolation", ""},
      {"failure-grid", "Failure grid", ""},
  };

  std::string out;
  out.reserve(1 << 16);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         // Nothing may load from anywhere: the report is one file that works offline.
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
         "style-src 'unsafe-inline'\">\n"
         "<meta name=\"generator\" content=\"defuse " DEFUSE_VERSION "\">\n<title>" +
         html_escape(title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  out += "<header class=\"top\"><div class=\"wrap\"><h1>" + html_escape(title) + "</h1><p class=\"meta\">";
  if (!data.generated_at.empty()) out += "Generated " + html_escape(data.generated_at) + " \u00b7 ";
  out += "defuse " DEFUSE_VERSION;
  if (!data.class_names.empty()) out += fmt::format(" \u00b7 {} classes", data.class_names.size());
  out += "</p>";
  if (!data.notes.empty()) {
    out += "<ul class=\"notes\" id=\"notes\" aria-label=\"warnings\">";
    for (const std::string& note : data.notes) out += "<li>" + html_escape(note) + "</li>";
    out += "</ul>";
  }
  out += "</div></header>\n<nav class=\"toc\" aria-label=\"contents\"><div class=\"wrap\"><ol>";
  for (const TocEntry& e : toc) {
    out += "<li><a href=\"#" + e.id + "\">" + html_escape(e.label) +
           (e.count.empty() ? "" : " <span class=\"n\">" + e.count + "</span>") + "</a></li>";
  }
  out += "</ol></div></nav>\n<main class=\"wrap\">\n";
  out += summary_section(data) + "\n";
  out += scenarios_section(data) + "\n";
  out += map_section(data) + "\n";
  out += lambda_section(data) + "\n";
  out += before_after_section(data) + "\n";
  out += image_section("interpolation", "Interpolation",
                       "Decodes along a straight line in latent space from a correctly classified seed into a failure "
                       "scenario, with the classifier's prediction under each.",
                       data.interpolation) + "\n";
  out += image_section("failure-grid", "Failure grid",
                       "Seed images (framed) and failures found near them in latent space, with the predicted class.",
                       data.failure_grid) + "\n";
  out += "</main>\n<footer><div class=\"wrap\">Written by defuse " DEFUSE_VERSION;
  if (!data.generated_at.empty()) out += " at " + html_escape(data.generated_at);
  out += ". A single self-contained file: images are inline, nothing is loaded from the network.</div></footer>\n"
         "</body>\n</html>\n";
  return out;
}

}  // namespace defuse
