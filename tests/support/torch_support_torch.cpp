#include "support/torch_support.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "defuse/model/vae.h"

namespace defuse::test {

void write_torchscript_linear(const std::filesystem::path& path, int64_t in_features, int64_t classes) {
  torch::jit::Module module("UserClassifier");
  module.register_parameter("weight", torch::randn({classes, in_features}) * 0.01, false);
  module.register_parameter("bias", torch::zeros({classes}), false);
  module.define(R"(
    def forward(self, x):
        return torch.addmm(self.bias, x.flatten(1), self.weight.t())
  )");
  module.save(path.string());
}

void write_torchscript_constant(const std::filesystem::path& path, const std::vector<float>& logits) {
  torch::jit::Module module("Constant");
  module.register_buffer("logits", torch::tensor(logits).view({1, -1}));
  module.define(R"(
    def forward(self, x):
        return self.logits.expand(x.size(0), self.logits.size(1))
  )");
  module.save(path.string());
}

std::unique_ptr<Vae> make_tiny_vae(int64_t side, int64_t latent, int64_t filters) {
  VaeSpec spec;
  spec.channels = 1;
  spec.height = side;
  spec.width = side;
  spec.latent = latent;
  spec.filters = filters;
  return make_vae(spec);
}

bool same_parameters(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

bool any_parameter_differs(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return true;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return true;
  return false;
}

}  // namespace defuse::test
