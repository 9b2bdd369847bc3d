#include "defuse/identify/identify.h"
#include "defuse/model/device.h"

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include "defuse/base/error.h"
#include "defuse/base/workspace.h"
#include "defuse/identify/failure_store.h"
#include "defuse/model/tensors.h"
#include "defuse/base/sqlite.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

// A TorchScript classifier with a known blind spot: class 1 when the image's mean
// brightness exceeds `threshold`, class 0 otherwise (margins ×1000, so no near-ties).
std::unique_ptr<Classifier> brightness_classifier(const std::filesystem::path& dir, double threshold) {
  std::filesystem::create_directories(dir);
  torch::jit::Module module("Brightness");
  module.register_buffer("t", torch::tensor(static_cast<float>(threshold)));
  module.define(R"(
    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([self.t - m, m - self.t], 1) * 1000.0
  )");
  auto path = dir / fmt::format("brightness-{:.6f}.pt", threshold);
  module.save(path.string());
  return load_classifier(path, torch::kCPU);
}

// A classifier that always answers `label`.
std::unique_ptr<Classifier> constant_classifier(const std::filesystem::path& dir, int64_t label, int64_t classes) {
  torch::jit::Module module("Constant");
  auto logits = torch::zeros({1, classes});
  logits[0][label] = 10.0;
  module.register_buffer("logits", logits);
  module.define(R"(
    def forward(self, x):
        return self.logits.expand(x.size(0), self.logits.size(1))
  )");
  auto path = dir / ("constant_" + std::to_string(label) + ".pt");
  module.save(path.string());
  return load_classifier(path, torch::kCPU);
}

class LatentSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(11);
    vae_ = test::make_tiny_vae();
    // Dark seeds, all label 0; the brightness classifier gets them right.
    images_ = torch::randint(0, 40, {12, 1, 12, 12}, torch::kUInt8);
    labels_ = torch::zeros({12}, torch::kLong);
    spread_ = torch::ones({4});
    // Threshold at the median brightness of decodes of perturbed codes, so that roughly
    // half the perturbations fail.
    torch::NoGradGuard guard;
    vae_->set_training(false);
    auto mu = encode_means(*vae_, images_, 64);
    auto z = mu.repeat({50, 1}) + torch::randn({600, 4}) * 0.5;
    auto brightness = vae_->decode(z).flatten(1).mean(1);
    threshold_ = brightness.median().item<double>();
    judge_threshold_ = brightness.quantile(0.75).item<double>();
  }

  IdentifyOptions options(int64_t q = 30, int64_t m = 3) const {
    IdentifyOptions o;
    o.samples = q;
    o.keep = m;
    o.sigma = 0.5;
    o.max_seeds = 0;
    o.seed = 5;
    o.precision = "fp32";  // "auto" would depend on the CPU the tests run on
    // The untrained tiny VAE's reconstructions are as often bright as not: the tests below
    // are about the search, and ReconstructionControl about this check.
    o.check_reconstruction = false;
    return o;
  }

  // A panel of one judge: the brightness classifier at `threshold`.
  JudgePanel judges(double threshold) const {
    JudgePanel panel;
    panel.add(brightness_classifier(tmp_.path() / "judge", threshold), {"judge-1", "test", "torchscript"});
    return panel;
  }

  test::TempDir tmp_;
  std::unique_ptr<Vae> vae_;
  at::Tensor images_, labels_, spread_;
  double threshold_ = 0.5, judge_threshold_ = 0.6;
};

