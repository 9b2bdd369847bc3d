#include "defuse/model/classifier.h"

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "defuse/base/error.h"
#include "defuse/data/dataset.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

ClassifierSpec spec_for(const std::string& arch, int64_t c, int64_t h, int64_t w, int64_t k) {
  ClassifierSpec s;
  s.arch = arch;
  s.channels = c;
  s.height = h;
  s.width = w;
  s.num_classes = k;
  return s;
}

TEST(ClassifierZoo, EveryArchitectureMapsImagesToLogits) {
  torch::manual_seed(0);
  for (const auto& arch : zoo_architectures()) {
    for (auto [c, h, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 28, 28}, {3, 32, 32}}) {
      auto model = make_classifier(spec_for(arch, c, h, w, 7));
      model->set_training(false);
      auto logits = model->forward(torch::rand({3, c, h, w}));
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 7})) << arch << " " << c << "x" << h << "x" << w;
    }
  }
}

TEST(ClassifierZoo, AutoPicksTheCnnForGreyAndColour) {
  EXPECT_EQ(auto_architecture(1, 28, 28), "cnn");
  EXPECT_EQ(auto_architecture(3, 32, 32), "cnn");
  EXPECT_EQ(make_classifier(spec_for("auto", 3, 32, 32, 10))->spec().arch, "cnn");
  EXPECT_EQ(make_classifier(spec_for("resnet", 3, 32, 32, 10))->spec().arch, "resnet");
}

TEST(ClassifierZoo, RejectsUnknownArchitectureAndBadShapes) {
  EXPECT_THROW(make_classifier(spec_for("vgg", 1, 28, 28, 10)), ConfigError);
  EXPECT_THROW(make_classifier(spec_for("cnn", 1, 28, 28, 1)), ConfigError);
  EXPECT_THROW(make_classifier(spec_for("cnn", 1, 2, 2, 10)), ConfigError);
}

TEST(ClassifierZoo, CheckpointRoundTripKeepsOutputsAndNormalisation) {
  test::TempDir tmp;
  torch::manual_seed(1);
  auto spec = spec_for("cnn", 1, 28, 28, 10);
  spec.mean = {0.13};
  spec.std = {0.31};
  auto model = make_classifier(spec);
  model->set_training(false);
  auto x = torch::rand({4, 1, 28, 28});
  auto before = model->forward(x);
  model->save(tmp.path() / "m.pt");
  auto loaded = load_classifier(tmp.path() / "m.pt", torch::kCPU);
  loaded->set_training(false);
  EXPECT_EQ(loaded->spec().arch, "cnn");
  EXPECT_EQ(loaded->spec().mean, spec.mean);
  EXPECT_TRUE(torch::allclose(before, loaded->forward(x)));
}

TEST(ClassifierZoo, CloneIsEqualAndIndependent) {
  torch::manual_seed(2);
  auto model = make_classifier(spec_for("mlp", 1, 8, 8, 3));
  model->set_training(false);
  auto copy = model->clone();
  copy->set_training(false);
  auto x = torch::rand({2, 1, 8, 8});
  EXPECT_TRUE(torch::equal(model->forward(x), copy->forward(x)));
  {
    torch::NoGradGuard guard;
    for (auto& p : copy->parameters()) p.add_(1.0);
  }
  EXPECT_FALSE(torch::equal(model->forward(x), copy->forward(x)));
}

TEST(ClassifierLoad, GarbageFileIsAModelError) {
  test::TempDir tmp;
  std::ofstream(tmp.path() / "bad.pt") << "this is not a model";
  EXPECT_THROW(load_classifier(tmp.path() / "bad.pt", torch::kCPU), ModelError);
  EXPECT_THROW(load_classifier(tmp.path() / "missing.pt", torch::kCPU), IoError);
}

TEST(ClassifierLoad, TorchScriptModelIsValidatedAgainstTheDataset) {
  test::TempDir tmp;
  auto path = tmp.path() / "scripted.pt";
  test::write_torchscript_linear(path, 1 * 8 * 8, 4);
  auto model = load_classifier(path, torch::kCPU);
  EXPECT_EQ(model->spec().arch, "torchscript");

  Dataset four = test::make_toy_dataset(16, 8, 1, 8, 8, 4);
  validate_classifier(*model, four, "scripted.pt");
  EXPECT_EQ(model->spec().num_classes, 4);

  Dataset ten = test::make_toy_dataset(16, 8, 1, 8, 8, 10);
  try {
    validate_classifier(*model, ten, "scripted.pt");
    FAIL() << "expected ModelError";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("outputs 4 logits but the dataset has 10 classes"), std::string::npos)
        << e.what();
  }
  Dataset other_shape = test::make_toy_dataset(16, 8, 3, 8, 8, 4);
  EXPECT_THROW(validate_classifier(*model, other_shape, "scripted.pt"), ModelError);
}

TEST(ClassifierLoad, ZooModelWithOtherShapeOrClassesIsRejected) {
  auto model = make_classifier(spec_for("mlp", 1, 8, 8, 4));
  EXPECT_THROW(validate_classifier(*model, test::make_toy_dataset(8, 4, 1, 8, 8, 5), "m"), ModelError);
  EXPECT_THROW(validate_classifier(*model, test::make_toy_dataset(8, 4, 1, 9, 8, 4), "m"), ModelError);
  EXPECT_NO_THROW(validate_classifier(*model, test::make_toy_dataset(8, 4, 1, 8, 8, 4), "m"));
}

TEST(ClassifierPredict, BatchesGiveTheSameLogitsAsOneForward) {
  torch::manual_seed(3);
  auto model = make_classifier(spec_for("cnn", 1, 8, 8, 3));
  auto images = torch::randint(0, 256, {10, 1, 8, 8}, torch::kUInt8);
  auto a = predict_logits(*model, images, 3, torch::kCPU);
  auto b = predict_logits(*model, images, 100, torch::kCPU);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{10, 3}));
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-5));
}

}  // namespace
}  // namespace defuse
