#include "defuse/train/train_classifier.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "defuse/base/error.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

TrainClassifierOptions quick(uint64_t seed = 5) {
  TrainClassifierOptions o;
  o.arch = "cnn";
  o.epochs = 3;
  o.batch_size = 32;
  o.lr = 1e-2;
  o.seed = seed;
  return o;
}

TEST(TrainClassifier, LearnsASeparableProblem) {
  auto data = test::make_toy_dataset(256, 64, 1, 12, 12, 4);
  int calls = 0;
  auto options = quick();
  options.on_progress = [&](const TrainProgress& p) {
    ++calls;
    EXPECT_LE(p.batch, p.batches);
    EXPECT_LE(p.epoch, p.epochs);
  };
  auto result = train_classifier(data, options);
  EXPECT_EQ(calls, 3 * 8);
  ASSERT_EQ(result.epochs.size(), 3u);
  EXPECT_GT(result.test.accuracy, 0.95);
  EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
  ASSERT_EQ(result.test.confusion.size(), 4u);
  int64_t total = 0;
  for (auto& row : result.test.confusion)
    for (auto v : row) total += v;
  EXPECT_EQ(total, 64);
}

TEST(TrainClassifier, SameSeedGivesIdenticalWeights) {
  auto data = test::make_toy_dataset(96, 30, 1, 8, 8, 3);
  auto a = train_classifier(data, quick(11));
  auto b = train_classifier(data, quick(11));
  auto c = train_classifier(data, quick(12));
  EXPECT_TRUE(test::same_parameters(a.model->parameters(), b.model->parameters()));
  EXPECT_TRUE(test::any_parameter_differs(a.model->parameters(), c.model->parameters()));
  EXPECT_EQ(a.test.accuracy, b.test.accuracy);
}

TEST(TrainClassifier, AugmentationKeepsShapesAndStillLearns) {
  auto data = test::make_toy_dataset(256, 60, 3, 12, 12, 3);
  auto options = quick();
  options.augment = true;
  auto result = train_classifier(data, options);
  EXPECT_EQ(result.model->spec().channels, 3);
  EXPECT_GT(result.test.accuracy, 0.9);
}

TEST(TrainClassifier, Bf16TrainsLikeFp32) {
  auto data = test::make_toy_dataset(256, 64, 1, 12, 12, 4);
  auto o = quick();
  o.precision = "fp32";
  auto fp32 = train_classifier(data, o);
  o.precision = "bf16";
  auto bf16 = train_classifier(data, o);
  EXPECT_GT(bf16.test.accuracy, 0.9);
  EXPECT_NEAR(bf16.test.accuracy, fp32.test.accuracy, 0.05);
  for (const auto& p : bf16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(test::any_parameter_differs(fp32.model->parameters(), bf16.model->parameters()));
}

TEST(TrainClassifier, RejectsBadOptionsAndEmptyData) {
  auto data = test::make_toy_dataset(30, 9, 1, 8, 8, 3);
  auto o = quick();
  o.epochs = 0;
  EXPECT_THROW(train_classifier(data, o), ConfigError);
  o = quick();
  o.precision = "fp16";
  EXPECT_THROW(train_classifier(data, o), ConfigError);
  o = quick();
  o.lr = -1;
  EXPECT_THROW(train_classifier(data, o), ConfigError);
  o = quick();
  o.device = "tpu";
  EXPECT_THROW(train_classifier(data, o), ConfigError);
  auto empty = test::make_toy_dataset(0, 9, 1, 8, 8, 3);
  EXPECT_THROW(train_classifier(empty, quick()), DataError);
}

}  // namespace
}  // namespace defuse
