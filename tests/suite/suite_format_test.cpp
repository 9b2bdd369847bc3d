// The suite format, the Wilson interval and the CI reports (torch-free).
#include <gtest/gtest.h>

#include "defuse/base/error.h"
#include "defuse/suite/suite_format.h"
#include "support/test_support.h"

namespace defuse {
namespace {

using nlohmann::json;

SuiteInfo small_suite() {
  SuiteInfo info;
  info.defuse_version = "test";
  info.channels = 1;
  info.height = 4;
  info.width = 5;
  info.class_names = {"zero", "one", "two"};
  info.tau = 0.5;
  info.seed = 7;
  info.data = "mnist:/data";
  info.original_test_accuracy = 0.93;
  info.fingerprints = {{"classifier", "abc"}};
  SuiteScenarioInfo s;
  s.id = 3;
  s.label = 2;
  s.verdict = "genuine";
  s.seed_label = 2;
  s.predicted_label = 1;
  s.min_accuracy = 0.8;
  s.draws = 512;
  s.mean = {0.5f, -1};
  s.covariance = {1, 0, 0, 1};
  s.images = {{"images/s03/0000.png", "h0", 1, 0.75}, {"images/s03/0001.png", "h1", 0, 0.5}};
  info.scenario_list.push_back(s);
  info.left_out.push_back({5, "no draw"});
  return info;
}

TEST(SuiteFormat, JsonRoundTripKeepsEverything) {
  SuiteInfo a = small_suite();
  json j = suite_json(a);
  EXPECT_EQ(j["format"], "defuse-suite");
  EXPECT_EQ(j["version"], kSuiteVersion);
  EXPECT_EQ(j["scenarios"][0]["label_name"], "two");
  SuiteInfo b = parse_suite_json(json::parse(j.dump()), "suite.json");
  EXPECT_EQ(b.shape(), "1x4x5");
  EXPECT_EQ(b.class_names, a.class_names);
  EXPECT_DOUBLE_EQ(b.tau, 0.5);
  EXPECT_EQ(b.seed, 7u);
  EXPECT_EQ(b.data, "mnist:/data");
  EXPECT_DOUBLE_EQ(b.original_test_accuracy, 0.93);
  EXPECT_EQ(b.fingerprints["classifier"], "abc");
  ASSERT_EQ(b.scenario_list.size(), 1u);
  const auto& s = b.scenario_list[0];
  EXPECT_EQ(s.id, 3);
  EXPECT_EQ(s.label, 2);
  EXPECT_EQ(s.verdict, "genuine");
  EXPECT_EQ(s.predicted_label, 1);
  EXPECT_DOUBLE_EQ(s.min_accuracy, 0.8);
  EXPECT_EQ(s.draws, 512);
  EXPECT_EQ(s.mean, (std::vector<float>{0.5f, -1}));
  ASSERT_EQ(s.images.size(), 2u);
  EXPECT_EQ(s.images[1].file, "images/s03/0001.png");
  EXPECT_EQ(s.images[1].hash, "h1");
  EXPECT_EQ(s.images[0].original_prediction, 1);
  EXPECT_DOUBLE_EQ(s.images[0].original_probability, 0.75);
  ASSERT_EQ(b.left_out.size(), 1u);
  EXPECT_EQ(b.left_out[0].reason, "no draw");
}

void expect_refused(const json& j, const std::string& fragment) {
  try {
    parse_suite_json(j, "S/suite.json");
    ADD_FAILURE() << "accepted a suite with " << fragment;
  } catch (const DataError& e) {
    EXPECT_TRUE(test::contains(e.what(), "S/suite.json: ")) << e.what();
    EXPECT_TRUE(test::contains(e.what(), fragment)) << e.what();
  }
}

TEST(SuiteFormat, MalformedSuitesAreRefusedNamingTheProblem) {
  const json good = suite_json(small_suite());
  expect_refused(json::array(), "not a defuse suite");
  json j = good;
  j["format"] = "something-else";
  expect_refused(j, "not a defuse suite");
  j = good;
  j["version"] = kSuiteVersion + 1;
  expect_refused(j, "use a newer defuse");
  j = good;
  j["scenarios"][0]["label"] = 3;
  expect_refused(j, "label 3 is not one of the 3 classes");
  j = good;
  j["scenarios"][0]["images"][0]["file"] = "images/../../etc/passwd";
  expect_refused(j, "is not a relative path under images/");
  j = good;
  j["scenarios"][0]["images"][0]["file"] = "/tmp/x.png";
  expect_refused(j, "is not a relative path under images/");
  j = good;
  j["scenarios"][0]["min_accuracy"] = 1.5;
  expect_refused(j, "min_accuracy 1.5");
  j = good;
  j["scenarios"][0]["covariance"] = {1, 2, 3};
  expect_refused(j, "covariance has 3 values for a mean of 2");
  j = good;
  j["scenarios"][0]["images"] = json::array();
  expect_refused(j, "scenario 3 has no images");
  j = good;
  j["scenarios"] = json::array();
  expect_refused(j, "holds no scenario");
  j = good;
  j.erase("shape");
  expect_refused(j, "malformed");
  j = good;
  j["shape"]["channels"] = 0;
  expect_refused(j, "image shape 0x4x5");
}

TEST(WilsonInterval, MatchesTheReferenceValues) {
  // statsmodels.stats.proportion.proportion_confint(k, n, method="wilson").
  struct Case {
    int64_t k, n;
    double low, high;
  };
  for (const auto& c :
       {Case{8, 10, 0.4901624715, 0.9433178485}, Case{0, 64, 0.0, 0.0566240598}, Case{64, 64, 0.9433759402, 1.0},
        Case{58, 64, 0.8101712040, 0.9563217474}, Case{1, 1, 0.2065493144, 1.0}, Case{0, 1, 0.0, 0.7934506856}}) {
    Interval i = wilson_interval(c.k, c.n);
    EXPECT_NEAR(i.low, c.low, 1e-9) << c.k << "/" << c.n;
    EXPECT_NEAR(i.high, c.high, 1e-9) << c.k << "/" << c.n;
  }
  EXPECT_THROW(wilson_interval(0, 0), Error);
  EXPECT_THROW(wilson_interval(3, 2), Error);
}

CheckReport two_scenarios() {
  CheckReport r;
  r.model = "m<1>.pt";
  r.suite = "suite & co";
  r.class_names = {"zero", "one", "two"};
  ScenarioCheck pass;
  pass.id = 1;
  pass.label = 0;
  pass.images = 10;
  pass.correct = 9;
  pass.accuracy = 0.9;
  pass.interval = wilson_interval(9, 10);
  pass.min_accuracy = 0.9;  // at the mark passes
  ScenarioCheck fail = pass;
  fail.id = 2;
  fail.label = 2;
  fail.correct = 3;
  fail.accuracy = 0.3;
  fail.interval = wilson_interval(3, 10);
  fail.top_wrong = 1;
  fail.top_wrong_count = 7;
  r.scenarios = {pass, fail};
  return r;
}

TEST(CheckReport, PassFailAndTheTestSplitMark) {
  CheckReport r = two_scenarios();
  EXPECT_TRUE(r.scenarios[0].passed());
  EXPECT_FALSE(r.scenarios[1].passed());
  EXPECT_EQ(r.failed(), 1);
  r.scenarios.pop_back();
  EXPECT_TRUE(r.passed());
  r.test_accuracy = 0.95;
  r.min_test_accuracy = 0.96;
  EXPECT_EQ(r.failed(), 1);
  r.min_test_accuracy = 0.95;
  EXPECT_TRUE(r.passed());
  json j = check_json(two_scenarios());
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["scenarios"][1]["top_wrong"], "one");
  EXPECT_TRUE(j["scenarios"][0]["top_wrong"].is_null());
  EXPECT_TRUE(j["test_accuracy"].is_null());
  EXPECT_NEAR(j["scenarios"][1]["ci_low"].get<double>(), 0.1077913, 1e-6);
}

TEST(CheckReport, JunitHasOneCasePerScenarioAndEscapes) {
  CheckReport r = two_scenarios();
  r.test_accuracy = 0.5;
  r.test_images = 100;
  r.min_test_accuracy = 0.9;
  const std::string xml = junit_xml(r);
  EXPECT_EQ(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0), 0u);
  EXPECT_TRUE(test::contains(xml, "<testsuite name=\"suite &amp; co\" tests=\"3\" failures=\"2\""));
  EXPECT_TRUE(test::contains(xml, "value=\"m&lt;1&gt;.pt\""));
  EXPECT_TRUE(test::contains(xml, "<testcase classname=\"defuse.scenarios\" name=\"scenario 1: zero\"/>"));
  EXPECT_TRUE(test::contains(xml, "name=\"scenario 2: two\">"));
  EXPECT_TRUE(test::contains(xml,
                             "accuracy 30.0% (3 of 10; 95% CI 10.8% to 60.3%) below the pass mark 90.0%; most "
                             "often read as one (7 images)"))
      << xml;
  EXPECT_TRUE(test::contains(xml, "test accuracy 50.0% of 100 images below the mark 90.0%"));
  size_t cases = 0;
  for (size_t at = xml.find("<testcase"); at != std::string::npos; at = xml.find("<testcase", at + 1)) ++cases;
  EXPECT_EQ(cases, 3u);
  // Without a mark for the test split there is no test case for it.
  r.min_test_accuracy = -1;
  EXPECT_FALSE(test::contains(junit_xml(r), "test_split"));
}

}  // namespace
}  // namespace defuse
