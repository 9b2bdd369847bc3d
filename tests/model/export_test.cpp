// export_torchscript: zoo models become TorchScript modules that compute the same logits,
// load back into defuse, and load in Python with torch.jit.load.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "defuse/model/classifier.h"
#include "support/test_support.h"
#include "support/torch_support.h"

namespace defuse {
namespace {

std::unique_ptr<Classifier> trained_like(const std::string& arch, int64_t c, int64_t side) {
  torch::manual_seed(4);
  ClassifierSpec spec;
  spec.arch = arch;
  spec.channels = c;
  spec.height = side;
  spec.width = side;
  spec.num_classes = 5;
  spec.mean.assign(static_cast<size_t>(c), 0.4);
  spec.std.assign(static_cast<size_t>(c), 0.3);
  auto model = make_classifier(spec);
  // A few training steps so that batch-norm running statistics are not the defaults.
  model->set_training(true);
  torch::optim::SGD opt(model->parameters(), 0.01);
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    auto loss = model->forward(torch::rand({8, c, side, side})).pow(2).mean();
    loss.backward();
    opt.step();
  }
  model->set_training(false);
  return model;
}

class ExportZoo : public ::testing::TestWithParam<std::tuple<std::string, int64_t, int64_t>> {};

TEST_P(ExportZoo, SameLogitsAsTheZooModelAndLoadsBack) {
  auto [arch, c, side] = GetParam();
  test::TempDir tmp;
  auto model = trained_like(arch, c, side);
  auto path = tmp.path() / (arch + ".pt");
  export_torchscript(*model, path);

  torch::NoGradGuard guard;
  auto x = torch::rand({6, c, side, side});
  auto expected = model->forward(x);
  auto module = torch::jit::load(path.string());
  auto got = module.forward({x}).toTensor();
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << (got - expected).abs().max().item<float>();
  EXPECT_TRUE(module.hasattr("defuse_zoo"));
  EXPECT_TRUE(test::contains(module.attr("defuse_zoo").toStringRef(), "\"arch\":\"" + arch + "\""));

  // defuse reads it back as a user's TorchScript classifier.
  auto loaded = load_classifier(path, torch::kCPU);
  EXPECT_EQ(loaded->spec().arch, "torchscript");
  EXPECT_TRUE(torch::allclose(loaded->forward(x), expected, 1e-4, 1e-5));
  // Exporting does not change the model or its mode.
  EXPECT_TRUE(torch::allclose(model->forward(x), expected));
}

INSTANTIATE_TEST_SUITE_P(Architectures, ExportZoo,
                         ::testing::Values(std::make_tuple(std::string("cnn"), int64_t{1}, int64_t{28}),
                                           std::make_tuple(std::string("resnet"), int64_t{3}, int64_t{32}),
                                           std::make_tuple(std::string("mlp"), int64_t{1}, int64_t{12})),
                         [](const auto& info) { return std::get<0>(info.param); });

TEST(ExportTorchScript, AUsersModuleIsWrittenAsItself) {
  test::TempDir tmp;
  test::write_torchscript_linear(tmp.path() / "in.pt", 1 * 4 * 4, 3);
  auto model = load_classifier(tmp.path() / "in.pt", torch::kCPU);
  export_torchscript(*model, tmp.path() / "out.pt");
  torch::NoGradGuard guard;
  auto x = torch::rand({2, 1, 4, 4});
  auto again = torch::jit::load((tmp.path() / "out.pt").string());
  EXPECT_TRUE(torch::allclose(again.forward({x}).toTensor(), model->forward(x)));
}

// Python's torch.jit.load reads the exported zoo model and computes the same logits (the
// input is a formula both sides evaluate). Skipped where Debian's python3-torch is absent.
TEST(ExportTorchScript, LoadsInPythonWithTheSameLogits) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch is not installed";
  test::TempDir tmp;
  auto model = trained_like("cnn", 1, 28);
  auto path = tmp.path() / "cnn.pt";
  export_torchscript(*model, path);
  torch::NoGradGuard guard;
  auto x = torch::linspace(0, 1, 2 * 28 * 28).view({2, 1, 28, 28});
  auto expected = model->forward(x);
  auto script = tmp.path() / "load.py";
  std::ofstream(script) << "import sys, torch\n"
                           "m = torch.jit.load(sys.argv[1])\n"
                           "x = torch.linspace(0, 1, 2 * 28 * 28).view(2, 1, 28, 28)\n"
                           "with torch.no_grad():\n"
                           "    print(' '.join('%.6f' % v for v in m(x).flatten().tolist()))\n";
  auto out_file = tmp.path() / "out.txt";
  std::string command = "/usr/bin/python3 " + script.string() + " " + path.string() + " > " + out_file.string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(out_file);
  std::vector<float> values;
  float v;
  while (in >> v) values.push_back(v);
  ASSERT_EQ(values.size(), 10u);
  auto got = torch::tensor(values).view({2, 5});
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << got << expected;
}

}  // namespace
}  // namespace defuse
