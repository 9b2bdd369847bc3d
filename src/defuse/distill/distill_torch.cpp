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
#include "defuse/judge/judges.h"
#include "defuse/model/generate.h"
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

// Rank order of the verdicts: genuine scenarios first, label changes ("the classifier is
// right here") last.
int verdict_rank(const ScenarioValidity& v) {
  if (!v.known() || v.genuine()) return 0;
  return v.verdict == "ambiguous" ? 1 : 2;
}

// The most common value of `values` (non-negative) and its share; (-1, -1) when empty.
std::pair<int64_t, double> mode_and_share(const at::Tensor& values) {
  if (values.numel() == 0) return {-1, -1.0};
  auto counts = torch::bincount(values.to(torch::kLong).clamp_min(0));
  const int64_t best = counts.argmax().item<int64_t>();
  return {best, counts[best].item<double>() / static_cast<double>(values.numel())};
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
  check_option(show_tau > 0 && std::isfinite(show_tau), kStage, "--show-tau must be a positive number");
  check_option(points == "seeds" || points == "failures", kStage,
               "unknown --points '" + points + "' (expected seeds or failures)");
  check_option(min_seeds >= 1, kStage, "--min-seeds must be at least 1");
  verdict.validate(kStage);
}

DistillResult distill_scenarios(Vae& vae, Classifier& classifier, const FailureSet& failures,
                                const at::Tensor& train_codes, const at::Tensor& train_images,
                                const at::Tensor& train_labels, const DistillOptions& options, JudgePanel* judges) {
  options.validate();
  auto start = std::chrono::steady_clock::now();
  const int64_t f = failures.size();
  if (f == 0) {
    // With a validity gate, no genuine failure is an answer: no scenarios.
    DistillResult none;
    none.converged = true;
    none.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return none;
  }
  const int64_t z = failures.latent.size(1);
  if (train_codes.dim() != 2 || train_codes.size(1) != z)
    throw StateError(std::string(kStage) + ": the training codes have " + std::to_string(train_codes.size(-1)) +
                     " dimensions but the failures' latent codes have " + std::to_string(z) +
                     ": run train-vae and identify again");
  auto device = parse_device(options.device, kStage);

  // 1. The mixture (float64, as the reference and for parity), on every failure code, or on
  // one point per seed (the mean code of its kept failures): the M failures kept around one
  // seed lie close together, and clustered one by one they make a "scenario" of every seed
  // that has failures; one point per seed makes a scenario a failure shared by several
  // images (docs/benchmarks.md, "Validity").
  at::Tensor points;
  std::vector<int64_t> point_of(static_cast<size_t>(f));  // failure -> row of `points`
  const bool per_seed = options.points == "seeds";
  if (per_seed) {
    auto [unique, inverse] = at::_unique(failures.seed_index, /*sorted=*/true, /*return_inverse=*/true);
    const int64_t n = unique.size(0);
    auto sums = torch::zeros({n, z}, torch::kFloat64).index_add_(0, inverse, failures.latent.to(torch::kFloat64));
    auto counts = torch::zeros({n}, torch::kFloat64).index_add_(0, inverse, torch::ones({f}, torch::kFloat64));
    points = (sums / counts.unsqueeze(1)).contiguous();
    auto inv = inverse.contiguous();
    for (int64_t i = 0; i < f; ++i) point_of[static_cast<size_t>(i)] = inv.data_ptr<int64_t>()[i];
  } else {
    points = failures.latent.to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < f; ++i) point_of[static_cast<size_t>(i)] = i;
  }
  DpgmmOptions dp;
  dp.components = distill_truncation(options.components, points.size(0), options.min_seeds);
  dp.covariance_type = parse_covariance_type(options.covariance);
  if (options.concentration > 0) dp.weight_concentration_prior = options.concentration;
  dp.max_iter = options.max_iter;
  dp.tol = options.tol;
  dp.reg_covar = options.reg_covar;
  dp.n_init = options.n_init;
  dp.seed = options.seed;
  dp.threads = at::get_num_threads();
  if (options.on_iteration)
    dp.on_iteration = [&](const DpgmmIteration& it) { options.on_iteration(it.iteration, it.lower_bound); };
  DpgmmResult fit = fit_dpgmm(points.data_ptr<double>(), points.size(0), z, dp);

  DistillResult out;
  out.failures = f;
  out.iterations = fit.iterations;
  out.converged = fit.converged;
  out.lower_bound = fit.lower_bound;
  out.lower_bounds = fit.lower_bounds;
  out.assignments.resize(static_cast<size_t>(f));
  for (int64_t i = 0; i < f; ++i)
    out.assignments[static_cast<size_t>(i)] = fit.labels[static_cast<size_t>(point_of[static_cast<size_t>(i)])];
  out.points = points.size(0);
  out.truncation = dp.components;
  out.components_used = fit.model.components_used(0.01);
  out.fit_seconds = fit.seconds;

  // Members of each component: their rows, seed labels and predictions.
  const int64_t k_total = fit.model.components;
  std::vector<std::vector<int64_t>> member_seed(static_cast<size_t>(k_total)),
      member_pred(static_cast<size_t>(k_total));
  std::vector<std::vector<int64_t>> member_rows(static_cast<size_t>(k_total));
  const FailureValidity& fv = failures.validity;
  const bool judged = judges && !judges->empty();
  auto seed_label = failures.seed_label.contiguous();
  auto predicted = failures.predicted.contiguous();
  for (int64_t i = 0; i < f; ++i) {
    auto c = static_cast<size_t>(out.assignments[static_cast<size_t>(i)]);
    member_seed[c].push_back(seed_label.data_ptr<int64_t>()[i]);
    member_pred[c].push_back(predicted.data_ptr<int64_t>()[i]);
    member_rows[c].push_back(i);
  }

  auto gen = at::detail::createCPUGenerator(options.seed + 17);
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
    {
      const auto& rows_k = member_rows[static_cast<size_t>(k)];
      s.seeds = rows_k.empty()
                    ? 0
                    : std::get<0>(at::_unique(failures.seed_index.index_select(0, torch::tensor(rows_k, torch::kLong))))
                          .numel();
    }
    if (s.seeds < options.min_seeds) {
      ++out.single_seed;
      continue;
    }
    // A component can hold weight from the prior alone with (almost) no members; its
    // labels then come from the failures nearest to its mean.
    std::tie(s.seed_label, s.seed_label_share) = dominant(member_seed[static_cast<size_t>(k)]);
    std::tie(s.predicted_label, s.predicted_share) = dominant(member_pred[static_cast<size_t>(k)]);
    s.mean = torch::from_blob(fit.model.means.data() + k * z, {z}, torch::kFloat64).to(torch::kFloat32).clone();
    const auto cov = full_covariance(fit.model, k);  // float64
    s.covariance = cov.to(torch::kFloat32);
    if (s.members == 0) {
      auto nearest = (failures.latent - s.mean).pow(2).sum(1).argmin().item<int64_t>();
      s.seed_label = seed_label.data_ptr<int64_t>()[nearest];
      s.predicted_label = predicted.data_ptr<int64_t>()[nearest];
    }

    // 3. Fresh samples from N(mean, τ·cov): decode, classify.
    DecodeOptions d;
    d.batch_size = options.batch_size;
    auto tau_draws = decode_and_classify(vae, &classifier,
                                         scenario_codes(s.mean, cov, options.tau, options.samples, gen), device, d);
    s.failure_rate = tau_draws.predicted.ne(s.seed_label).to(torch::kFloat64).mean().item<double>();
    // Draws at the scenario's own spread (show_tau): what annotators see, read by the judges.
    auto own = decode_and_classify(vae, &classifier,
                                   scenario_codes(s.mean, cov, options.show_tau, options.samples, gen), device, d);
    const int64_t shown = std::min(options.shown, options.samples);
    s.sample_images = own.images.slice(0, 0, shown).contiguous();
    s.sample_predicted = own.predicted.slice(0, 0, shown).contiguous();
    s.sample_judge = torch::full({shown}, -1, torch::kLong);

    // 4. Its members' validity (DESIGN §3, "Validity") and a few members to show.
    const auto& members = member_rows[static_cast<size_t>(k)];
    auto rows = torch::tensor(members, torch::kLong);
    ScenarioValidity& v = s.validity;
    if (!members.empty()) {
      s.member_rows = rows.slice(0, 0, std::min<int64_t>(shown, rows.size(0)));
      if (fv.has_neighbours()) {
        std::tie(v.knn_label, std::ignore) = mode_and_share(fv.knn_label.index_select(0, rows));
        v.knn_seed_share = fv.knn_seed_share.index_select(0, rows).mean().item<double>();
        v.knn_predicted_share = fv.knn_predicted_share.index_select(0, rows).mean().item<double>();
        v.realism = fv.realism.index_select(0, rows).median().item<double>();
      }
    } else {
      s.member_rows = torch::empty({0}, torch::kLong);
    }
    if (judged && fv.judged()) {
      v.judges = judges->size();
      if (!members.empty()) {
        auto verdicts = fv.verdict.index_select(0, rows);
        const auto m = static_cast<double>(members.size());
        v.genuine_share = verdicts.eq(static_cast<int8_t>(Verdict::kGenuine)).sum().item<double>() / m;
        v.label_change_share = verdicts.eq(static_cast<int8_t>(Verdict::kLabelChange)).sum().item<double>() / m;
        v.ambiguous_share = verdicts.eq(static_cast<int8_t>(Verdict::kAmbiguous)).sum().item<double>() / m;
        std::tie(v.judge_label, v.judge_agreement) = mode_and_share(fv.judge_label.index_select(0, rows));
      } else {
        v.genuine_share = v.label_change_share = 0;
        v.ambiguous_share = 1;
      }
      v.verdict = v.genuine_share >= 0.5 ? "genuine" : v.label_change_share >= 0.5 ? "label-change" : "ambiguous";
      auto reading = judges->read(own.images, device);
      auto sure = confident(reading, options.verdict);
      v.draw_genuine_rate = sure.logical_and(reading.label.eq(s.seed_label))
                                .logical_and(own.predicted.ne(s.seed_label))
                                .to(torch::kFloat64)
                                .mean()
                                .item<double>();
      s.sample_judge = reading.label.slice(0, 0, shown).contiguous();
    }

    // 5. Nearest real training images in latent space, and the classifier on them.
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
    // Genuine failure mass: without judges, every member counts.
    s.score = s.failure_rate * s.weight * (v.known() ? v.genuine_share : 1.0);
    if (s.failure_rate >= options.min_failure_rate) out.scenarios.push_back(std::move(s));
  }
  // 6. Rank: genuine, then ambiguous, then label changes; each by genuine failure mass; ties
  // broken by component index (deterministic: the sort is stable over component order).
  std::stable_sort(out.scenarios.begin(), out.scenarios.end(),
                   [](const DistilledScenario& a, const DistilledScenario& b) {
                     const int ra = verdict_rank(a.validity), rb = verdict_rank(b.validity);
                     if (ra != rb) return ra < rb;
                     return a.score > b.score;
                   });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

