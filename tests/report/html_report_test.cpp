#include "defuse/report/html_report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "defuse/base/image_io.h"

namespace defuse {
namespace {

constexpr const char* kSectionIds[] = {"findings",      "summary",      "scenarios",     "latent-map",
                                       "lambda-curves", "before-after", "interpolation", "failure-grid"};

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string png(int64_t w, int64_t h, uint8_t value) {
  const Image image{w, h, 1, std::vector<uint8_t>(static_cast<size_t>(w * h), value)};
  const std::vector<uint8_t> bytes = encode_png(image);
  return std::string(bytes.begin(), bytes.end());
}

// A "nan" or "inf" token (as printf writes them), not part of a longer word.
bool has_non_finite(const std::string& svg) {
  static const std::regex token("(^|[^a-z])-?(nan|inf)([^a-z]|$)", std::regex::icase);
  return std::regex_search(svg, token);
}

// Tags that must pair up in an SVG (or a page).
void expect_balanced(const std::string& svg) {
  EXPECT_EQ(occurrences(svg, "<svg"), occurrences(svg, "</svg>"));
  EXPECT_EQ(occurrences(svg, "<g>") + occurrences(svg, "<g "), occurrences(svg, "</g>"));
  EXPECT_EQ(occurrences(svg, "<text"), occurrences(svg, "</text>"));
  EXPECT_EQ(occurrences(svg, "<title"), occurrences(svg, "</title>"));
  EXPECT_FALSE(has_non_finite(svg)) << svg.substr(0, 2000);
  EXPECT_FALSE(has(svg, "http://"));  // no xmlns: inline SVG in HTML needs none
}

ReportModel model(const std::string& name, double lambda, double test, double scenario, bool chosen = false) {
  ReportModel m;
  m.name = name;
  m.lambda = lambda;
  m.test_accuracy = test;
  m.scenario_accuracy = scenario;
  m.chosen = chosen;
  return m;
}

std::vector<ReportModel> sweep_models() {
  return {model("original", -1, 0.91, 0.12), model("lambda=0.1", 0.1, 0.90, 0.85),
          model("lambda=0", 0, 0.912, 0.2),  model("lambda=0.001", 0.001, 0.911, 0.4),
          model("lambda=1", 1, 0.87, 0.93),  model("lambda=0.01", 0.01, 0.909, 0.7, true),
          model("baseline", -1, 0.62, 0.95)};
}

ReportData sample_data() {
  ReportData d;
  d.title = "defuse report: runs/<tricky> & \"quoted\"";
  d.generated_at = "2024-05-01T12:00:00Z";
  d.class_names = {"<T-shirt & top>", "Trouser", "Pullover", "Dress"};
  d.summary = {{"data", {{"dataset", "fashion-mnist"}, {"training images", "60,000"}}},
               {"classifier", {{"test accuracy", "91.2%"}, {"note", "a<b & 'c'"}}}};
  ReportScenario s;
  s.id = 7;
  s.seed_label = "<T-shirt & top>";
  s.predicted_label = "Shirt";
  s.weight = 0.2;
  s.failure_rate = 0.83;
  s.members = 1234;
  s.neighbour_accuracy = 0.9;
  s.annotation = "labelled: Shirt";
  s.automatic = true;
  s.accuracy_before = 0.1;
  s.accuracy_after = 0.8;
  s.samples = {{png(28, 28, 200), "as \"Shirt\" <bad>", "bad"}, {png(28, 28, 100), "ok", "good"}, {"", "missing", ""}};
  s.neighbours = {{png(28, 28, 50), "Trouser", "muted"}};
  d.scenarios = {s};
  ReportScenario t;
  t.id = 3;
  t.seed_label = "Dress";
  t.predicted_label = "Coat";
  t.annotation = "rejected: unrealistic";
  d.scenarios.push_back(t);
  d.map.train = {{0, 0, 0}, {1, 2, 1}, {3, 1, 2}};
  d.map.failures = {{0.5f, 0.5f, 0}, {2, 2, 3}};
  d.map.scenario_means = {{1, 1, 0}, {2.5f, 1.5f, 3}};
  d.map.scenario_ids = {7, 3};
  d.map.note = "t-SNE of 3 training codes";
  d.models = sweep_models();
  d.choice_rule = "largest scenario accuracy with test accuracy within 0.5 pp of the original";
  d.failure_grid = ReportImage{png(120, 60, 30), "failure grid", ""};
  d.interpolation = ReportImage{png(200, 30, 90), "interpolation", ""};
  d.notes = {"labels were automatic (--auto) & not checked"};
  return d;
}

TEST(HtmlReport, EveryClassHasItsOwnColour) {
  // GTSRB has 43 classes: the 20 hand-picked colours, then generated ones, none repeated.
  std::vector<std::string> colours;
  for (int i = 0; i < 64; ++i) colours.push_back(class_colour(i));
  for (size_t i = 0; i < colours.size(); ++i) {
    ASSERT_EQ(colours[i].size(), 7u) << colours[i];
    EXPECT_EQ(colours[i][0], '#');
    EXPECT_EQ(colours[i].find_first_not_of("0123456789abcdef", 1), std::string::npos) << colours[i];
    for (size_t j = 0; j < i; ++j) EXPECT_NE(colours[i], colours[j]) << "classes " << i << " and " << j;
  }
  EXPECT_EQ(class_colour(0), "#1f77b4");  // the familiar palette first
  EXPECT_EQ(class_colour(-1), "#555555");
}

TEST(HtmlReport, PageHasEverySectionAndTheTableOfContents) {
  const std::string page = render_report(sample_data());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(has(page, "</html>"));
  for (const char* id : kSectionIds) {
    EXPECT_TRUE(has(page, std::string("<section id=\"") + id + "\"")) << id;
    EXPECT_TRUE(has(page, std::string("<a href=\"#") + id + "\"")) << id;
  }
  EXPECT_TRUE(has(page, "id=\"scenario-7\""));
  EXPECT_TRUE(has(page, "id=\"scenario-3\""));
  EXPECT_TRUE(has(page, "href=\"#scenario-7\""));
  EXPECT_TRUE(has(page, "id=\"latent-map-svg\""));
  EXPECT_TRUE(has(page, "id=\"lambda-curves-svg\""));
  EXPECT_TRUE(has(page, "id=\"notes\""));
  EXPECT_TRUE(has(page, "labelled: Shirt"));
  EXPECT_TRUE(has(page, "rejected: unrealistic"));
  EXPECT_TRUE(has(page, ">automatic<"));
  EXPECT_TRUE(has(page, "largest scenario accuracy"));
  EXPECT_TRUE(has(page, "1,234"));
  EXPECT_TRUE(has(page, "+70.0 pp"));
  EXPECT_TRUE(has(page, "no image"));  // the sample without bytes is a placeholder
  expect_balanced(page);
  EXPECT_EQ(occurrences(page, "<section"), occurrences(page, "</section>"));
  EXPECT_EQ(occurrences(page, "<table"), occurrences(page, "</table>"));
}

TEST(HtmlReport, OpensWithTheFindingsAndListsLabelChangesApart) {
  ReportData d = sample_data();
  d.scenarios[0].verdict = "genuine";
  d.scenarios[0].judges_read = "<T-shirt & top> (90% of its failures)";
  d.scenarios[0].genuine_share = 0.9;
  d.scenarios[0].member_images = {{png(28, 28, 120), "member", "bad"}};
  d.scenarios[1].verdict = "label-change";
  ReportFindings& f = d.findings;
  f.scenarios = 2;
  f.genuine = 1;
  f.label_change = 1;
  f.ambiguous = 0;
  f.judges = "read by 2 judges: cnn (99.30%), resnet (99.41%)";
  f.failing_decodes = 2000;
  f.failing_genuine = 300;
  f.failing_label_change = 1200;
  f.failing_ambiguous = 500;
  f.failures = 250;
  f.gate = "genuine";
  f.test_accuracy = 0.99;
  f.reconstruction_accuracy = 0.97;
  f.chosen = "lambda=0.01";
  f.chosen_test_accuracy = 0.989;
  f.original_genuine = 0.05;
  f.chosen_genuine = 0.93;
  const std::string page = render_report(d);
  const size_t findings = page.find("<section id=\"findings\""), scenarios = page.find("<section id=\"scenarios\""),
               settings = page.find("<section id=\"summary\"");
  ASSERT_NE(findings, std::string::npos);
  EXPECT_LT(findings, scenarios) << "the findings come first";
  EXPECT_LT(scenarios, settings) << "settings and timings come last";
  EXPECT_TRUE(has(page, "1 genuine failure scenario</strong>"));
  EXPECT_TRUE(has(page, "1 label change "));
  EXPECT_TRUE(has(page, "ratio 0.980"));
  EXPECT_TRUE(has(page, "from 5.0% to <strong>93.0%</strong>"));
  EXPECT_TRUE(has(page, "Label changes: the classifier is right here"));
  EXPECT_LT(page.find("id=\"scenario-7\""), page.find("Label changes: the classifier is right here"));
  EXPECT_TRUE(has(page, "label change: classifier right"));
  EXPECT_TRUE(has(page, "&lt;T-shirt &amp; top&gt; (90% of its failures)"));
  EXPECT_TRUE(has(page, "Its failures"));
  expect_balanced(page);
  EXPECT_EQ(occurrences(page, "<section"), occurrences(page, "</section>"));
  // Without judges the findings say the scenarios are not checked.
  ReportData plain = sample_data();
  plain.findings.scenarios = 2;
  EXPECT_TRUE(has(render_report(plain), "not checked"));
}

TEST(HtmlReport, EscapesEveryStringFromTheData) {
  const std::string page = render_report(sample_data());
  EXPECT_FALSE(has(page, "<T-shirt"));
  EXPECT_FALSE(has(page, "<tricky>"));
  EXPECT_FALSE(has(page, "<bad>"));
  EXPECT_FALSE(has(page, "a<b"));
  EXPECT_TRUE(has(page, "&lt;T-shirt &amp; top&gt;"));
  EXPECT_TRUE(has(page, "runs/&lt;tricky&gt; &amp; &quot;quoted&quot;"));
  EXPECT_TRUE(has(page, "alt=\"as &quot;Shirt&quot; &lt;bad&gt;\""));
  EXPECT_TRUE(has(page, "a&lt;b &amp; &#39;c&#39;"));
  EXPECT_TRUE(has(page, "(--auto) &amp; not checked"));
}

TEST(HtmlReport, IsSelfContained) {
  const std::string page = render_report(sample_data());
  for (const char* bad :
       {"http://", "https://", "src=\"/", "href=\"/", "<script", "<link", "url(", "@import", "//fonts"}) {
    EXPECT_FALSE(has(page, bad)) << bad;
  }
  // Every src is an inline PNG; small images are upscaled 3x and drawn pixelated.
  EXPECT_EQ(occurrences(page, "src=\""), occurrences(page, "src=\"data:image/png;base64,"));
  EXPECT_EQ(occurrences(page, "src=\"data:image/png;base64,"), 5u);
  EXPECT_TRUE(has(page, "width=\"84\" height=\"84\""));
  EXPECT_TRUE(has(page, "image-rendering: pixelated"));
  EXPECT_TRUE(has(page, "Content-Security-Policy"));
  EXPECT_TRUE(has(page, "src=\"" + png_data_uri(png(28, 28, 200)) + "\""));
  EXPECT_EQ(png_data_uri("foo"), "data:image/png;base64,Zm9v");
}

TEST(HtmlReport, LatentMapDrawsEveryKindOfMarkWithALegend) {
  const ReportData d = sample_data();
  const std::string svg = svg_latent_map(d.map, d.class_names);
  expect_balanced(svg);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_TRUE(has(svg, "<title id=\"latent-map-svg-title\">"));
  EXPECT_EQ(occurrences(svg, "<g class=\"mean\">"), 2u);
  EXPECT_TRUE(has(svg, ">7</text>"));
  EXPECT_TRUE(has(svg, ">3</text>"));
  EXPECT_TRUE(has(svg, "training code"));
  EXPECT_TRUE(has(svg, "failure code"));
  EXPECT_TRUE(has(svg, "&lt;T-shirt &amp; top&gt;"));  // legend entry, escaped
  for (int c = 0; c < 4; ++c) EXPECT_TRUE(has(svg, class_colour(c))) << c;
  // Labels beyond the class names are named by index.
  ReportMap other;
  other.train = {{0, 0, 12}};
  EXPECT_TRUE(has(svg_latent_map(other, d.class_names), "class 12"));
}

TEST(HtmlReport, LatentMapSurvivesDegenerateInput) {
  ReportMap empty;
  std::string svg = svg_latent_map(empty, {});
  expect_balanced(svg);
  EXPECT_TRUE(has(svg, "No points"));

  ReportMap same;
  same.train = {{5, 5, 0}, {5, 5, 1}};
  same.failures = {{5, 5, 0}};
  same.scenario_means = {{5, 5, 1}};  // no id given: numbered 1
  svg = svg_latent_map(same, {"a", "b"});
  expect_balanced(svg);
  EXPECT_TRUE(has(svg, ">1</text>"));

  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  ReportMap bad;
  bad.train = {{nan, 0, 0}, {0, inf, 0}, {1, 2, 0}};
  bad.scenario_means = {{nan, nan, 0}};
  svg = svg_latent_map(bad, {"a"});
  expect_balanced(svg);
  EXPECT_EQ(occurrences(svg, "<g class=\"mean\">"), 0u);
}

TEST(HtmlReport, LambdaChartPlacesAscendingLambdaLeftToRight) {
  const std::string svg = svg_lambda_curves(sweep_models());
  expect_balanced(svg);
  static const std::regex point("<circle cx=\"([0-9.]+)\"[^>]*class=\"pt-test\" data-lambda=\"([^\"]+)\"");
  std::vector<std::pair<double, double>> lambda_x;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), point); it != std::sregex_iterator(); ++it) {
    lambda_x.emplace_back(std::stod((*it)[2]), std::stod((*it)[1]));
  }
  ASSERT_EQ(lambda_x.size(), 5u);  // the sweep only: original and baseline are reference lines
  for (size_t i = 1; i < lambda_x.size(); ++i) {
    EXPECT_LT(lambda_x[i - 1].first, lambda_x[i].first);
    EXPECT_LT(lambda_x[i - 1].second, lambda_x[i].second) << "lambda " << lambda_x[i].first;
  }
  // Log scale: the decades 0.001, 0.01, 0.1, 1 are evenly spaced; λ = 0 sits left of them.
  const double d1 = lambda_x[2].second - lambda_x[1].second, d2 = lambda_x[3].second - lambda_x[2].second,
               d3 = lambda_x[4].second - lambda_x[3].second;
  EXPECT_NEAR(d1, d2, 0.2);
  EXPECT_NEAR(d2, d3, 0.2);
  EXPECT_EQ(lambda_x[0].first, 0.0);
  // Ticks labelled at the λ values, reference lines for original (dotted) and baseline (dashed),
  // the chosen λ highlighted, axis labels and a legend.
  for (const char* tick : {">0</text>", ">0.001</text>", ">0.01</text>", ">0.1</text>", ">1</text>"}) {
    EXPECT_TRUE(has(svg, tick)) << tick;
  }
  EXPECT_EQ(occurrences(svg, "stroke-dasharray=\"2 4\"><title>original"), 2u);
  EXPECT_EQ(occurrences(svg, "stroke-dasharray=\"7 4\"><title>baseline"), 2u);
  EXPECT_TRUE(has(svg, "class=\"chosen-band\""));
  EXPECT_TRUE(has(svg, "accuracy (%)"));
  EXPECT_TRUE(has(svg, "log scale"));
  EXPECT_TRUE(has(svg, "test accuracy"));
  EXPECT_TRUE(has(svg, "scenario accuracy"));
  EXPECT_TRUE(has(svg, "baseline 62.0%"));
}

