// End-to-end tests: the `defuse` command line run in-process on tiny generated data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "defuse/base/error.h"
#include "defuse/base/pipeline.h"
#include "defuse/correct/correct.h"
#include "defuse/correct/evaluate.h"
#include "defuse/distill/distill.h"
#include "defuse/identify/identify.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/vae_store.h"
#include "support/cli_support.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

using nlohmann::json;

using test::CliResult;
CliResult run(std::vector<std::string> args) { return test::run_defuse(std::move(args)); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = tmp_.path() / "data";
    test::write_idx_dataset(data_dir_, test::make_toy_dataset(120, 40, 1, 12, 12, 10), true);
    workspace_ = (tmp_.path() / "ws").string();
  }
  std::string data() const { return "mnist:" + data_dir_.string(); }

  test::TempDir tmp_;
  std::filesystem::path data_dir_;
  std::string workspace_;
};

TEST_F(Cli, TrainClassifierPrintsOneJsonObjectAndRecordsTheStage) {
  auto r = run({"train-classifier", "--data", data(), "--workspace", workspace_, "--epochs", "2", "--batch-size", "32",
                "--lr", "0.01", "--json", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  json summary = json::parse(r.out);  // throws (fails the test) if stdout holds anything else
  EXPECT_EQ(summary["epochs"], 2);
  EXPECT_GT(summary["test_accuracy"].get<double>(), 0.5);
  EXPECT_GE(summary["seconds"].get<double>(), 0.0);
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(workspace_) / "classifier" / "model.pt"));

  auto status = run({"status", "--workspace", workspace_, "--json"});
  ASSERT_EQ(status.code, 0) << status.err;
  json s = json::parse(status.out);
  ASSERT_EQ(s["runs"].size(), 1u);
  EXPECT_EQ(s["runs"][0]["stage"], "train-classifier");
  EXPECT_EQ(s["runs"][0]["status"], "complete");

  ASSERT_EQ(s["pending"].size(), pipeline().size() - 1);
  EXPECT_EQ(s["pending"][0], "train-judges");

  auto text = run({"status", "--workspace", workspace_});
  EXPECT_NE(text.out.find("train-classifier"), std::string::npos);
  EXPECT_NE(text.out.find("complete"), std::string::npos);
  EXPECT_NE(text.out.find("not run yet: train-judges, train-vae, identify,"), std::string::npos) << text.out;
}

TEST(Pipeline, TheStageListNamesTheStagesAndCommandsThatExist) {
  // base/pipeline.h is torch-free; the stages' own name constants must match it.
  const std::vector<std::string> constants{kClassifierStage, kJudgesStage,   kVaeStage,
                                           kIdentifyStage,   kDistillStage,  "annotate",
                                           kCorrectStage,    kEvaluateStage, "report"};
  EXPECT_EQ(pipeline_stage_names(), constants);
  for (const auto& stage : pipeline()) {
    SCOPED_TRACE(std::string(stage.name));
    EXPECT_FALSE(stage.does.empty());
    // Its own help, not the program's (which an unknown name would print, with exit 0).
    auto help = test::run_defuse({std::string(stage.name), "--help"});
    EXPECT_EQ(help.code, 0) << help.err;
    EXPECT_TRUE(test::contains(help.out, "Usage: defuse " + std::string(stage.name) + " ")) << help.out;
    // A stage reads only stages that run before it.
    for (const auto& input : stage.reads) {
      auto names = pipeline_stage_names();
      auto at = std::find(names.begin(), names.end(), std::string(input));
      ASSERT_NE(at, names.end()) << input;
      EXPECT_LT(at - names.begin(), std::find(names.begin(), names.end(), std::string(stage.name)) - names.begin());
    }
  }
}