TEST_F(LatentSearch, KeepsOnlyMisclassifiedDecodesWithProvenance) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto f = search_latent(*vae_, *classifier, images_, labels_, spread_, options());
  ASSERT_GT(f.size(), 0);
  EXPECT_EQ(f.summary.seeds, 12);
  EXPECT_EQ(f.summary.decodes, 12 * 30);
  EXPECT_GT(f.summary.failing_decodes, 12 * 30 / 10);
  EXPECT_LT(f.summary.failing_decodes, 12 * 30 * 9 / 10);
  EXPECT_EQ(f.summary.failures, f.size());
  EXPECT_EQ(f.latent.sizes(), (std::vector<int64_t>{f.size(), 4}));
  EXPECT_EQ(f.images.sizes(), (std::vector<int64_t>{f.size(), 1, 12, 12}));
  EXPECT_EQ(f.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::all(f.predicted.eq(1)).item<bool>());
  EXPECT_TRUE(torch::all(f.seed_label.eq(0)).item<bool>());
  // The probability is the softmax of the prediction (the argmax of two classes: ≥ 0.5).
  EXPECT_TRUE(torch::all(f.probability.ge(0.5)).item<bool>());
  auto probs = torch::softmax(predict_logits(*classifier, f.images, 64, torch::kCPU), 1).select(1, 1);
  EXPECT_TRUE(torch::allclose(probs, f.probability, 1e-4, 1e-5));
  // Every kept image is what the classifier saw: re-classifying it gives the same answer,
  // and decoding its latent code gives the same image.
  auto again = predict_logits(*classifier, f.images, 64, torch::kCPU).argmax(1);
  EXPECT_TRUE(torch::equal(again, f.predicted));
  torch::NoGradGuard guard;
  auto redecoded = quantize_images(vae_->decode(f.latent)).contiguous();
  EXPECT_LE((redecoded.to(torch::kInt) - f.images.to(torch::kInt)).abs().max().item<int>(), 1);
  // latent = μ(seed) + noise.
  auto mu = encode_means(*vae_, images_, 64).index_select(0, f.seed_index);
  EXPECT_TRUE(torch::allclose(f.latent - f.noise, mu, 1e-5, 1e-5));
  // Pair counts.
  ASSERT_EQ(f.summary.pairs.size(), 2u);
  EXPECT_EQ(f.summary.pairs[0][1], f.size());
  EXPECT_EQ(f.summary.pairs[0][0], 0);
}

TEST_F(LatentSearch, KeepsAtMostMPerSeedSmallestPerturbationFirst) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto all = search_latent(*vae_, *classifier, images_, labels_, spread_, options(30, 30));
  auto few = search_latent(*vae_, *classifier, images_, labels_, spread_, options(30, 2));
  EXPECT_EQ(all.summary.failing_decodes, all.size());  // M = Q keeps every failure
  EXPECT_EQ(few.summary.failing_decodes, all.summary.failing_decodes);
  auto all_norm = all.noise.norm(2, 1), few_norm = few.noise.norm(2, 1);
  for (int64_t seed = 0; seed < 12; ++seed) {
    auto in_all = all.seed_index.eq(seed), in_few = few.seed_index.eq(seed);
    const int64_t n_all = in_all.sum().item<int64_t>(), n_few = in_few.sum().item<int64_t>();
    EXPECT_EQ(n_few, std::min<int64_t>(2, n_all)) << "seed " << seed;
    if (n_few == 0) continue;
    auto expected = std::get<0>(all_norm.masked_select(in_all).sort()).slice(0, 0, n_few);
    auto got = few_norm.masked_select(in_few);
    EXPECT_TRUE(torch::allclose(got, expected)) << "seed " << seed;
    // Within a seed, ordered by perturbation size.
    if (n_few == 2) EXPECT_LE(got[0].item<float>(), got[1].item<float>());
  }
  // Ordered by seed.
  EXPECT_TRUE(torch::equal(few.seed_index, std::get<0>(few.seed_index.sort(true, 0, false))));
}

TEST_F(LatentSearch, GaussianNoiseIsZeroMeanAndScaledBySpread) {
  auto classifier = constant_classifier(tmp_.path(), 1, 2);  // every decode fails
  auto o = options(200, 200);
  o.only_correct = false;
  o.sigma = 0.5;
  auto spread = torch::tensor({1.0f, 2.0f, 0.1f, 4.0f});
  auto f = search_latent(*vae_, *classifier, images_, labels_, spread, o);
  ASSERT_EQ(f.size(), 12 * 200);
  auto mean = f.noise.mean(0), sd = f.noise.std(0);
  for (int64_t d = 0; d < 4; ++d) {
    const double want = 0.5 * spread[d].item<double>();
    EXPECT_NEAR(mean[d].item<double>(), 0.0, 4 * want / std::sqrt(2400.0)) << d;
    EXPECT_NEAR(sd[d].item<double>(), want, 0.05 * want) << d;
  }
}