TEST(HtmlReport, LambdaChartSurvivesDegenerateInput) {
  std::string svg = svg_lambda_curves({});
  expect_balanced(svg);
  EXPECT_TRUE(has(svg, "No models"));

  svg = svg_lambda_curves({model("original", -1, 0.9, 0.1)});
  expect_balanced(svg);
  EXPECT_TRUE(has(svg, "no \u03bb sweep"));

  svg = svg_lambda_curves({model("lambda=0.01", 0.01, 0.9, 0.9, true)});  // one point, one value
  expect_balanced(svg);
  EXPECT_EQ(occurrences(svg, "class=\"pt-test\""), 1u);

  svg = svg_lambda_curves({model("lambda=0", 0, 1, 1), model("lambda=0", 0, 1, 1)});  // only λ = 0, at 100%
  expect_balanced(svg);

  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  svg = svg_lambda_curves({model("odd-a", nan, 0.5, 0.5), model("odd-b", inf, 0.5, 0.5),
                           model("lambda=0.1", 0.1, nan, inf), model("baseline", -1, -1, 2)});
  expect_balanced(svg);
}

TEST(HtmlReport, EmptyDataSaysNotAvailable) {
  const std::string page = render_report(ReportData{});
  for (const char* id : kSectionIds) {
    EXPECT_TRUE(has(page, std::string("<section id=\"") + id + "\"")) << id;
  }
  EXPECT_TRUE(has(page, "Latent map not available."));
  EXPECT_TRUE(has(page, "Not evaluated"));
  EXPECT_FALSE(has(page, "<svg"));
  EXPECT_FALSE(has(page, "id=\"notes\""));
  expect_balanced(page);
}

}  // namespace
}  // namespace defuse
