#include "defuse/distill/distill.h"

#include <algorithm>
#include <chrono>
#include <map>

#include <fmt/format.h>

#include "defuse/annotate/scenario_store.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/image_io.h"
#include "defuse/base/workspace.h"
#include "defuse/model/tensors.h"
#include "defuse/distill/dpgmm.h"
#include "defuse/identify/identify.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/vae.h"

namespace defuse {

namespace {

constexpr const char* kStage = "distill";

// The component's covariance as a full [Z, Z] matrix, whatever the covariance type.
at::Tensor full_covariance(const DpgmmModel& m, int64_t k) {
  const int64_t d = m.dims;
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  switch (m.covariance_type) {
    case CovarianceType::kFull:
      return torch::from_blob(const_cast<double*>(m.covariances.data() + k * d * d), {d, d}, opts).clone();
    case CovarianceType::kDiag:
      return torch::diag(torch::from_blob(const_cast<double*>(m.covariances.data() + k * d), {d}, opts).clone());
    case CovarianceType::kSpherical:
      return torch::eye(d, opts) * m.covariances[static_cast<size_t>(k)];
    case CovarianceType::kTied:
      return torch::from_blob(const_cast<double*>(m.covariances.data()), {d, d}, opts).clone();
  }
  return {};
}

// The most common value of `values` and its share.
std::pair<int64_t, double> dominant(const std::vector<int64_t>& values) {
  std::map<int64_t, int64_t> counts;
  for (auto v : values) ++counts[v];
  int64_t best = -1, best_count = 0;
  for (auto [v, c] : counts)
    if (c > best_count) best = v, best_count = c;
  return {best, values.empty() ? 0.0 : static_cast<double>(best_count) / static_cast<double>(values.size())};
}

}  // namespace

void DistillOptions::validate() const {
  check_option(components >= 1, kStage, "--components must be at least 1");
  check_option(min_weight >= 0 && min_weight < 1, kStage, "--min-weight must be in [0, 1)");
  check_option(tau > 0, kStage, "--tau must be positive");
  check_option(samples >= 1, kStage, "--samples must be at least 1");
  check_option(shown >= 0, kStage, "--shown must be non-negative");
  check_option(neighbours >= 0, kStage, "--neighbours must be non-negative");
  check_option(min_failure_rate >= 0 && min_failure_rate <= 1, kStage, "--min-failure-rate must be in [0, 1]");
  check_option(batch_size >= 1, kStage, "--batch-size must be positive");
  check_option(max_iter >= 1, kStage, "--max-iter must be positive");
  check_option(concentration >= 0, kStage, "--concentration must be non-negative (0 = 1/K)");
}

DistillResult distill_scenarios(Vae& vae, Classifier& classifier, const FailureSet& failures,
                                const at::Tensor& train_codes, const at::Tensor& train_images,
                                const at::Tensor& train_labels, const DistillOptions& options) {
  options.validate();
  auto start = std::chrono::steady_clock::now();
  const int64_t f = failures.size();
  if (f == 0)
    throw DataError(std::string(kStage) + ": identification kept no failures, so there is nothing to distil; "
                    "run identify with more seeds or a larger noise");
  const int64_t z = failures.latent.size(1);
  if (train_codes.dim() != 2 || train_codes.size(1) != z)
    throw StateError(std::string(kStage) + ": the training codes have " + std::to_string(train_codes.size(-1)) +
                     " dimensions but the failures' latent codes have " + std::to_string(z) +
                     ": run train-vae and identify again");
  auto device = parse_device(options.device, kStage);

  // 1. The mixture on all failure codes (float64, as the reference and for parity).
  auto points = failures.latent.to(torch::kFloat64).contiguous();
  DpgmmOptions dp;
  dp.components = options.components;
  dp.covariance_type = parse_covariance_type(options.covariance);
  if (options.concentration > 0) dp.weight_concentration_prior = options.concentration;
  dp.max_iter = options.max_iter;
  dp.tol = options.tol;
  dp.reg_covar = options.reg_covar;
  dp.n_init = options.n_init;
  dp.seed = options.seed;
  dp.threads = at::get_num_threads();
  if (options.on_iteration) dp.on_iteration = [&](const DpgmmIteration& it) { options.on_iteration(it.iteration, it.lower_bound); };
  DpgmmResult fit = fit_dpgmm(points.data_ptr<double>(), f, z, dp);

  DistillResult out;
  out.failures = f;
  out.iterations = fit.iterations;
  out.converged = fit.converged;
  out.lower_bound = fit.lower_bound;
  out.lower_bounds = fit.lower_bounds;
  out.assignments = fit.labels;
  out.components_used = fit.model.components_used(0.01);
  out.fit_seconds = fit.seconds;

  // Members of each component: their seed labels and predictions.
  const int64_t k_total = fit.model.components;
  std::vector<std::vector<int64_t>> member_seed(static_cast<size_t>(k_total)), member_pred(static_cast<size_t>(k_total));
  auto seed_label = failures.seed_label.contiguous();
  auto predicted = failures.predicted.contiguous();
  for (int64_t i = 0; i < f; ++i) {
    auto c = static_cast<size_t>(fit.labels[static_cast<size_t>(i)]);
    member_seed[c].push_back(seed_label.data_ptr<int64_t>()[i]);
    member_pred[c].push_back(predicted.data_ptr<int64_t>()[i]);
  }

  auto gen = at::detail::createCPUGenerator(options.seed + 17);
  torch::NoGradGuard no_grad;
  vae.set_training(false);
  classifier.set_training(false);
  auto codes = train_codes.to(torch::kFloat32);
  for (int64_t k = 0; k < k_total; ++k) {
    const double weight = fit.model.weights[static_cast<size_t>(k)];
    if (weight <= options.min_weight) continue;
    ++out.candidates;
    DistilledScenario s;
    s.component = k;
    s.weight = weight;
    s.members = static_cast<int64_t>(member_seed[static_cast<size_t>(k)].size());
    // A component can hold weight from the prior alone with (almost) no members; its
    // labels then come from the failures nearest to its mean.
    std::tie(s.seed_label, s.seed_label_share) = dominant(member_seed[static_cast<size_t>(k)]);
    std::tie(s.predicted_label, s.predicted_share) = dominant(member_pred[static_cast<size_t>(k)]);
    s.mean = torch::from_blob(fit.model.means.data() + k * z, {z}, torch::kFloat64).to(torch::kFloat32).clone();
    auto cov = full_covariance(fit.model, k);
    s.covariance = cov.to(torch::kFloat32);
    if (s.members == 0) {
      auto nearest = (failures.latent - s.mean).pow(2).sum(1).argmin().item<int64_t>();
      s.seed_label = seed_label.data_ptr<int64_t>()[nearest];
      s.predicted_label = predicted.data_ptr<int64_t>()[nearest];
    }

    // 3. Fresh samples from N(mean, τ·cov): decode, classify.
    auto chol = torch::linalg_cholesky(cov * options.tau + torch::eye(z, torch::kFloat64) * 1e-12);
    auto eps = torch::randn({options.samples, z}, gen, torch::kFloat64);
    auto sample_codes = (s.mean.to(torch::kFloat64) + eps.matmul(chol.t())).to(torch::kFloat32);
    std::vector<at::Tensor> images, preds;
    for (int64_t b = 0; b < options.samples; b += options.batch_size) {
      auto zc = sample_codes.slice(0, b, std::min(options.samples, b + options.batch_size)).to(device);
      auto decoded = quantize_images(vae.decode(zc));  // what a stored image would be
      auto logits = classifier.forward(decoded.to(torch::kFloat32).div_(255.0f).contiguous(at::MemoryFormat::ChannelsLast));
      images.push_back(decoded.to(torch::kCPU));
      preds.push_back(logits.argmax(1).to(torch::kCPU));
    }
    auto all_images = torch::cat(images), all_preds = torch::cat(preds);
    s.failure_rate = all_preds.ne(s.seed_label).to(torch::kFloat64).mean().item<double>();
    const int64_t shown = std::min(options.shown, options.samples);
    s.sample_images = all_images.slice(0, 0, shown).contiguous();
    s.sample_predicted = all_preds.slice(0, 0, shown).contiguous();

    // 4. Nearest real training images in latent space, and the classifier on them.
    const int64_t kn = std::min(options.neighbours, codes.size(0));
    if (kn > 0) {
      auto dist = (codes - s.mean).pow(2).sum(1);
      auto nearest = std::get<1>(dist.topk(kn, 0, /*largest=*/false, /*sorted=*/true));
      s.neighbour_index = nearest;
      s.neighbour_label = train_labels.index_select(0, nearest);
      auto logits = predict_logits(classifier, train_images.index_select(0, nearest), options.batch_size, device);
      s.neighbour_predicted = logits.argmax(1);
      s.neighbour_accuracy = s.neighbour_predicted.eq(s.neighbour_label).to(torch::kFloat64).mean().item<double>();
    }
    s.score = s.failure_rate * s.weight;
    if (s.failure_rate >= options.min_failure_rate) out.scenarios.push_back(std::move(s));
  }
  // 5. Rank: failure rate × mass, ties broken by component index (deterministic).
  std::stable_sort(out.scenarios.begin(), out.scenarios.end(), [](const DistilledScenario& a, const DistilledScenario& b) {
    return a.score > b.score;
  });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

ScenarioSet save_scenario_thumbnails(Workspace& workspace, int64_t run_id, const DistillResult& result,
                                     const at::Tensor& train_images, const std::vector<std::string>& class_names) {
  ScenarioSet set;
  set.run_id = run_id;
  set.class_names = class_names;
  const std::string dir = fmt::format("{}/run-{}", kScenarioImageDir, run_id);
  auto write = [&](const std::string& relative, const at::Tensor& chw) {
    write_file_atomic(workspace.path(relative), [&] {
      auto png = encode_png(tensor_to_image(chw));
      return std::string(png.begin(), png.end());
    }());
  };
  int64_t id = 0;
  for (const auto& s : result.scenarios) {
    Scenario out;
    out.id = ++id;
    out.component = s.component;
    out.weight = s.weight;
    out.failure_rate = s.failure_rate;
    out.seed_label = s.seed_label;
    out.seed_label_share = s.seed_label_share;
    out.predicted_label = s.predicted_label;
    out.predicted_share = s.predicted_share;
    out.members = s.members;
    out.neighbour_accuracy = s.neighbour_accuracy;
    out.score = s.score;
    auto mean = s.mean.contiguous();
    auto cov = s.covariance.contiguous();
    out.mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
    out.covariance.assign(cov.data_ptr<float>(), cov.data_ptr<float>() + cov.numel());
    for (size_t f = 0; f < result.assignments.size(); ++f)
      if (result.assignments[f] == s.component) out.member_failures.push_back(static_cast<int64_t>(f));
    for (int64_t i = 0; i < s.sample_images.size(0); ++i) {
      std::string path = fmt::format("{}/s{:02d}-sample-{:02d}.png", dir, out.id, i);
      write(path, s.sample_images[i]);
      out.samples.push_back({path, s.sample_predicted[i].item<int64_t>(), -1});
    }
    if (s.neighbour_index.defined()) {
      for (int64_t i = 0; i < s.neighbour_index.size(0); ++i) {
        std::string path = fmt::format("{}/s{:02d}-neighbour-{:02d}.png", dir, out.id, i);
        write(path, train_images[s.neighbour_index[i].item<int64_t>()]);
        out.neighbours.push_back({path, s.neighbour_predicted[i].item<int64_t>(), s.neighbour_label[i].item<int64_t>()});
      }
    }
    set.scenarios.push_back(std::move(out));
  }
  return set;
}

}  // namespace defuse
