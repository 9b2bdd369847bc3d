#include "defuse/train/train_vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "defuse/base/error.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

TrainVaeOptions quick(uint64_t seed = 3) {
  TrainVaeOptions o;
  o.latent = 4;
  o.filters = 8;
  o.epochs = 3;
  o.batch_size = 32;
  o.lr = 3e-3;
  o.seed = seed;
  o.precision = "fp32";  // what the tests compare (bf16 is tested on its own)
  return o;
}

TEST(TrainVae, LossDecreasesAndCodesCoverBothSplits) {
  auto data = test::make_toy_dataset(256, 40, 1, 12, 12, 4);
  int calls = 0;
  auto options = quick();
  options.beta = 1.0;
  options.on_progress = [&](const VaeProgress& p) {
    ++calls;
    EXPECT_LE(p.batch, p.batches);
    EXPECT_GE(p.kl_weight, 0.0);
    EXPECT_LE(p.kl_weight, 1.0);
  };
  auto result = train_vae(data, options);
  EXPECT_EQ(calls, 3 * 8);
  ASSERT_EQ(result.epochs.size(), 3u);
  EXPECT_LT(result.epochs.back().reconstruction, result.epochs.front().reconstruction);
  EXPECT_EQ(result.steps, 24);
  EXPECT_EQ(result.anneal_steps, 12);  // default: half of all steps
  EXPECT_DOUBLE_EQ(result.epochs.back().kl_weight, 1.0);
  EXPECT_GT(result.test.reconstruction, 0.0);
  EXPECT_GE(result.test.kl, 0.0);
  EXPECT_NEAR(result.test.elbo, -(result.test.reconstruction + result.test.kl), 1e-9);
  EXPECT_EQ(result.train_codes.sizes(), (std::vector<int64_t>{256, 4}));
  EXPECT_EQ(result.test_codes.sizes(), (std::vector<int64_t>{40, 4}));
  EXPECT_EQ(result.model->device(), c10::Device(c10::kCPU));
}

TEST(TrainVae, EveryReconstructionLossTrains) {
  auto data = test::make_toy_dataset(64, 16, 3, 8, 8, 2);
  for (const std::string loss : {"mse", "ssim"}) {
    auto options = quick();
    options.loss = loss;
    options.epochs = 4;
    options.encode_splits = false;
    auto result = train_vae(data, options);
    EXPECT_LT(result.epochs.back().reconstruction, result.epochs.front().reconstruction) << loss;
    EXPECT_FALSE(result.train_codes.defined());
  }
}

// bf16 autocast changes the arithmetic of the training steps, not what is trained: the loss
// falls as in fp32 and the test ELBO (evaluated in fp32) lands near fp32's; the stored model
// is fp32.
TEST(TrainVae, Bf16TrainsLikeFp32) {
  auto data = test::make_toy_dataset(256, 40, 1, 12, 12, 4);
  auto fp32 = train_vae(data, quick());
  auto o = quick();
  o.precision = "bf16";
  auto bf16 = train_vae(data, o);
  EXPECT_LT(bf16.epochs.back().reconstruction, bf16.epochs.front().reconstruction);
  EXPECT_NEAR(bf16.test.reconstruction, fp32.test.reconstruction, 0.05 * fp32.test.reconstruction);
  EXPECT_EQ(bf16.train_codes.scalar_type(), torch::kFloat32);
  for (const auto& p : bf16.model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  o.precision = "fp16";
  EXPECT_THROW(train_vae(data, o), ConfigError);
}

TEST(TrainVae, SameSeedGivesIdenticalWeights) {
  auto data = test::make_toy_dataset(64, 16, 1, 8, 8, 2);
  auto a = train_vae(data, quick(7));
  auto b = train_vae(data, quick(7));
  auto c = train_vae(data, quick(8));
  EXPECT_TRUE(test::same_parameters(a.model->parameters(), b.model->parameters()));
  EXPECT_TRUE(test::any_parameter_differs(a.model->parameters(), c.model->parameters()));
  EXPECT_EQ(a.test.reconstruction, b.test.reconstruction);
  EXPECT_TRUE(torch::equal(a.train_codes, b.train_codes));
}

TEST(TrainVae, LatentFiltersBetaAndEpochsDefaultByTheDataShape) {
  TrainVaeOptions o;
  EXPECT_EQ(o.effective_epochs(1), 6);
  EXPECT_EQ(o.effective_epochs(3), 18);
  EXPECT_EQ(o.effective_loss(1), "bce");
  EXPECT_EQ(o.effective_loss(3), "ssim");
  EXPECT_EQ(o.effective_latent(1, 28, 28), 16);
  EXPECT_EQ(o.effective_latent(3, 32, 32), 128);
  EXPECT_DOUBLE_EQ(o.effective_beta(1), 1.0);
  EXPECT_DOUBLE_EQ(o.effective_beta(3), 0.1);
  EXPECT_EQ(o.effective_filters(1, 28, 28), 64);
  EXPECT_EQ(o.effective_filters(3, 32, 32), 128);
  o.latent = 7;
  o.filters = 9;
  EXPECT_EQ(o.effective_latent(3, 32, 32), 7);
  EXPECT_EQ(o.effective_filters(1, 28, 28), 9);
  o.beta = 4;
  EXPECT_DOUBLE_EQ(o.effective_beta(3), 4.0);
  o.epochs = 2;
  EXPECT_EQ(o.effective_epochs(3), 2);
  o.loss = "mse";
  EXPECT_EQ(o.effective_loss(3), "mse");
}

TEST(TrainVae, EpochsZeroTrainsTheShapesDefault) {
  auto data = test::make_toy_dataset(16, 4, 1, 8, 8, 2);
  auto o = quick();
  o.epochs = 0;
  o.encode_splits = false;
  EXPECT_EQ(train_vae(data, o).epochs.size(), 6u);
}

TEST(TrainVae, RejectsBadOptions) {
  auto data = test::make_toy_dataset(16, 4, 1, 8, 8, 2);
  auto bad = [&](auto change) {
    auto o = quick();
    change(o);
    return test::error_message<ConfigError>([&] { train_vae(data, o); });
  };
  EXPECT_TRUE(test::contains(bad([](TrainVaeOptions& o) { o.epochs = -1; }), "--epochs"));
  EXPECT_TRUE(test::contains(bad([](TrainVaeOptions& o) { o.latent = -1; }), "--latent"));
  EXPECT_TRUE(test::contains(bad([](TrainVaeOptions& o) { o.loss = "l1"; }), "l1"));
  EXPECT_TRUE(test::contains(bad([](TrainVaeOptions& o) { o.beta = -1; }), "--beta"));
  EXPECT_TRUE(test::contains(bad([](TrainVaeOptions& o) { o.device = "tpu"; }), "tpu"));
  auto empty = data;
  empty.train = {};
  EXPECT_THROW(train_vae(empty, quick()), DataError);
}

}  // namespace
}  // namespace defuse