TEST_F(LatentSearch, BetaNoiseIsTheReferencesShiftOfOneHalf) {
  auto classifier = constant_classifier(tmp_.path(), 1, 2);
  auto o = options(200, 200);
  o.only_correct = false;
  o.noise = "beta";
  auto f = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  ASSERT_EQ(f.size(), 12 * 200);
  EXPECT_NEAR(f.noise.mean().item<double>(), 0.5, 0.005);
  // Beta(50, 50): σ = sqrt(ab / ((a + b)² (a + b + 1))) ≈ 0.0498.
  EXPECT_NEAR(f.noise.std().item<double>(), std::sqrt(2500.0 / (10000.0 * 101.0)), 0.003);
  EXPECT_TRUE(torch::all(f.noise.gt(0) & f.noise.lt(1)).item<bool>());
}

TEST_F(LatentSearch, SeedsOnlyFromCorrectlyClassifiedImagesByDefault) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto labels = labels_.clone();
  labels.slice(0, 0, 4).fill_(1);  // the dark seeds 0..3 now claim class 1: misclassified
  auto o = options(20, 20);
  auto f = search_latent(*vae_, *classifier, images_, labels, spread_, o);
  EXPECT_EQ(f.summary.seeds, 8);
  EXPECT_EQ(f.summary.seeds_checked, 12);
  EXPECT_NEAR(f.summary.seed_accuracy, 8.0 / 12.0, 1e-9);
  EXPECT_TRUE(torch::all(f.seed_index.ge(4)).item<bool>());
  o.only_correct = false;
  auto all = search_latent(*vae_, *classifier, images_, labels, spread_, o);
  EXPECT_EQ(all.summary.seeds, 12);
  EXPECT_TRUE(torch::any(all.seed_index.lt(4)).item<bool>());
}

TEST_F(LatentSearch, CapsSeedsAtRandom) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto o = options(10, 10);
  o.max_seeds = 5;
  auto f = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  EXPECT_EQ(f.summary.seeds, 5);
  EXPECT_EQ(f.summary.decodes, 50);
}

TEST_F(LatentSearch, IsDeterministicForASeedAndIndependentOfBatchSize) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto a = search_latent(*vae_, *classifier, images_, labels_, spread_, options());
  auto o = options();
  o.batch_size = 7;
  auto b = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  o.seed = 6;
  auto c = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  EXPECT_TRUE(torch::equal(a.noise, b.noise));
  EXPECT_TRUE(torch::equal(a.seed_index, b.seed_index));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_FALSE(a.noise.sizes() == c.noise.sizes() && torch::equal(a.noise, c.noise));
}