TEST_F(Cli, ImportsAValidTorchScriptClassifier) {
  auto model = tmp_.path() / "user.pt";
  test::write_torchscript_linear(model, 12 * 12, 10);
  auto r =
      run({"train-classifier", "--data", data(), "--workspace", workspace_, "--classifier", model.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["epochs"], 0);
}

TEST_F(Cli, ClassifierWithTheWrongNumberOfClassesIsAModelError) {
  auto model = tmp_.path() / "user.pt";
  test::write_torchscript_linear(model, 12 * 12, 4);
  auto r = run({"train-classifier", "--data", data(), "--workspace", workspace_, "--classifier", model.string()});
  EXPECT_EQ(r.code, kExitModel);
  EXPECT_NE(r.err.find("outputs 4 logits but the dataset has 10 classes"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;  // the data line and the error line
  EXPECT_TRUE(r.out.empty());
  // Nothing half-written: no model file, and the catalogue has no complete stage.
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(workspace_) / "classifier" / "model.pt"));
}

TEST_F(Cli, CorruptClassifierFileIsAModelError) {
  auto model = tmp_.path() / "junk.pt";
  test::write_file(model, std::string_view("PK\x03\x04 definitely not a zip"));
  auto r = run({"train-classifier", "--data", data(), "--workspace", workspace_, "--classifier", model.string()});
  EXPECT_EQ(r.code, kExitModel) << r.err;
  EXPECT_NE(r.err.find("junk.pt"), std::string::npos);
}

TEST_F(Cli, MissingDatasetIsAnIoErrorAndTruncatedOneADataError) {
  auto missing =
      run({"train-classifier", "--data", "mnist:" + (tmp_.path() / "nope").string(), "--workspace", workspace_});
  EXPECT_EQ(missing.code, kExitIo) << missing.err;
  EXPECT_EQ(missing.err.rfind("defuse: data: ", 0), 0u) << missing.err;

  std::filesystem::resize_file(data_dir_ / "train-labels-idx1-ubyte.gz", 20);
  auto truncated = run({"train-classifier", "--data", data(), "--workspace", workspace_});
  EXPECT_EQ(truncated.code, kExitData) << truncated.err;
  EXPECT_NE(truncated.err.find("train-labels-idx1-ubyte.gz"), std::string::npos) << truncated.err;
}

TEST_F(Cli, BadOptionsAreConfigOrUsageErrors) {
  EXPECT_EQ(run({"train-classifier", "--data", data(), "--workspace", workspace_, "--epochs", "0"}).code, kExitConfig);
  EXPECT_EQ(run({"train-classifier", "--data", data(), "--workspace", workspace_, "--device", "tpu"}).code,
            kExitConfig);
  EXPECT_EQ(run({"train-classifier", "--data", "imagenet:/x", "--workspace", workspace_}).code, kExitConfig);
  EXPECT_EQ(run({"train-classifier", "--no-such-flag"}).code, kExitUsage);
  EXPECT_EQ(run({"train-classifier", "--arch", "vgg"}).code, kExitUsage);
  EXPECT_EQ(run({}).code, kExitUsage);
}

// `defuse cluster`: the two screens of the E-step give the same labels and bound (the CLI
// passes --screen through), the summary reports the screen and the fit's CPU time, and an
// unknown screen is a usage error.
TEST_F(Cli, ClusterScreensGiveTheSameFit) {
  const auto points = tmp_.path() / "points.csv";
  {
    std::ofstream f(points);
    f << "x,y,z\n";
    for (int i = 0; i < 600; ++i) {
      const double c = i % 3, t = 0.37 * i;
      f << 8 * c + std::sin(t) << "," << -5 * c + std::cos(1.3 * t) << "," << 0.5 * std::sin(2.1 * t) << "\n";
    }
  }
  std::vector<json> summaries;
  std::vector<std::string> labels;
  for (std::string screen : {"bounds", "product"}) {
    const auto out = tmp_.path() / ("labels_" + screen + ".csv");
    auto r = run({"cluster", "--input", points.string(), "--output", out.string(), "-k", "8", "--max-iter", "200",
                  "--screen", screen, "--json", "--quiet", "--threads", "2"});
    ASSERT_EQ(r.code, 0) << r.err;
    summaries.push_back(json::parse(r.out));
    std::ifstream f(out);
    labels.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    EXPECT_EQ(summaries.back()["screen"], screen);
    EXPECT_GT(summaries.back()["cpu_seconds"].get<double>(), 0.0);
  }
  EXPECT_EQ(summaries[0]["lower_bounds"], summaries[1]["lower_bounds"]);
  EXPECT_EQ(labels[0], labels[1]);
  EXPECT_EQ(
      run({"cluster", "--input", points.string(), "--output", (tmp_.path() / "l.csv").string(), "--screen", "exact"})
          .code,
      kExitUsage);
}

TEST_F(Cli, StatusOfANonWorkspaceIsAStateError) {
  auto r = run({"status", "--workspace", (tmp_.path() / "empty").string()});
  EXPECT_EQ(r.code, kExitState);
  EXPECT_NE(r.err.find("not a workspace"), std::string::npos);
}

TEST_F(Cli, HelpListsSubcommandsAndOptions) {
  auto top = run({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("train-classifier"), std::string::npos);
  auto sub = run({"train-classifier", "--help"});
  EXPECT_EQ(sub.code, 0);
  EXPECT_NE(sub.out.find("--epochs"), std::string::npos);
  EXPECT_NE(sub.out.find("--classifier"), std::string::npos);
}

}  // namespace
}  // namespace defuse
