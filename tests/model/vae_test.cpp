#include "defuse/model/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/model/vae_store.h"
#include "support/test_support.h"

namespace defuse {
namespace {

VaeSpec spec_for(int64_t c, int64_t h, int64_t w, int64_t latent = 10, const std::string& decoder = "subpixel",
                 int64_t filters = 8) {
  VaeSpec s;
  s.channels = c;
  s.height = h;
  s.width = w;
  s.latent = latent;
  s.filters = filters;
  s.decoder = decoder;
  return s;
}

TEST(Vae, EncodesAndDecodesEveryInputSizeWithBothDecoders) {
  torch::manual_seed(0);
  for (const std::string decoder : {"subpixel", "transposed"}) {
    for (auto [c, h, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 28, 28}, {3, 32, 32}, {3, 64, 64}, {1, 12, 20}}) {
      auto vae = make_vae(spec_for(c, h, w, 6, decoder));
      vae->set_training(false);
      auto x = torch::rand({3, c, h, w});
      auto enc = vae->encode(x);
      EXPECT_EQ(enc.mu.sizes(), (std::vector<int64_t>{3, 6})) << decoder << " " << h;
      EXPECT_EQ(enc.logvar.sizes(), (std::vector<int64_t>{3, 6}));
      auto y = vae->decode(enc.mu);
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, c, h, w})) << decoder << " " << c << "x" << h << "x" << w;
      EXPECT_GE(y.min().item<float>(), 0.0f);
      EXPECT_LE(y.max().item<float>(), 1.0f);
      EXPECT_TRUE(torch::allclose(torch::sigmoid(vae->decode_logits(enc.mu)), y));
    }
  }
}

TEST(Vae, UsesTheReferenceArchitectureAtReferenceWidth) {
  // 4 stride-2 convolutions of 64 channels; heads and expansion over the 2x2 (28, 32) or
  // 4x4 (64) last map.
  auto count = [](Vae& v) {
    int64_t n = 0;
    for (auto& p : v.parameters()) n += p.numel();
    return n;
  };
  auto transposed = make_vae(spec_for(1, 32, 32, 10, "transposed", 64));
  const int64_t conv = (1 * 16 + 1) * 64 + 3 * (64 * 16 + 1) * 64;
  const int64_t heads = 2 * (256 * 10 + 10) + (10 * 256 + 256);
  const int64_t deconv = 3 * (64 * 64 * 16 + 64) + (64 * 1 * 16 + 1);
  EXPECT_EQ(count(*transposed), conv + heads + deconv);
}

TEST(Vae, RejectsUnusableSpecs) {
  EXPECT_THROW(make_vae(spec_for(1, 4, 4)), ConfigError);
  EXPECT_THROW(make_vae(spec_for(5, 28, 28)), ConfigError);
  EXPECT_THROW(make_vae(spec_for(1, 28, 28, 0)), ConfigError);
  EXPECT_THROW(make_vae(spec_for(1, 28, 28, 10, "bilinear")), ConfigError);
}

TEST(Vae, CheckpointRoundTripKeepsOutputs) {
  test::TempDir tmp;
  torch::manual_seed(3);
  for (const std::string decoder : {"subpixel", "transposed"}) {
    auto vae = make_vae(spec_for(1, 28, 28, 7, decoder));
    vae->set_training(false);
    auto x = torch::rand({2, 1, 28, 28});
    auto path = tmp.path() / (decoder + ".pt");
    write_atomic_via(path, [&](const std::filesystem::path& t) { vae->save(t); });
    auto loaded = load_vae(path, torch::kCPU);
    loaded->set_training(false);
    EXPECT_EQ(loaded->spec().latent, 7);
    EXPECT_EQ(loaded->spec().decoder, decoder);
    EXPECT_EQ(loaded->spec().filters, 8);
    auto a = vae->encode(x), b = loaded->encode(x);
    EXPECT_TRUE(torch::equal(a.mu, b.mu));
    EXPECT_TRUE(torch::equal(vae->decode(a.mu), loaded->decode(b.mu)));
  }
}