TEST_F(LatentSearch, Bf16ScreeningKeepsOnlyFp32Failures) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto o = options(30, 30);
  o.precision = "fp32";
  auto full = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  o.precision = "bf16";
  auto screened = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  EXPECT_EQ(full.summary.precision, "fp32");
  EXPECT_EQ(screened.summary.precision, "bf16");
  EXPECT_EQ(full.summary.confirmed_decodes, 0);
  EXPECT_GE(screened.summary.confirmed_decodes, screened.summary.failing_decodes);
  // Every kept failure is an fp32 failure, with the fp32 decode and prediction.
  EXPECT_LE(screened.summary.failing_decodes, full.summary.failing_decodes);
  EXPECT_GE(screened.summary.failing_decodes, full.summary.failing_decodes * 9 / 10);
  auto again = predict_logits(*classifier, screened.images, 64, torch::kCPU).argmax(1);
  EXPECT_TRUE(torch::equal(again, screened.predicted));
  torch::NoGradGuard guard;
  auto fp32 = quantize_images(vae_->decode(screened.latent)).contiguous();
  EXPECT_LE((fp32.to(torch::kInt) - screened.images.to(torch::kInt)).abs().max().item<int>(), 1);
  // Same noise, and M = Q keeps every failure: the screened codes are a subset of the fp32 run's.
  if (screened.size() > 0) {
    // Exact distances (cdist's matrix-product shortcut is off by ~1e-3 at these sizes).
    auto d = torch::cdist(screened.latent, full.latent, 2.0, /*compute_mode=*/2);
    auto nearest = std::get<0>(d.min(1));
    EXPECT_LT(nearest.max().item<float>(), 1e-6);
  }
  // A margin wide enough to re-check every decode finds exactly the fp32 failures.
  o.screen_margin = 1e9;
  auto everything = search_latent(*vae_, *classifier, images_, labels_, spread_, o);
  EXPECT_EQ(everything.summary.confirmed_decodes, everything.summary.decodes);
  EXPECT_EQ(everything.summary.failing_decodes, full.summary.failing_decodes);
  EXPECT_TRUE(torch::equal(everything.images, full.images));
  EXPECT_TRUE(torch::equal(everything.predicted, full.predicted));
  o.screen_margin = -1;
  EXPECT_THROW(search_latent(*vae_, *classifier, images_, labels_, spread_, o), ConfigError);
  EXPECT_EQ(resolve_precision("fp32", torch::kCPU), "fp32");
  EXPECT_EQ(resolve_precision("auto", torch::kCPU), cpu_has_fast_bf16() ? "bf16" : "fp32");
}

TEST_F(LatentSearch, BadInputIsAClearError) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto message = [&](auto expect_type, IdentifyOptions o, const at::Tensor& images, const at::Tensor& labels,
                     Classifier& model) {
    using E = decltype(expect_type);
    return test::error_message<E>([&] { search_latent(*vae_, model, images, labels, spread_, o); });
  };
  auto o = options();
  o.samples = 0;
  EXPECT_TRUE(test::contains(message(ConfigError(""), o, images_, labels_, *classifier), "samples"));
  o = options();
  o.keep = -1;
  EXPECT_TRUE(test::contains(message(ConfigError(""), o, images_, labels_, *classifier), "keep"));
  // No correctly classified seeds.
  auto wrong = torch::ones({12}, torch::kLong);
  EXPECT_TRUE(test::contains(message(ModelError(""), options(), images_, wrong, *classifier), "none of the 12"));
  // No seeds at all.
  EXPECT_TRUE(
      test::contains(message(DataError(""), options(), images_.slice(0, 0, 0), labels_.slice(0, 0, 0), *classifier),
                     "no seed images"));
  // Images of another shape than the VAE's.
  auto big = torch::zeros({2, 1, 16, 16}, torch::kUInt8);
  EXPECT_TRUE(test::contains(message(ModelError(""), options(), big, labels_.slice(0, 0, 2), *classifier), "1x12x12"));
  // Labels beyond the classifier's classes.
  auto many = torch::full({12}, 5, torch::kLong);
  EXPECT_TRUE(test::contains(message(ModelError(""), options(), images_, many, *classifier), "2 classes"));
  o = options();
  o.precision = "fp16";
  EXPECT_TRUE(test::contains(message(ConfigError(""), o, images_, labels_, *classifier), "precision"));
  // Spread of another latent size.
  EXPECT_THROW(search_latent(*vae_, *classifier, images_, labels_, torch::ones({3}), options()), StateError);
}

