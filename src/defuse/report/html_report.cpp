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

#include "defuse/report/embedded_assets.h"
#include "defuse/report/report_format.h"

namespace defuse {

using namespace report;

namespace {

std::string_view report_css() {
  const EmbeddedAsset* css = find_asset(kReportAssets, kReportAssetsCount, "report.css");
  return css ? css->text() : std::string_view();
}

// ---------------------------------------------------------------------------------------
// Images

// An <img> with its PNG inline. Small images are upscaled by an integer factor (at most
// `max_scale`, and so that neither side exceeds `max_px`) and drawn pixelated.
std::string img_tag(const ReportImage& image, int64_t max_px, int64_t max_scale, const std::string& css_class) {
  const std::string alt = html_escape(image.caption.empty() ? "image" : image.caption);
  if (image.png.empty())
    return "<span class=\"" + css_class + " missing\" role=\"img\" aria-label=\"" + alt + "\">no image</span>";
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
  std::string tone = starts_with(a, "labelled")   ? "good"
                     : starts_with(a, "rejected") ? "bad"
                     : starts_with(a, "tie")      ? "warn"
                                                  : "";
  std::string out = "<span class=\"badge " + tone + "\">" + html_escape(a.empty() ? "unlabelled" : a) + "</span>";
  if (s.automatic)
    out += " <span class=\"badge auto\" title=\"label chosen by --auto, not by a person\">automatic</span>";
  return out;
}

std::string scenario_title(const ReportScenario& s) {
  return html_escape(s.seed_label) + "<span class=\"arrow\" aria-label=\"predicted as\">\u2192</span>" +
         html_escape(s.predicted_label);
}

std::string summary_section(const ReportData& data) {
  std::string out = section_open("summary", "Settings and timings");
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

std::string verdict_badge(const ReportScenario& s) {
  if (s.verdict.empty()) return "<span class=\"badge\" title=\"no judges read this scenario\">not checked</span>";
  if (s.verdict == "genuine")
    return "<span class=\"badge bad\" title=\"the judges read its failures as the seed's label: the classifier is "
           "wrong here\">genuine failure</span>";
  if (s.verdict == "label-change")
    return "<span class=\"badge good\" title=\"the judges read its failures as the classifier does: the decodes "
           "turned into that class\">label change: classifier right</span>";
  return "<span class=\"badge warn\" title=\"the judges disagree or are unsure\">ambiguous</span>";
}

std::string findings_section(const ReportData& data) {
  const ReportFindings& f = data.findings;
  std::string out = section_open("findings", "Findings");
  if (f.scenarios < 0 && !known(f.reconstruction_accuracy) && f.chosen.empty())
    return out + not_available("No findings yet: run `defuse identify` and `defuse distill` (or `defuse run`).") +
           "</section>";
  out += "<div class=\"card findings\"><ul>";
  if (f.scenarios < 0) {
    out += "<li>No failure scenarios yet (run <code>defuse identify</code> and <code>defuse distill</code>).</li>";
  } else if (f.genuine >= 0) {
    out += fmt::format(
        "<li><strong>{} genuine failure scenario{}</strong>: images a careful reader gives the seed's "
        "label and the classifier does not ({}).</li>",
        f.genuine, f.genuine == 1 ? "" : "s", html_escape(f.judges));
    out += fmt::format(
        "<li>{} label change{} (the decodes turned into the class the classifier names: it is right "
        "there, not a bug) and {} ambiguous scenario{}, listed apart below.</li>",
        f.label_change, f.label_change == 1 ? "" : "s", f.ambiguous, f.ambiguous == 1 ? "" : "s");
    if (f.failing_decodes >= 0 && f.failing_genuine >= 0)
      out += fmt::format(
          "<li>Of {} decodes the classifier got wrong, the judges read {} as the seed's label "
          "(genuine), {} as the classifier did (label changes) and {} as neither; {} failures were kept "
          "(gate: {}).</li>",
          count(f.failing_decodes), count(f.failing_genuine), count(f.failing_label_change), count(f.failing_ambiguous),
          count(f.failures), html_escape(f.gate));
  } else {
    out += fmt::format(
        "<li>{} failure scenarios, <strong>not checked</strong>: no judges read them, so many may be "
        "decodes that turned into another class where the classifier is right (run <code>defuse "
        "train-judges</code>).</li>",
        f.scenarios);
  }
  if (known(f.reconstruction_accuracy))
    out += fmt::format(
        "<li>Generator fidelity: the classifier reads {} of the VAE's reconstructions of the test "
        "images right, against {} of the images themselves (ratio {:.3f}){}.</li>",
        percent(f.reconstruction_accuracy, 2), percent(f.test_accuracy, 2),
        f.test_accuracy > 0 ? f.reconstruction_accuracy / f.test_accuracy : 0.0,
        f.seeds_bad_reconstruction > 0
            ? fmt::format("; {} of {} seeds were skipped because their reconstruction is already "
                          "misread",
                          count(f.seeds_bad_reconstruction), count(f.seeds_checked))
            : std::string());
  if (!f.chosen.empty()) {
    const bool genuine = known(f.original_genuine);
    out += fmt::format(
        "<li>Correction: <strong>{}</strong> keeps test accuracy at {} and takes held-out {} accuracy "
        "from {} to <strong>{}</strong>{}.</li>",
        html_escape(f.chosen), percent(f.chosen_test_accuracy, 2), genuine ? "genuine-scenario" : "scenario",
        percent(genuine ? f.original_genuine : f.original_scenario),
        percent(genuine ? f.chosen_genuine : f.chosen_scenario),
        f.labels_from.empty() ? "" : "; labels from " + html_escape(f.labels_from));
  }
  out += "</ul></div>";
  // The top genuine scenarios, with their failures.
  int shown = 0;
  for (const ReportScenario& s : data.scenarios) {
    if (shown == 3) break;
    if (!s.verdict.empty() && s.verdict != "genuine") continue;
    if (shown == 0) out += "<h4>Top scenarios</h4><div class=\"cards\">";
    ++shown;
    out += fmt::format("<div class=\"card\"><h3><a href=\"#scenario-{0}\">Scenario {0}</a>: ", s.id) +
           scenario_title(s) + " " + verdict_badge(s) + "</h3>";
    const auto& images = s.member_images.empty() ? s.samples : s.member_images;
    std::vector<ReportImage> few(images.begin(), images.begin() + std::min<size_t>(images.size(), 6));
    out += gallery(few, fmt::format("failures of scenario {}", s.id));
    if (known(s.accuracy_before) || known(s.accuracy_after))
      out += "<p class=\"meta\">held-out accuracy " + percent(s.accuracy_before) + " \u2192 " +
             percent(s.accuracy_after) + "</p>";
    out += "</div>";
  }
  if (shown > 0) out += "</div>";
  return out + "</section>";
}

std::string scenarios_section(const ReportData& data) {
  std::string out = section_open("scenarios", "Failure scenarios");
  if (data.scenarios.empty()) return out + not_available("No failure scenarios (run distill).") + "</section>";
  out +=
      "<p class=\"lead\">Clusters of the classifier's failures in the VAE's latent space: genuine failures first, "
      "ranked by their mass; then the ambiguous ones; then the label changes, where the classifier is right. Each "
      "shows some of its failures, draws at its own spread (red: misclassified) and the nearest real images.</p>";
  // Overview table.
  out +=
      "<div class=\"card table-card\"><table><thead><tr><th class=\"num\">rank</th><th>scenario</th>"
      "<th>true \u2192 predicted</th><th class=\"num\">weight</th><th class=\"num\">failure rate</th>"
      "<th class=\"num\">members</th><th class=\"num\">neighbour acc.</th><th>verdict</th><th>annotation</th>"
      "</tr></thead><tbody>";
  for (size_t i = 0; i < data.scenarios.size(); ++i) {
    const ReportScenario& s = data.scenarios[i];
    out += fmt::format("<tr><td class=\"num\">{}</td><td><a href=\"#scenario-{}\">scenario {}</a></td><td>", i + 1,
                       s.id, s.id) +
           scenario_title(s) + "</td><td class=\"num\">" + percent(s.weight) + "</td><td class=\"num\">" +
           percent(s.failure_rate) + "</td><td class=\"num\">" + count(s.members) + "</td><td class=\"num\">" +
           percent(s.neighbour_accuracy) + "</td><td>" + verdict_badge(s) + "</td><td>" + annotation_badge(s) +
           "</td></tr>";
  }
  out += "</tbody></table></div>";
  std::string group;
  // One card per scenario.
  for (size_t i = 0; i < data.scenarios.size(); ++i) {
    const ReportScenario& s = data.scenarios[i];
    const std::string g = s.verdict == "label-change" ? "label-change" : s.verdict == "ambiguous" ? "ambiguous" : "";
    if (g != group) {
      out += g == "label-change" ? "<h3 class=\"group\">Label changes: the classifier is right here</h3>"
                                   "<p class=\"lead\">The judges read these decodes as the classifier does: they "
                                   "turned into that class. Not bugs; left out of correction.</p>"
                                 : "<h3 class=\"group\">Ambiguous</h3><p class=\"lead\">The judges disagree or are "
                                   "unsure: a person should look before these are used.</p>";
      group = g;
    }
    out += fmt::format(
               "<article class=\"card scenario\" id=\"scenario-{}\"><header><h3><span class=\"rank\">#{}</span>"
               "Scenario {}: ",
               s.id, i + 1, s.id) +
           scenario_title(s) + "</h3>" + verdict_badge(s) + " " + annotation_badge(s) + "</header><dl class=\"stats\">";
    auto stat = [&](const std::string& name, const std::string& value) {
      out += "<div><dt>" + name + "</dt><dd>" + value + "</dd></div>";
    };
    stat("weight", percent(s.weight));
    stat("failure rate", percent(s.failure_rate));
    stat("members", count(s.members));
    stat("neighbour accuracy", percent(s.neighbour_accuracy));
    if (!s.judges_read.empty()) stat("judges read", html_escape(s.judges_read));
    if (known(s.genuine_share)) stat("genuine failures", percent(s.genuine_share));
    if (known(s.knn_seed_share)) stat("latent neighbours of the seed's class", percent(s.knn_seed_share));
    if (known(s.realism)) stat("realism (median)", percent(s.realism));
    if (known(s.draw_genuine_rate)) stat("genuine draws", percent(s.draw_genuine_rate));
    if (known(s.accuracy_before) || known(s.accuracy_after)) {
      stat("accuracy before \u2192 after", percent(s.accuracy_before) + " \u2192 " + percent(s.accuracy_after));
    }
    out += "</dl>";
    const std::string name = fmt::format("scenario {}", s.id);
    if (!s.member_images.empty()) {
      out += "<h4>Its failures</h4>";
      out += gallery(s.member_images, "failures of " + name);
    }
    out += "<h4>Draws at its own spread</h4>";
    out += s.samples.empty() ? not_available("No samples.") : gallery(s.samples, "samples of " + name);
    out += "<h4>Nearest real images</h4>";
    out += s.neighbours.empty() ? not_available("No nearest images.")
                                : gallery(s.neighbours, "nearest real images of " + name);
    out += "</article>";
  }
  return out + "</section>";
}

bool map_empty(const ReportMap& map) { return map.train.empty() && map.failures.empty() && map.scenario_means.empty(); }

std::string map_section(const ReportData& data) {
  std::string out = section_open("latent-map", "Latent map");
  if (map_empty(data.map)) return out + not_available("Latent map not available.") + "</section>";
  out +=
      "<p class=\"lead\">A 2-D embedding of the latent codes: training codes as light dots, failure codes as "
      "crosses, scenario means as numbered discs, coloured by (seed) class.</p>";
  out += "<figure class=\"plot\">" + svg_latent_map(data.map, data.class_names);
  if (!data.map.note.empty()) out += "<figcaption>" + html_escape(data.map.note) + "</figcaption>";
  return out + "</figure></section>";
}

std::string lambda_section(const ReportData& data) {
  std::string out = section_open("lambda-curves", "\u03bb sweep");
  if (data.models.empty()) return out + not_available("Not evaluated: no corrected models.") + "</section>";
  out +=
      "<p class=\"lead\">Test accuracy and held-out (genuine-)scenario accuracy of each fine-tuned model against the "
      "weight "
      "\u03bb of the scenario loss, with the failures-only baseline (dashed) and the original model (dotted).</p>";
  const bool genuine = std::any_of(data.models.begin(), data.models.end(),
                                   [](const ReportModel& m) { return known(m.genuine_scenario_accuracy); });
  std::vector<ReportModel> plotted = data.models;
  if (genuine)
    for (ReportModel& m : plotted) m.scenario_accuracy = m.genuine_scenario_accuracy;
  out += "<figure class=\"plot\">" + svg_lambda_curves(plotted, genuine ? "genuine-scenario" : "scenario");
  if (!data.choice_rule.empty())
    out += "<figcaption>Choice of \u03bb: " + html_escape(data.choice_rule) + "</figcaption>";
  out += "</figure>";
  out +=
      "<h4>Models</h4><div class=\"card table-card\"><table><thead><tr><th>model</th><th class=\"num\">\u03bb</th>"
      "<th class=\"num\">test accuracy</th><th class=\"num\">genuine-scenario accuracy</th>"
      "<th class=\"num\">scenario accuracy</th><th class=\"num\">failure accuracy</th>"
      "<th>chosen</th></tr></thead><tbody>";
  for (const ReportModel& m : data.models) {
    out += std::string("<tr") + (m.chosen ? " class=\"chosen\"" : "") + "><td>" + html_escape(m.name) +
           "</td><td class=\"num\">" + (std::isfinite(m.lambda) && m.lambda >= 0 ? lambda_label(m.lambda) : "\u2013") +
           "</td><td class=\"num\">" + percent(m.test_accuracy, 2) + "</td><td class=\"num\">" +
           percent(m.genuine_scenario_accuracy, 2) + "</td><td class=\"num\">" + percent(m.scenario_accuracy, 2) +
           "</td><td class=\"num\">" + percent(m.failure_accuracy, 2) + "</td><td>" +
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
  out +=
      "<p class=\"lead\">Accuracy on fresh draws from each scenario (not used for training): the original model "
      "against the chosen corrected model.</p>";
  out +=
      "<div class=\"card table-card\"><table><thead><tr><th>scenario</th><th>true \u2192 predicted</th>"
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

std::string png_data_uri(std::string_view png) { return "data:image/png;base64," + base64_encode(png); }

// ---------------------------------------------------------------------------------------
// The page

std::string render_report(const ReportData& data) {
  const std::string title = data.title.empty() ? "defuse report" : data.title;
  std::vector<TocEntry> toc = {
      {"findings", "Findings", ""},
      {"scenarios", "Scenarios", data.scenarios.empty() ? "" : std::to_string(data.scenarios.size())},
      {"before-after", "Before / after", ""},
      {"lambda-curves", "\u03bb sweep", data.models.empty() ? "" : std::to_string(data.models.size())},
      {"latent-map", "Latent map", ""},
      {"interpolation", "Interpolation", ""},
      {"failure-grid", "Failure grid", ""},
      {"summary", "Settings", ""},
  };

  std::string out;
  out.reserve(1 << 16);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      // Nothing may load from anywhere: the report is one file that works offline.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
      "style-src 'unsafe-inline'\">\n"
      "<meta name=\"generator\" content=\"defuse " DEFUSE_VERSION "\">\n<title>" +
      html_escape(title) + "</title>\n<style>\n" + std::string(report_css()) + "</style>\n</head>\n<body>\n";
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
  out += findings_section(data) + "\n";
  out += scenarios_section(data) + "\n";
  out += before_after_section(data) + "\n";
  out += lambda_section(data) + "\n";
  out += map_section(data) + "\n";
  out += image_section("interpolation", "Interpolation",
                       "Decodes along a straight line in latent space from a correctly classified seed into a failure "
                       "scenario, with the classifier's prediction under each.",
                       data.interpolation) +
         "\n";
  out += image_section("failure-grid", "Failure grid",
                       "Seed images (framed) and failures found near them in latent space, with the predicted class.",
                       data.failure_grid) +
         "\n";
  if (data.label_change_grid)
    out += image_section("label-changes", "Label changes left out",
                         "Decodes the classifier also got wrong but the judges read as the classifier did: the decode "
                         "turned into that class, so the classifier is right and these are not failures. The gate "
                         "left them out of the scenarios.",
                         data.label_change_grid) +
           "\n";
  out += summary_section(data) + "\n";
  out += "</main>\n<footer><div class=\"wrap\">Written by defuse " DEFUSE_VERSION;
  if (!data.generated_at.empty()) out += " at " + html_escape(data.generated_at);
  out +=
      ". A single self-contained file: images are inline, nothing is loaded from the network.</div></footer>\n"
      "</body>\n</html>\n";
  return out;
}

}  // namespace defuse
