// End-to-end: train-classifier -> train-vae -> identify -> interpolate, in-process on tiny
// generated data, and the bad-input cases of the VAE and identification commands.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli.h"
#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/base/sqlite.h"
#include "defuse/base/workspace.h"
#include "defuse/identify/failure_store.h"
#include "support/cli_support.h"
#include "support/test_support.h"

namespace defuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::CliResult;
CliResult run(std::vector<std::string> args) { return test::run_defuse(std::move(args)); }

class IdentifyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = write("data", test::make_toy_dataset(200, 40, 1, 12, 12, 10));
    ws_ = (tmp_.path() / "ws").string();
  }
  std::string write(const std::string& name, const Dataset& dataset) {
    test::write_idx_dataset(tmp_.path() / name, dataset, false);
    return "mnist:" + (tmp_.path() / name).string();
  }
  CliResult train_classifier(const std::string& ws, const std::string& data) {
    return run({"train-classifier", "--data", data, "--workspace", ws, "--epochs", "2", "--batch-size", "32", "--lr",
                "0.01", "--threads", "1", "--quiet"});
  }
  CliResult train_vae(const std::string& ws, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"train-vae", "--workspace",  ws,   "--epochs",  "1", "--filters", "8", "--latent",
                                  "4",         "--batch-size", "50", "--threads", "1", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args);
  }
  // Whether the workspace has a complete identify stage, and its failures file.
  bool identify_written(const std::string& ws) {
    Workspace w(ws);
    return w.latest("identify").has_value() || fs::exists(fs::path(ws) / kFailuresArtifact);
  }

  test::TempDir tmp_;
  std::string data_, ws_;
};