TEST_F(LatentSearch, FailuresRoundTripThroughTheWorkspace) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto f = search_latent(*vae_, *classifier, images_, labels_, spread_, options());
  f.seed_split = "train";
  Workspace workspace(tmp_.path() / "ws");
  auto record = workspace.run_stage(kIdentifyStage, {{"q", 30}}, {}, [&](int64_t run_id) {
    nlohmann::json metrics = {{"seeds", f.summary.seeds}, {"decodes", f.summary.decodes}, {"pairs", f.summary.pairs}};
    return Workspace::StageOutput{metrics, {save_failure_tensors(workspace, f)}, failure_rows_writer(run_id, f)};
  });
  auto back = load_failures(workspace);
  EXPECT_EQ(back.seed_split, "train");
  EXPECT_EQ(back.num_classes, 2);
  EXPECT_EQ(back.summary.decodes, f.summary.decodes);
  for (auto [a, b] : {std::pair{&back.latent, &f.latent},
                      {&back.noise, &f.noise},
                      {&back.images, &f.images},
                      {&back.seed_index, &f.seed_index},
                      {&back.predicted, &f.predicted},
                      {&back.probability, &f.probability},
                      {&back.seed_label, &f.seed_label}})
    EXPECT_TRUE(torch::equal(*a, *b));
  // The catalogue rows carry the same provenance.
  Statement rows = workspace.db().prepare(
      "SELECT idx, seed_index, seed_split, seed_label, predicted_label, probability, noise, latent FROM failures"
      " WHERE run_id = ? ORDER BY idx");
  rows.bind(1, record.id);
  int64_t i = 0;
  while (rows.step()) {
    EXPECT_EQ(rows.column_int(0), i);
    EXPECT_EQ(rows.column_int(1), f.seed_index[i].item<int64_t>());
    EXPECT_EQ(rows.column_text(2), "train");
    EXPECT_EQ(rows.column_int(4), 1);
    EXPECT_NEAR(rows.column_double(5), f.probability[i].item<double>(), 1e-6);
    std::string noise = rows.column_blob(6);
    ASSERT_EQ(noise.size(), 4 * sizeof(float));
    EXPECT_EQ(reinterpret_cast<const float*>(noise.data())[2], f.noise[i][2].item<float>());
    std::string latent = rows.column_blob(7);
    EXPECT_EQ(reinterpret_cast<const float*>(latent.data())[3], f.latent[i][3].item<float>());
    ++i;
  }
  EXPECT_EQ(i, f.size());
}

TEST(ReconstructionControl, SkipsSeedsWhoseReconstructionIsMisread) {
  test::TempDir tmp;
  // Seeds from black to white through the tiny untrained VAE, its weights scaled up so that
  // its reconstructions differ with the input beyond the 8-bit rounding.
  torch::manual_seed(11);
  auto vae = test::make_tiny_vae();
  {
    torch::NoGradGuard guard;
    for (auto& p : vae->parameters()) p.mul_(3.0);
  }
  Dataset data = test::make_toy_dataset(40, 4, 1, 12, 12, 4);
  for (int64_t i = 0; i < 40; ++i)
    std::fill(data.train.images.begin() + i * 144, data.train.images.begin() + (i + 1) * 144,
              static_cast<uint8_t>(i * 6));
  auto seeds = images_tensor(data.train, data).slice(0, 0, 40);
  // A classifier that reads class 1 when the top half of the image is brighter than a
  // threshold between the k-th and (k+1)-th brightest reconstruction, k near 20 where two
  // neighbours differ (some reconstructions round to the same image): it misreads 40 - k of
  // the reconstructions (the seeds' label is 0 for all of them here).
  torch::jit::Module module("TopHalf");
  at::Tensor top;
  {
    torch::NoGradGuard guard;
    top = quantize_images(vae->decode(encode_means(*vae, seeds, 64)))
              .to(torch::kFloat32)
              .div(255)
              .slice(2, 0, 6)
              .flatten(1)
              .mean(1);
  }
  auto sorted = std::get<0>(top.sort());
  int64_t k = 0;
  for (int64_t d = 0; d < 15 && k == 0; ++d)
    for (int64_t c : {20 - d, 20 + d})
      if (k == 0 && sorted[c - 1].item<double>() < sorted[c].item<double>()) k = c;
  ASSERT_GT(k, 0) << "the reconstructions should differ";
  const double threshold = (sorted[k - 1].item<double>() + sorted[k].item<double>()) / 2;
  module.register_buffer("t", torch::tensor(static_cast<float>(threshold)));
  module.define(R"(
    def forward(self, x):
        m = x[:, :, 0:6, :].flatten(1).mean(1, keepdim=True)
        return torch.cat([self.t - m, m - self.t], 1) * 1000.0
  )");
  module.save((tmp.path() / "top.pt").string());
  auto classifier = load_classifier(tmp.path() / "top.pt", torch::kCPU);
  IdentifyOptions o;
  o.samples = 8;
  o.keep = 8;
  o.max_seeds = 0;
  o.precision = "fp32";
  o.only_correct = false;  // the control of the reconstructions alone
  auto f = search_latent(*vae, *classifier, seeds, torch::zeros({40}, torch::kLong), torch::ones({4}), o);
  EXPECT_EQ(f.summary.seeds_bad_reconstruction, 40 - k);
  EXPECT_EQ(f.summary.seeds, k);
  auto misread = top.gt(threshold);
  for (int64_t i = 0; i < f.size(); ++i)
    EXPECT_FALSE(misread[f.seed_index[i].item<int64_t>()].item<bool>()) << "failure " << i;
  o.check_reconstruction = false;
  EXPECT_EQ(
      search_latent(*vae, *classifier, seeds, torch::zeros({40}, torch::kLong), torch::ones({4}), o).summary.seeds, 40);
}