int64_t distill_truncation(int64_t components, int64_t points, int64_t min_seeds) {
  return std::max<int64_t>(1, std::min(components, points / std::max<int64_t>(1, min_seeds)));
}

double scenario_tau(const StageRecord& distill) {
  for (const char* key : {"show_tau", "tau"}) {
    auto it = distill.options.find(key);
    if (it != distill.options.end() && it->is_number() && it->get<double>() > 0) return it->get<double>();
  }
  throw StateError(fmt::format("distill run {} recorded no tau: run `defuse distill` again", distill.id));
}

ScenarioSet save_scenario_thumbnails(Workspace& workspace, int64_t run_id, const DistillResult& result,
                                     const at::Tensor& train_images, const std::vector<std::string>& class_names,
                                     const FailureSet& failures) {
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
      out.samples.push_back({path, s.sample_predicted[i].item<int64_t>(), -1, s.sample_judge[i].item<int64_t>()});
    }
    const FailureValidity& fv = failures.validity;
    for (int64_t i = 0; i < s.member_rows.size(0); ++i) {
      const int64_t row = s.member_rows[i].item<int64_t>();
      std::string path = fmt::format("{}/s{:02d}-member-{:02d}.png", dir, out.id, i);
      write(path, failures.images[row]);
      out.member_images.push_back({path, failures.predicted[row].item<int64_t>(),
                                   failures.seed_label[row].item<int64_t>(),
                                   fv.judged() ? fv.judge_label[row].item<int64_t>() : -1});
    }
    out.validity = s.validity;
    if (s.neighbour_index.defined()) {
      for (int64_t i = 0; i < s.neighbour_index.size(0); ++i) {
        std::string path = fmt::format("{}/s{:02d}-neighbour-{:02d}.png", dir, out.id, i);
        write(path, train_images[s.neighbour_index[i].item<int64_t>()]);
        out.neighbours.push_back(
            {path, s.neighbour_predicted[i].item<int64_t>(), s.neighbour_label[i].item<int64_t>()});
      }
    }
    set.scenarios.push_back(std::move(out));
  }
  return set;
}

}  // namespace defuse