TEST_F(IdentifyCli, TrainVaeIdentifyAndInterpolate) {
  ASSERT_EQ(train_classifier(ws_, data_).code, 0);

  auto vae = train_vae(ws_, {"--json"});  // --data defaults to the classifier's
  ASSERT_EQ(vae.code, 0) << vae.err;
  json v = json::parse(vae.out);
  for (const char* key : {"test_reconstruction", "test_kl", "test_elbo", "epochs", "seconds", "history"})
    EXPECT_TRUE(v.contains(key)) << key;
  EXPECT_EQ(v["epochs"], 1);
  EXPECT_TRUE(fs::exists(fs::path(ws_) / "vae" / "model.pt"));
  EXPECT_TRUE(fs::exists(fs::path(ws_) / "vae" / "codes.pt"));

  auto id = run({"identify", "--workspace", ws_, "-Q", "16", "-M", "2", "--max-seeds", "30", "--threads", "1", "--json",
                 "--quiet"});
  ASSERT_EQ(id.code, 0) << id.err;
  json s = json::parse(id.out);
  for (const char* key : {"seeds", "decodes", "failures", "decodes_per_second", "failure_rate", "decodes_per_failure",
                          "pairs", "failing_decodes", "distinct_pairs"})
    EXPECT_TRUE(s.contains(key)) << key;
  EXPECT_GT(s["seeds"].get<int64_t>(), 0);
  EXPECT_LE(s["seeds"].get<int64_t>(), 30);
  EXPECT_EQ(s["decodes"].get<int64_t>(), 16 * s["seeds"].get<int64_t>());
  EXPECT_LE(s["failures"].get<int64_t>(), 2 * s["seeds"].get<int64_t>());
  EXPECT_GT(s["decodes_per_second"].get<double>(), 0);
  EXPECT_TRUE(fs::exists(fs::path(ws_) / kFailuresArtifact));

  Workspace workspace(ws_);
  auto record = workspace.latest("identify");
  ASSERT_TRUE(record);
  // Upstream fingerprints are inputs, so an incremental run can tell what to redo.
  EXPECT_EQ(record->inputs["vae"], workspace.latest("train-vae")->fingerprint);
  EXPECT_EQ(record->inputs["classifier"], workspace.latest("train-classifier")->fingerprint);
  EXPECT_TRUE(record->inputs.contains("dataset"));
  auto failures = load_failures(workspace);
  EXPECT_EQ(failures.size(), s["failures"].get<int64_t>());
  if (failures.size() > 0) {
    EXPECT_TRUE(fs::exists(fs::path(ws_) / kFailureGridArtifact));
    auto png = read_image((fs::path(ws_) / kFailureGridArtifact).string(), "test");
    EXPECT_EQ(png.channels, 3);
  }

  auto text =
      run({"identify", "--workspace", ws_, "-Q", "8", "--max-seeds", "10", "--noise", "beta", "--threads", "1"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("decodes/s"), std::string::npos) << text.out;

  auto strip = run({"interpolate", "--workspace", ws_, "--from", "0", "--to", "3", "--steps", "6", "--json",
                    "--threads", "1", "--quiet"});
  ASSERT_EQ(strip.code, 0) << strip.err;
  json p = json::parse(strip.out);
  EXPECT_EQ(p["predictions"].size(), 6u);
  EXPECT_EQ(p["labels"], json({0, 3}));
  fs::path png = fs::path(ws_) / "figures" / "interpolation_0_3.png";
  EXPECT_EQ(p["output"], png.string());
  auto image = read_image(png.string(), "test");
  EXPECT_GT(image.width, 8 * 12 * 2);  // 8 tiles at 2x

  auto status = run({"status", "--workspace", ws_});
  EXPECT_NE(status.out.find("train-vae"), std::string::npos);
  EXPECT_NE(status.out.find("identify"), std::string::npos);
}

TEST_F(IdentifyCli, IdentifyNeedsTheEarlierStages) {
  auto r = run({"identify", "--workspace", ws_, "--data", data_});
  EXPECT_EQ(r.code, kExitState) << r.err;
  EXPECT_NE(r.err.find("train-vae"), std::string::npos) << r.err;
  ASSERT_EQ(train_vae(ws_, {"--data", data_}).code, 0);
  r = run({"identify", "--workspace", ws_});
  EXPECT_EQ(r.code, kExitState) << r.err;
  EXPECT_NE(r.err.find("train-classifier"), std::string::npos) << r.err;
}

TEST_F(IdentifyCli, VaeOfAnotherShapeIsAModelErrorAndWritesNothing) {
  ASSERT_EQ(train_classifier(ws_, data_).code, 0);
  auto other = write("big", test::make_toy_dataset(60, 20, 1, 16, 16, 10));
  ASSERT_EQ(train_vae(ws_, {"--data", other}).code, 0);
  auto r = run({"identify", "--workspace", ws_, "--threads", "1"});  // the classifier's 12x12 data
  EXPECT_EQ(r.code, kExitModel) << r.err;
  EXPECT_NE(r.err.find("1x16x16"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1x12x12"), std::string::npos) << r.err;
  EXPECT_FALSE(identify_written(ws_));
  auto strip = run({"interpolate", "--workspace", ws_, "--from", "0", "--to", "1"});
  EXPECT_EQ(strip.code, kExitModel) << strip.err;
}

TEST_F(IdentifyCli, ClassifierWithOtherClassesIsAModelErrorAndWritesNothing) {
  ASSERT_EQ(train_classifier(ws_, data_).code, 0);
  // IDX datasets always have the ten digit classes; an image folder has its own.
  test::write_image_folder(tmp_.path() / "four", test::make_toy_dataset(60, 20, 1, 12, 12, 4));
  const std::string four = "folder:" + (tmp_.path() / "four").string();
  ASSERT_EQ(train_vae(ws_, {"--data", four}).code, 0);
  auto r = run({"identify", "--workspace", ws_, "--data", four, "--threads", "1"});
  EXPECT_EQ(r.code, kExitModel) << r.err;
  EXPECT_NE(r.err.find("10 classes but the dataset has 4"), std::string::npos) << r.err;
  EXPECT_FALSE(identify_written(ws_));
}

TEST_F(IdentifyCli, BadOptionsAreConfigErrorsAndWriteNothing) {
  ASSERT_EQ(train_classifier(ws_, data_).code, 0);
  ASSERT_EQ(train_vae(ws_).code, 0);
  for (auto args :
       std::vector<std::vector<std::string>>{{"-Q", "0"}, {"-M", "0"}, {"--sigma", "-1"}, {"--batch-size", "0"}}) {
    std::vector<std::string> full{"identify", "--workspace", ws_};
    full.insert(full.end(), args.begin(), args.end());
    auto r = run(full);
    EXPECT_EQ(r.code, kExitConfig) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("defuse: identify: ", 0), 0u) << r.err;
  }
  EXPECT_FALSE(identify_written(ws_));
  EXPECT_EQ(run({"identify", "--workspace", ws_, "--noise", "uniform"}).code, kExitUsage);
  EXPECT_EQ(run({"train-vae", "--workspace", ws_, "--epochs", "-1"}).code, kExitConfig);
  EXPECT_EQ(run({"train-vae", "--workspace", ws_, "--latent", "-1"}).code, kExitConfig);
  EXPECT_EQ(run({"interpolate", "--workspace", ws_, "--from", "0", "--to", "999"}).code, kExitConfig);
  EXPECT_EQ(run({"interpolate", "--workspace", ws_, "--from", "0", "--to", "1", "--steps", "1"}).code, kExitConfig);
}

}  // namespace
}  // namespace defuse