TEST_F(LatentSearch, TheGenuineGateKeepsWhatTheJudgesReadAsTheSeedLabel) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  // The judge is fooled less easily: it reads class 1 only above a higher brightness, the
  // 75th percentile of perturbed decodes. Decodes between the two thresholds are genuine
  // failures (the judge reads the seed's 0), brighter ones label changes (the judge agrees
  // with the classifier's 1).
  const double judge_threshold = judge_threshold_;
  JudgePanel panel = judges(judge_threshold);
  LatentReference reference{encode_means(*vae_, images_, 64), labels_};
  auto o = options(30, 30);
  // The brightness judge's decodes sit close to its threshold: its readings are confident,
  // but not all at the default 0.9.
  o.verdict.min_confidence = 0.5;
  auto none = o;
  none.gate = "none";
  auto all = search_latent(*vae_, *classifier, &panel, images_, labels_, spread_, reference, none);
  auto genuine = search_latent(*vae_, *classifier, &panel, images_, labels_, spread_, reference, o);
  const auto& s = all.summary;
  EXPECT_EQ(s.judges, 1);
  EXPECT_EQ(s.failing_genuine + s.failing_label_change + s.failing_ambiguous, s.failing_decodes);
  ASSERT_GT(s.failing_genuine, 0);
  ASSERT_GT(s.failing_label_change, 0);
  EXPECT_EQ(all.size(), s.failing_decodes) << "M = Q and no gate keeps every failing decode";
  EXPECT_EQ(genuine.summary.gate, "genuine");
  EXPECT_EQ(genuine.size(), s.failing_genuine);
  ASSERT_TRUE(genuine.validity.judged());
  EXPECT_TRUE(torch::all(genuine.validity.verdict.eq(static_cast<int8_t>(Verdict::kGenuine))).item<bool>());
  EXPECT_TRUE(torch::all(genuine.validity.judge_label.eq(0)).item<bool>());
  EXPECT_EQ(genuine.summary.kept_genuine, genuine.size());
  // The kept genuine failures are exactly the decodes between the two thresholds.
  auto brightness = genuine.images.to(torch::kFloat32).div(255).flatten(1).mean(1);
  EXPECT_TRUE(torch::all(brightness.le(judge_threshold + 1e-6)).item<bool>());
  // What the gate left out: label changes, one per seed at most.
  ASSERT_GT(genuine.rejected.size(), 0);
  EXPECT_TRUE(torch::all(genuine.rejected.judge_label.eq(genuine.rejected.predicted)).item<bool>());
  EXPECT_EQ(std::get<0>(at::_unique(genuine.rejected.seed_index)).numel(), genuine.rejected.size());
  // The plausible gate also keeps ambiguous ones: a superset of the genuine ones here.
  auto plausible = o;
  plausible.gate = "plausible";
  auto p = search_latent(*vae_, *classifier, &panel, images_, labels_, spread_, reference, plausible);
  EXPECT_EQ(p.size(), s.failing_genuine + s.failing_ambiguous);
}

