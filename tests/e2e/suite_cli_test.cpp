// End-to-end: a corrected workspace -> export-suite -> check (the original fails its own
// failures, the gates and reports), export-scenarios as a dataset PyTorch and NumPy read, and
// the bad-input cases, in process on tiny generated data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "defuse/base/atomic_file.h"
#include "defuse/base/csv.h"
#include "support/cli_support.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::CliResult;

CliResult run(std::vector<std::string> args) { return test::run_defuse(std::move(args)); }

std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_file(e.path());
  return files;
}

// One corrected and evaluated workspace for the whole suite (no judges: the scenarios are
// taken with --scenarios labelled), and the original and chosen models exported beside it.
class SuiteCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = new test::TempDir();
    const fs::path data = base_->path() / "data";
    test::write_idx_dataset(data, test::make_toy_dataset(240, 60, 1, 12, 12, 4), false);
    data_ = new std::string("mnist:" + data.string());
    ws_ = new std::string((base_->path() / "ws").string());
    const std::string& ws = *ws_;
    auto check = [](const CliResult& r) { ASSERT_EQ(r.code, 0) << r.err; };
    check(run({"train-classifier", "--data", *data_, "--workspace", ws, "--epochs", "1", "--batch-size", "32", "--lr",
               "0.003", "--threads", "1", "--quiet"}));
    check(run({"train-vae", "--workspace", ws, "--epochs", "1", "--filters", "8", "--latent", "4", "--batch-size", "40",
               "--threads", "1", "--quiet"}));
    check(run({"identify", "--workspace", ws, "-Q", "24", "-M", "4", "--sigma", "1.0", "--max-seeds", "80",
               "--keep-bad-reconstructions", "--threads", "1", "--quiet"}));
    check(run({"distill", "--workspace", ws, "--components", "8", "--samples", "16", "--shown", "4", "--neighbours",
               "2", "--min-failure-rate", "0", "--threads", "1", "--quiet"}));
    check(run({"annotate", "--workspace", ws, "--auto", "seed", "--quiet"}));
    check(run({"correct", "--workspace",
               ws,        "--lambda",
               "1",       "--baseline",
               "none",    "--epochs",
               "1",       "--batch-size",
               "32",      "--scenario-batch-size",
               "32",      "--samples-per-scenario",
               "64",      "--lr",
               "0.01",    "--threads",
               "1",       "--quiet"}));
    check(run({"evaluate", "--workspace", ws, "--samples-per-scenario", "32", "--threads", "1", "--quiet"}));
    check(run({"export", "--workspace", ws, "--model", "original", "-o", (base_->path() / "original.pt").string(),
               "--quiet"}));
    check(run(
        {"export", "--workspace", ws, "--model", "chosen", "-o", (base_->path() / "chosen.pt").string(), "--quiet"}));
  }
  static void TearDownTestSuite() {
    delete ws_;
    delete data_;
    delete base_;
  }
  static std::string model(const char* name) { return (base_->path() / name).string(); }
  std::vector<std::string> export_args(const fs::path& out, std::vector<std::string> extra = {},
                                       const char* images = "16") const {
    std::vector<std::string> a{"export-suite", "--workspace", *ws_,       "-o",   out.string(),
                               "--scenarios",  "labelled",    "--images", images, "--max-draws",
                               "2048",         "--threads",   "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  static test::TempDir* base_;
  static std::string* data_;
  static std::string* ws_;
  test::TempDir tmp_;
};
test::TempDir* SuiteCli::base_ = nullptr;
std::string* SuiteCli::data_ = nullptr;
std::string* SuiteCli::ws_ = nullptr;

TEST_F(SuiteCli, TheOriginalFailsItsOwnFailuresAndTheReportsSaySo) {
  // Without judges no scenario is known to be genuine: the default asks for them.
  auto nojudges = run({"export-suite", "--workspace", *ws_, "-o", (tmp_.path() / "x").string(), "--threads", "1"});
  EXPECT_EQ(nojudges.code, 7);
  EXPECT_TRUE(test::contains(nojudges.err, "no scenario was judged")) << nojudges.err;
  EXPECT_FALSE(fs::exists(tmp_.path() / "x"));

  const fs::path suite = tmp_.path() / "suite";
  auto e = run(export_args(suite, {"--json"}));
  ASSERT_EQ(e.code, 0) << e.err;
  json ej = json::parse(e.out);
  ASSERT_GT(ej["scenarios"].size(), 0u);
  EXPECT_EQ(ej["kept"], "failing");
  json sj = json::parse(read_file(suite / "suite.json"));
  EXPECT_EQ(sj["format"], "defuse-suite");
  EXPECT_EQ(sj["shape"]["height"], 12);
  int64_t images = 0;
  for (const auto& s : sj["scenarios"]) {
    for (const auto& im : s["images"]) {
      EXPECT_TRUE(fs::exists(suite / im["file"].get<std::string>()));
      EXPECT_NE(im["original_prediction"], s["label"]);  // each one a failure of the original
      ++images;
    }
  }
  EXPECT_EQ(ej["images"].get<int64_t>(), images);

  // The same workspace and seed give the same bytes.
  const fs::path again = tmp_.path() / "again";
  ASSERT_EQ(run(export_args(again, {"--quiet"})).code, 0);
  EXPECT_EQ(tree(suite), tree(again));

  // The original classifier gets none of its own failures right: exit 9, and the JUnit
  // report has a failing case per scenario.
  const fs::path junit = tmp_.path() / "report.xml";
  auto c = run({"check", "--model", model("original.pt"), "--suite", suite.string(), "--junit", junit.string(),
                "--json", "--threads", "1"});
  EXPECT_EQ(c.code, 9) << c.err;
  json cj = json::parse(c.out);
  EXPECT_EQ(cj["passed"], false);
  EXPECT_EQ(cj["failed"].get<size_t>(), sj["scenarios"].size());
  for (const auto& s : cj["scenarios"]) {
    EXPECT_EQ(s["correct"], 0);
    EXPECT_DOUBLE_EQ(s["ci_low"].get<double>(), 0.0);
    EXPECT_GT(s["ci_high"].get<double>(), 0.0);
  }
  const std::string xml = read_file(junit);
  EXPECT_TRUE(test::contains(xml, fmt::format("failures=\"{}\"", sj["scenarios"].size()))) << xml;
  EXPECT_TRUE(test::contains(xml, "<failure type=\"accuracy\"")) << xml;

  // The table on stderr; a pass mark of 0 lets anything pass (exit 0).
  auto table = run({"check", "--model", model("original.pt"), "--suite", suite.string(), "--threads", "1"});
  EXPECT_EQ(table.code, 9);
  EXPECT_TRUE(test::contains(table.err, "95% interval")) << table.err;
  EXPECT_TRUE(test::contains(table.out, "check: FAIL")) << table.out;
  auto lenient = run({"check", "--model", model("original.pt"), "--suite", suite.string(), "--min-accuracy", "0",
                      "--quiet", "--threads", "1"});
  EXPECT_EQ(lenient.code, 0) << lenient.err;
  EXPECT_TRUE(test::contains(lenient.out, "check: pass")) << lenient.out;

  // The chosen corrected model, fine-tuned on other draws of the same scenarios, passes.
  auto fixed = run({"check", "--model", model("chosen.pt"), "--suite", suite.string(), "--json", "--threads", "1"});
  EXPECT_EQ(fixed.code, 0) << fixed.out << fixed.err;
  const json fj = json::parse(fixed.out);
  EXPECT_EQ(fj["passed"], true);
  for (const auto& s : fj["scenarios"]) EXPECT_GE(s["accuracy"].get<double>(), 0.9) << fixed.out;

  // Built from the workspace on the fly, with the test split scored and given a mark.
  auto w = run({"check", "--model", model("original.pt"), "-w", *ws_, "--scenarios", "labelled", "--images", "16",
                "--min-test-accuracy", "1", "--json", "--threads", "1"});
  EXPECT_EQ(w.code, 9) << w.err;
  json wj = json::parse(w.out);
  EXPECT_TRUE(wj["test_accuracy"].is_number());
  EXPECT_EQ(wj["test_images"], 60);
  // Every scenario fails, and the test split unless the toy classifier is perfect on it.
  const size_t below = wj["test_accuracy"].get<double>() < 1 ? 1 : 0;
  EXPECT_EQ(wj["failed"].get<size_t>(), wj["scenarios"].size() + below) << w.out;
}

TEST_F(SuiteCli, BadModelsAndBadSuitesAreClearErrors) {
  const fs::path suite = tmp_.path() / "suite";
  ASSERT_EQ(run(export_args(suite, {"--quiet"})).code, 0);
  // A model of other classes is refused before scoring, and no report is written.
  test::write_torchscript_constant(tmp_.path() / "three.pt", {1, 0, 0});
  const fs::path junit = tmp_.path() / "r.xml";
  auto wrong = run(
      {"check", "--model", (tmp_.path() / "three.pt").string(), "--suite", suite.string(), "--junit", junit.string()});
  EXPECT_EQ(wrong.code, 6);
  EXPECT_TRUE(test::contains(wrong.err, "three.pt")) << wrong.err;
  EXPECT_FALSE(fs::exists(junit));
  auto missing = run({"check", "--model", (tmp_.path() / "none.pt").string(), "--suite", suite.string()});
  EXPECT_EQ(missing.code, 4);
  auto neither = run({"check", "--model", model("original.pt")});
  EXPECT_EQ(neither.code, 3);
  EXPECT_TRUE(test::contains(neither.err, "--suite DIR")) << neither.err;
  auto both = run({"check", "--model", model("original.pt"), "--suite", suite.string(), "-w", *ws_});
  EXPECT_EQ(both.code, 2);
  // A stored suite is what it is: the options that shape one from -w do not apply.
  auto shaped = run({"check", "--model", model("original.pt"), "--suite", suite.string(), "--images", "5"});
  EXPECT_EQ(shaped.code, 2);
  EXPECT_TRUE(test::contains(shaped.err, "excludes")) << shaped.err;
  // A damaged image: one line naming the file, exit 5.
  json sj = json::parse(read_file(suite / "suite.json"));
  const fs::path png = suite / sj["scenarios"][0]["images"][0]["file"].get<std::string>();
  write_file_atomic(png, "not a png");
  auto damaged = run({"check", "--model", model("original.pt"), "--suite", suite.string()});
  EXPECT_EQ(damaged.code, 5);
  EXPECT_TRUE(test::contains(damaged.err, png.filename().string())) << damaged.err;
  // export-suite never writes over a directory that is not a suite.
  const fs::path mine = tmp_.path() / "mine";
  fs::create_directories(mine);
  write_file_atomic(mine / "notes.txt", "keep");
  auto over = run(export_args(mine));
  EXPECT_EQ(over.code, 4);
  EXPECT_EQ(read_file(mine / "notes.txt"), "keep");
  // ... but replaces an earlier suite whole.
  EXPECT_EQ(run(export_args(suite, {"--quiet"}, "4")).code, 0);
  EXPECT_EQ(json::parse(read_file(suite / "suite.json"))["scenarios"][0]["images"].size(), 4u);
}

TEST_F(SuiteCli, ScenariosExportAsADatasetThatPythonReads) {
  const fs::path out = tmp_.path() / "dataset";
  auto r = run({"export-scenarios", "--workspace", *ws_, "-o", out.string(), "--scenarios", "labelled", "--draws", "8",
                "--json", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_GT(j["members"].get<int64_t>(), 0);
  EXPECT_GT(j["draws"].get<int64_t>(), 0);
  auto rows = read_csv(read_file(out / "manifest.csv"), "manifest.csv");
  ASSERT_EQ(static_cast<int64_t>(rows.size()), j["images"].get<int64_t>() + 1);  // and the header
  EXPECT_EQ(rows[0].fields[0], "file");
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_TRUE(fs::exists(out / rows[i].fields[0])) << rows[i].fields[0];
    EXPECT_EQ(rows[i].fields[0].substr(0, rows[i].fields[0].find('/')), rows[i].fields[3]);  // its class folder
    EXPECT_EQ(rows[i].fields[2], rows[i].fields[3]);  // the toy's class names are safe folder names
  }
  json m = json::parse(read_file(out / "manifest.json"));
  EXPECT_EQ(m["images"].size(), rows.size() - 1);
  EXPECT_EQ(m["images"][0]["latent"].size(), 4u);
  for (const char* a : {"failures_latent", "failures_images", "failures_scenario", "scenarios_mean",
                        "scenarios_covariance", "scenarios_label"})
    EXPECT_TRUE(fs::exists(out / (std::string(a) + ".npy"))) << a;

  if (std::system("/usr/bin/python3 -c 'import torchvision, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torchvision or python3-numpy is not installed: the Python readers were not checked";
  const std::string script =
      "import csv, json, sys, numpy, torchvision\n"
      "d = sys.argv[1]\n"
      "ds = torchvision.datasets.ImageFolder(d)\n"
      "rows = list(csv.DictReader(open(d + '/manifest.csv')))\n"
      "assert len(ds) == len(rows), (len(ds), len(rows))\n"
      "image, target = ds[0]\n"
      "assert image.size == (12, 12), image.size\n"
      "names = {r['file']: r['class_folder'] for r in rows}\n"
      "for path, target in ds.samples:\n"
      "    rel = path[len(d) + 1:]\n"
      "    assert ds.classes[target] == names[rel], (rel, ds.classes[target])\n"
      "lat = numpy.load(d + '/failures_latent.npy')\n"
      "img = numpy.load(d + '/failures_images.npy')\n"
      "sc = numpy.load(d + '/failures_scenario.npy')\n"
      "mean = numpy.load(d + '/scenarios_mean.npy')\n"
      "cov = numpy.load(d + '/scenarios_covariance.npy')\n"
      "assert lat.shape[0] == img.shape[0] == sc.shape[0] and lat.shape[1] == 4, (lat.shape, img.shape)\n"
      "assert img.dtype == numpy.uint8 and img.shape[1:] == (1, 12, 12), img.shape\n"
      "assert cov.shape == (mean.shape[0], 4, 4), cov.shape\n"
      "member = [r for r in rows if r['kind'] == 'member'][0]\n"
      "z = numpy.array([float(v) for v in member['latent'].split()], dtype=numpy.float32)\n"
      "assert numpy.abs(lat - z).sum(axis=1).min() < 1e-4, 'the manifest latent is one of the failures'\n"
      "print('ok')\n";
  write_file_atomic(tmp_.path() / "read.py", script);
  const std::string cmd = "/usr/bin/python3 " + (tmp_.path() / "read.py").string() + " " + out.string() + " > " +
                          (tmp_.path() / "py.txt").string() + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << read_file(tmp_.path() / "py.txt");
}

}  // namespace
}  // namespace defuse