TEST(Vae, LoadingAgainstAnotherShapeOrLatentSizeIsAModelError) {
  test::TempDir tmp;
  auto vae = make_vae(spec_for(1, 28, 28, 10));
  auto path = tmp.path() / "vae.pt";
  vae->save(path);
  EXPECT_NO_THROW(load_vae(path, torch::kCPU, spec_for(1, 28, 28, 10)));
  EXPECT_NO_THROW(load_vae(path, torch::kCPU, spec_for(1, 28, 28, 0)));  // any latent size
  auto shape = test::error_message<ModelError>([&] { load_vae(path, torch::kCPU, spec_for(3, 32, 32, 10)); });
  EXPECT_TRUE(test::contains(shape, "1x28x28")) << shape;
  EXPECT_TRUE(test::contains(shape, "3x32x32")) << shape;
  auto latent = test::error_message<ModelError>([&] { load_vae(path, torch::kCPU, spec_for(1, 28, 28, 16)); });
  EXPECT_TRUE(test::contains(latent, "10 latent dimensions, expected 16")) << latent;

  auto data = test::make_toy_dataset(4, 4, 1, 12, 12, 2);
  EXPECT_THROW(check_vae_fits(*vae, data, "identify"), ModelError);
}

TEST(Vae, UnreadableOrForeignFilesAreModelErrors) {
  test::TempDir tmp;
  EXPECT_THROW(load_vae(tmp.path() / "missing.pt", torch::kCPU), IoError);
  auto junk = tmp.path() / "junk.pt";
  test::write_file(junk, std::string_view("not a checkpoint"));
  EXPECT_THROW(load_vae(junk, torch::kCPU), ModelError);
  // A serialize archive without our metadata (e.g. some other module's weights).
  torch::serialize::OutputArchive archive;
  archive.write("weight", torch::zeros({2}));
  archive.save_to((tmp.path() / "foreign.pt").string());
  auto message = test::error_message<ModelError>([&] { load_vae(tmp.path() / "foreign.pt", torch::kCPU); });
  EXPECT_TRUE(test::contains(message, "not a defuse VAE checkpoint")) << message;
}

TEST(Vae, EncodeMeansAndQuantize) {
  torch::manual_seed(4);
  auto vae = make_vae(spec_for(1, 12, 12, 3));
  auto images = torch::randint(0, 256, {7, 1, 12, 12}, torch::kUInt8);
  auto mu = encode_means(*vae, images, 3);
  EXPECT_EQ(mu.sizes(), (std::vector<int64_t>{7, 3}));
  vae->set_training(false);
  auto direct = vae->encode(images.to(torch::kFloat32).div(255)).mu;
  EXPECT_TRUE(torch::allclose(mu, direct, 1e-5, 1e-6));
  mu.add_(1.0);  // an ordinary tensor, modifiable in place

  auto q = quantize_images(torch::tensor({0.0f, 0.5f / 255, 0.6f / 255, 0.999f, 1.0f}));
  EXPECT_EQ(q.scalar_type(), torch::kUInt8);
  EXPECT_EQ(q[0].item<int>(), 0);
  EXPECT_EQ(q[2].item<int>(), 1);
  EXPECT_EQ(q[4].item<int>(), 255);
}

TEST(VaeStore, CodesRoundTripAndSpread) {
  test::TempDir tmp;
  Workspace workspace(tmp.path() / "ws");
  VaeCodes codes{torch::randn({50, 4}) * torch::tensor({1.0f, 2.0f, 0.5f, 0.0f}), torch::randn({10, 4})};
  auto [name, path] = save_vae_codes(workspace, codes);
  EXPECT_EQ(name, "codes");
  auto back = read_vae_codes(workspace.path(path));
  EXPECT_TRUE(torch::equal(back.train, codes.train));
  EXPECT_TRUE(torch::equal(back.test, codes.test));
  auto spread = back.train_spread();
  EXPECT_EQ(spread.size(0), 4);
  EXPECT_FLOAT_EQ(spread[3].item<float>(), 0.0f);
  EXPECT_GT(spread[1].item<float>(), spread[0].item<float>());
}

}  // namespace
}  // namespace defuse
