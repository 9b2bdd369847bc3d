#include "defuse/suite/suite_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/base/html.h"

namespace defuse {

using nlohmann::json;

std::string SuiteInfo::shape() const { return fmt::format("{}x{}x{}", channels, height, width); }

json suite_json(const SuiteInfo& info) {
  json scenarios = json::array();
  for (const auto& s : info.scenario_list) {
    json images = json::array();
    for (const auto& im : s.images)
      images.push_back({{"file", im.file},
                        {"hash", im.hash},
                        {"original_prediction", im.original_prediction},
                        {"original_probability", im.original_probability}});
    scenarios.push_back({{"id", s.id},
                         {"label", s.label},
                         {"label_name", info.class_names.at(static_cast<size_t>(s.label))},
                         {"verdict", s.verdict},
                         {"seed_label", s.seed_label},
                         {"predicted_label", s.predicted_label},
                         {"min_accuracy", s.min_accuracy},
                         {"draws", s.draws},
                         {"mean", s.mean},
                         {"covariance", s.covariance},
                         {"images", images}});
  }
  json left_out = json::array();
  for (const auto& l : info.left_out) left_out.push_back({{"id", l.id}, {"reason", l.reason}});
  return {{"format", kSuiteFormat},
          {"version", info.version},
          {"defuse_version", info.defuse_version},
          {"shape", {{"channels", info.channels}, {"height", info.height}, {"width", info.width}}},
          {"class_names", info.class_names},
          {"images", info.images},
          {"scenarios_kept", info.scenarios},
          {"tau", info.tau},
          {"seed", info.seed},
          {"data", info.data},
          {"original_test_accuracy", info.original_test_accuracy},
          {"fingerprints", info.fingerprints},
          {"scenarios", scenarios},
          {"left_out", left_out}};
}

SuiteInfo parse_suite_json(const json& j, const std::string& what) {
  auto fail = [&](const std::string& message) -> void { throw DataError(what + ": " + message); };
  SuiteInfo info;
  try {
    if (!j.is_object() || j.value("format", std::string()) != kSuiteFormat)
      fail(std::string("not a defuse suite (no \"format\": \"") + kSuiteFormat + "\")");
    info.version = j.at("version").get<int>();
    if (info.version < 1 || info.version > kSuiteVersion)
      fail(fmt::format("suite format version {} is not one this defuse reads (1..{}): use a newer defuse", info.version,
                       kSuiteVersion));
    info.defuse_version = j.value("defuse_version", std::string());
    const json& shape = j.at("shape");
    info.channels = shape.at("channels").get<int64_t>();
    info.height = shape.at("height").get<int64_t>();
    info.width = shape.at("width").get<int64_t>();
    if (info.channels < 1 || info.channels > 4 || info.height < 1 || info.width < 1 || info.height > 4096 ||
        info.width > 4096)
      fail(fmt::format("image shape {} is not a valid one", info.shape()));
    info.class_names = j.at("class_names").get<std::vector<std::string>>();
    if (info.class_names.size() < 2) fail("fewer than two classes");
    info.images = j.at("images").get<std::string>();
    if (info.images != "failing" && info.images != "confirmed") fail("\"images\" is '" + info.images + "'");
    info.scenarios = j.value("scenarios_kept", std::string("labelled"));
    info.tau = j.at("tau").get<double>();
    info.seed = j.at("seed").get<uint64_t>();
    info.data = j.value("data", std::string());
    info.original_test_accuracy = j.value("original_test_accuracy", -1.0);
    info.fingerprints = j.value("fingerprints", json::object());
    for (const auto& s : j.at("scenarios")) {
      SuiteScenarioInfo sc;
      sc.id = s.at("id").get<int64_t>();
      sc.label = s.at("label").get<int64_t>();
      if (sc.label < 0 || sc.label >= info.num_classes())
        fail(fmt::format("scenario {}: label {} is not one of the {} classes", sc.id, sc.label, info.num_classes()));
      sc.verdict = s.value("verdict", std::string());
      sc.seed_label = s.value("seed_label", int64_t{-1});
      sc.predicted_label = s.value("predicted_label", int64_t{-1});
      sc.min_accuracy = s.at("min_accuracy").get<double>();
      if (!(sc.min_accuracy >= 0 && sc.min_accuracy <= 1))
        fail(fmt::format("scenario {}: min_accuracy {} is not in [0, 1]", sc.id, sc.min_accuracy));
      sc.draws = s.value("draws", int64_t{0});
      sc.mean = s.value("mean", std::vector<float>());
      sc.covariance = s.value("covariance", std::vector<float>());
      if (!sc.mean.empty() && sc.covariance.size() != sc.mean.size() * sc.mean.size())
        fail(fmt::format("scenario {}: covariance has {} values for a mean of {}", sc.id, sc.covariance.size(),
                         sc.mean.size()));
      for (const auto& im : s.at("images")) {
        SuiteImageInfo image;
        image.file = im.at("file").get<std::string>();
        if (!is_normalised_relative_path(image.file) || image.file.rfind("images/", 0) != 0)
          fail(fmt::format("scenario {}: image path '{}' is not a relative path under images/", sc.id, image.file));
        image.hash = im.value("hash", std::string());
        image.original_prediction = im.value("original_prediction", int64_t{-1});
        image.original_probability = im.value("original_probability", 0.0);
        sc.images.push_back(std::move(image));
      }
      if (sc.images.empty()) fail(fmt::format("scenario {} has no images", sc.id));
      info.scenario_list.push_back(std::move(sc));
    }
    for (const auto& l : j.value("left_out", json::array()))
      info.left_out.push_back({l.at("id").get<int64_t>(), l.value("reason", std::string())});
  } catch (const json::exception& e) {
    fail(std::string("malformed: ") + e.what());
  }
  if (info.scenario_list.empty()) fail("the suite holds no scenario");
  return info;
}

Interval wilson_interval(int64_t successes, int64_t n, double z) {
  if (n <= 0 || successes < 0 || successes > n) throw Error("wilson_interval: needs 0 <= successes <= n, n > 0");
  const double p = static_cast<double>(successes) / static_cast<double>(n);
  const double nn = static_cast<double>(n), z2 = z * z;
  const double d = 1 + z2 / nn;
  const double centre = (p + z2 / (2 * nn)) / d;
  const double half = z / d * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

int64_t CheckReport::failed() const {
  int64_t n = 0;
  for (const auto& s : scenarios) n += s.passed() ? 0 : 1;
  return n + (test_passed() ? 0 : 1);
}

namespace {

std::string class_name(const std::vector<std::string>& names, int64_t label) {
  return label >= 0 && label < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(label)]
                                                                  : std::to_string(label);
}

std::string pct(double fraction) { return fmt::format("{:.1f}%", 100 * fraction); }

std::string case_name(const CheckReport& r, const ScenarioCheck& s) {
  return fmt::format("scenario {}: {}", s.id, class_name(r.class_names, s.label));
}

std::string failure_text(const CheckReport& r, const ScenarioCheck& s) {
  std::string text = fmt::format("accuracy {} ({} of {}; 95% CI {} to {}) below the pass mark {}", pct(s.accuracy),
                                 s.correct, s.images, pct(s.interval.low), pct(s.interval.high), pct(s.min_accuracy));
  if (s.top_wrong >= 0)
    text +=
        fmt::format("; most often read as {} ({} images)", class_name(r.class_names, s.top_wrong), s.top_wrong_count);
  return text;
}

}  // namespace

json check_json(const CheckReport& r) {
  json scenarios = json::array();
  for (const auto& s : r.scenarios)
    scenarios.push_back(
        {{"id", s.id},
         {"label", s.label},
         {"label_name", class_name(r.class_names, s.label)},
         {"verdict", s.verdict},
         {"images", s.images},
         {"correct", s.correct},
         {"accuracy", s.accuracy},
         {"ci_low", s.interval.low},
         {"ci_high", s.interval.high},
         {"min_accuracy", s.min_accuracy},
         {"passed", s.passed()},
         {"top_wrong", s.top_wrong >= 0 ? json(class_name(r.class_names, s.top_wrong)) : json(nullptr)}});
  json j = {{"model", r.model},     {"suite", r.suite},       {"passed", r.passed()},
            {"failed", r.failed()}, {"scenarios", scenarios}, {"seconds", r.seconds}};
  j["test_accuracy"] = r.test_accuracy >= 0 ? json(r.test_accuracy) : json(nullptr);
  j["test_images"] = r.test_images;
  j["min_test_accuracy"] = r.min_test_accuracy >= 0 ? json(r.min_test_accuracy) : json(nullptr);
  j["original_test_accuracy"] = r.original_test_accuracy >= 0 ? json(r.original_test_accuracy) : json(nullptr);
  return j;
}

std::string check_table(const CheckReport& r) {
  std::string out = fmt::format("{:<9} {:<16} {:>6} {:>9} {:>17} {:>6}  {}\n", "scenario", "label", "images",
                                "accuracy", "95% interval", "mark", "result");
  for (const auto& s : r.scenarios) {
    out +=
        fmt::format("{:<9} {:<16} {:>6} {:>9} {:>17} {:>6}  {}", s.id, class_name(r.class_names, s.label).substr(0, 16),
                    s.images, pct(s.accuracy), fmt::format("{} - {}", pct(s.interval.low), pct(s.interval.high)),
                    pct(s.min_accuracy), s.passed() ? "pass" : "FAIL");
    if (!s.passed() && s.top_wrong >= 0) out += " (read as " + class_name(r.class_names, s.top_wrong) + ")";
    out += "\n";
  }
  if (r.test_accuracy >= 0) {
    out += fmt::format("test split: {} of {} images", pct(r.test_accuracy), r.test_images);
    if (r.original_test_accuracy >= 0)
      out += fmt::format(" (the original classifier: {})", pct(r.original_test_accuracy));
    if (r.min_test_accuracy >= 0)
      out += fmt::format(", mark {}: {}", pct(r.min_test_accuracy), r.test_passed() ? "pass" : "FAIL");
    out += "\n";
  }
  return out;
}

std::string junit_xml(const CheckReport& r) {
  const bool test_case = r.min_test_accuracy >= 0 && r.test_accuracy >= 0;
  const size_t cases = r.scenarios.size() + (test_case ? 1 : 0);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format("<testsuites name=\"defuse check\" tests=\"{}\" failures=\"{}\" time=\"{:.3f}\">\n", cases,
                     r.failed(), r.seconds);
  out += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3f}\">\n",
                     html_escape(r.suite), cases, r.failed(), r.seconds);
  out += fmt::format("    <properties>\n      <property name=\"model\" value=\"{}\"/>\n    </properties>\n",
                     html_escape(r.model));
  for (const auto& s : r.scenarios) {
    out += fmt::format("    <testcase classname=\"defuse.scenarios\" name=\"{}\"", html_escape(case_name(r, s)));
    if (s.passed()) {
      out += "/>\n";
    } else {
      const std::string text = failure_text(r, s);
      out += fmt::format(">\n      <failure type=\"accuracy\" message=\"{}\">{}</failure>\n    </testcase>\n",
                         html_escape(text), html_escape(text));
    }
  }
  if (test_case) {
    out += "    <testcase classname=\"defuse.test_split\" name=\"test split accuracy\"";
    if (r.test_passed()) {
      out += "/>\n";
    } else {
      const std::string text = fmt::format("test accuracy {} of {} images below the mark {}", pct(r.test_accuracy),
                                           r.test_images, pct(r.min_test_accuracy));
      out += fmt::format(">\n      <failure type=\"accuracy\" message=\"{}\">{}</failure>\n    </testcase>\n",
                         html_escape(text), html_escape(text));
    }
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace defuse