TEST_F(LatentSearch, ValiditySignalsComeWithEveryKeptFailure) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  JudgePanel panel = judges(judge_threshold_);
  // Reference codes: the seeds' own, half labelled 0 and half 1.
  auto codes = encode_means(*vae_, images_, 64);
  auto ref_labels = torch::arange(12, torch::kLong).remainder(2);
  LatentReference reference{codes, ref_labels};
  auto o = options();
  o.gate = "none";
  o.neighbours = 4;
  o.realism_reference = 12;
  auto f = search_latent(*vae_, *classifier, &panel, images_, labels_, spread_, reference, o);
  ASSERT_GT(f.size(), 0);
  const auto& v = f.validity;
  ASSERT_TRUE(v.has_neighbours());
  for (const at::Tensor* t : {&v.knn_label, &v.knn_seed_share, &v.knn_predicted_share, &v.realism, &v.judge_label,
                              &v.judge_agreement, &v.judge_confidence, &v.verdict})
    EXPECT_EQ(t->size(0), f.size());
  EXPECT_TRUE(torch::all(v.realism.ge(0).logical_and(v.realism.le(1))).item<bool>());
  // Seed label 0 and prediction 1 are the only reference labels: their shares add up to one.
  EXPECT_TRUE(torch::allclose(v.knn_seed_share + v.knn_predicted_share, torch::ones({f.size()})));
  // The nearest code of a failure with a tiny perturbation is its own seed's, and its
  // re-encoding error matches the seeds' own, so realism is high.
  auto o_small = o;
  o_small.sigma = 1e-4;
  auto near =
      search_latent(*vae_, *constant_classifier(tmp_.path(), 1, 2), &panel, images_, labels_, spread_, reference, [&] {
        auto x = o_small;
        x.only_correct = false;
        return x;
      }());
  ASSERT_GT(near.size(), 0);
  EXPECT_GT(near.validity.realism.mean().item<double>(), 0.3);
  // They round-trip through the failures file.
  Workspace workspace(tmp_.path() / "ws-validity");
  f.seed_split = "train";
  workspace.run_stage(kIdentifyStage, {{"q", 1}}, {}, [&](int64_t run_id) {
    return Workspace::StageOutput{
        {{"seeds", 12}}, {save_failure_tensors(workspace, f)}, failure_rows_writer(run_id, f)};
  });
  auto back = load_failures(workspace);
  EXPECT_TRUE(torch::equal(back.validity.verdict, v.verdict));
  EXPECT_TRUE(torch::equal(back.validity.knn_label, v.knn_label));
  EXPECT_TRUE(torch::allclose(back.validity.realism, v.realism));
  Statement rows = workspace.db().prepare("SELECT COUNT(*), SUM(verdict IS NOT NULL) FROM failure_validity");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_int(0), f.size());
  EXPECT_EQ(rows.column_int(1), f.size());
}

TEST_F(LatentSearch, AGateWithoutJudgesIsAConfigErrorAndAutoFallsBackToNone) {
  auto classifier = brightness_classifier(tmp_.path(), threshold_);
  auto o = options();
  o.gate = "genuine";
  JudgePanel empty;
  auto message = test::error_message<ConfigError>(
      [&] { search_latent(*vae_, *classifier, &empty, images_, labels_, spread_, LatentReference{}, o); });
  EXPECT_TRUE(test::contains(message, "train-judges")) << message;
  o.gate = "auto";
  auto f = search_latent(*vae_, *classifier, &empty, images_, labels_, spread_, LatentReference{}, o);
  EXPECT_EQ(f.summary.gate, "none");
  EXPECT_FALSE(f.validity.judged());
  o.gate = "everything";
  EXPECT_THROW(o.validate(), ConfigError);
}

TEST_F(LatentSearch, LoadingWithoutAnIdentifyStageIsAStateError) {
  Workspace workspace(tmp_.path() / "ws");
  auto message = test::error_message<StateError>([&] { load_failures(workspace); });
  EXPECT_TRUE(test::contains(message, "defuse identify")) << message;
}

}  // namespace
}  // namespace defuse
