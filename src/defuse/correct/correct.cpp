#include "defuse/correct/correct.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "defuse/annotate/annotation_store.h"
#include "defuse/annotate/scenario_store.h"
#include "defuse/base/error.h"
#include "defuse/base/timing.h"
#include "defuse/dist/world.h"
#include "defuse/judge/judges.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"
#include "defuse/model/generate.h"
#include "defuse/model/tensors.h"
#include "defuse/model/vae.h"

namespace defuse {

namespace {

constexpr const char* kStage = "correct";

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const CorrectOptions& o, std::vector<at::Tensor> params) {
  if (o.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(std::move(params),
                                                torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  return std::make_unique<torch::optim::SGD>(
      std::move(params), torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
}

}  // namespace

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  // SplitMix64 (Steele, Lea & Flood 2014) over the seed and the stream number.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::string lambda_name(double lambda) { return fmt::format("lambda={:.6g}", lambda); }

void CorrectOptions::validate() const {
  check_option(!lambdas.empty() || baseline, kStage, "nothing to train: give at least one --lambda or the baseline");
  for (double l : lambdas)
    check_option(std::isfinite(l) && l >= 0, kStage,
                 fmt::format("--lambda values must be non-negative numbers (got {})", l));
  for (size_t i = 0; i < lambdas.size(); ++i)
    for (size_t j = i + 1; j < lambdas.size(); ++j)
      check_option(lambda_name(lambdas[i]) != lambda_name(lambdas[j]), kStage,
                   fmt::format("--lambda {} is given twice", lambdas[i]));
  check_option(epochs > 0, kStage, "--epochs must be positive (got " + std::to_string(epochs) + ")");
  check_option(patience >= 0, kStage, "--patience must be non-negative (0: no early stop)");
  check_option(check_every > 0, kStage, "--check-every must be positive");
  check_option(min_improvement >= 0 && min_improvement < 1, kStage, "--min-improvement must be in [0, 1)");
  check_option(holdout >= 2, kStage, "--holdout must be at least 2 (every holdout-th sample is held out)");
  check_precision(precision, kStage);
  check_option(batch_size > 0, kStage, "--batch-size must be positive");
  check_option(scenario_batch_size > 0, kStage, "--scenario-batch-size must be positive");
  check_option(optimizer == "sgd" || optimizer == "adam", kStage,
               "unknown --optimizer '" + optimizer + "' (expected sgd or adam)");
  check_option(lr > 0 && std::isfinite(lr), kStage, "--lr must be a positive number");
  check_option(momentum >= 0 && momentum < 1, kStage, "--momentum must be in [0, 1)");
  check_option(weight_decay >= 0, kStage, "--weight-decay must be non-negative");
  check_option(samples_per_scenario > 0, kStage, "--samples-per-scenario must be positive");
  check_option(!tau || (*tau > 0 && std::isfinite(*tau)), kStage, "--tau must be a positive number");
  check_option(sample_batch_size > 0, kStage, "sample batch size must be positive");
}

std::vector<LabelledScenario> labelled_scenarios(const ScenarioSet& scenarios,
                                                 const std::vector<ResolvedScenario>& resolved) {
  std::vector<LabelledScenario> out;
  int64_t rejected = 0, ties = 0, unlabelled = 0;
  for (const auto& r : resolved) {
    const Scenario* s = scenarios.find(r.scenario_id);
    if (!s) throw StateError(fmt::format("{}: annotation of unknown scenario {}", kStage, r.scenario_id));
    switch (r.status) {
      case Resolution::kRejected:
        ++rejected;
        continue;
      case Resolution::kTie:
        ++ties;
        continue;
      case Resolution::kUnlabelled:
        ++unlabelled;
        continue;
      case Resolution::kLabelled:
        break;
    }
    const auto z = static_cast<int64_t>(s->mean.size());
    LabelledScenario l;
    l.id = s->id;
    l.label = *r.label;
    l.mean = torch::from_blob(const_cast<float*>(s->mean.data()), {z}, torch::kFloat32).clone();
    l.covariance = torch::from_blob(const_cast<float*>(s->covariance.data()), {z, z}, torch::kFloat32).clone();
    l.member_failures = s->member_failures;
    l.verdict = s->validity.verdict;
    out.push_back(std::move(l));
  }
  if (out.empty()) {
    const auto n = static_cast<int64_t>(resolved.size());
    if (n == 0) throw StateError(std::string(kStage) + ": the distill run found no scenarios: nothing to correct");
    if (rejected == n)
      throw StateError(
          fmt::format("{}: all {} scenarios were rejected: nothing to correct (the classifier's "
                      "failures were judged unrealistic; change a decision with `defuse annotate`)",
                      kStage, n));
    if (unlabelled == n)
      throw StateError(
          fmt::format("{}: none of the {} scenarios is annotated yet: label them with `defuse "
                      "annotate` (or `defuse annotate --auto seed`)",
                      kStage, n));
    throw StateError(
        fmt::format("{}: no scenario has a label ({} rejected, {} tied, {} unlabelled): settle the "
                    "ties or label more with `defuse annotate`",
                    kStage, rejected, ties, unlabelled));
  }
  return out;
}

LabelledImages sample_scenarios(Vae& vae, const std::vector<LabelledScenario>& scenarios, int64_t per_scenario,
                                double tau, uint64_t seed, uint64_t stream, const std::string& device_name,
                                int64_t batch_size) {
  check_option(per_scenario > 0, kStage, "samples per scenario must be positive");
  check_option(tau > 0, kStage, "--tau must be positive");
  auto device = parse_device(device_name, kStage);
  torch::NoGradGuard no_grad;
  vae.set_training(false);
  auto gen = at::detail::createCPUGenerator(derive_seed(seed, stream));
  std::vector<at::Tensor> codes, labels, index;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const auto& s = scenarios[i];
    const int64_t z = s.mean.size(0);
    if (z != vae.spec().latent)
      throw StateError(
          fmt::format("{}: scenario {} lives in a {}-dimensional latent space but the VAE's has {}: run "
                      "distill again with this VAE",
                      kStage, s.id, z, vae.spec().latent));
    codes.push_back(scenario_codes(s.mean, s.covariance, tau, per_scenario, gen));
    labels.push_back(torch::full({per_scenario}, s.label, torch::kLong));
    index.push_back(torch::full({per_scenario}, static_cast<int64_t>(i), torch::kLong));
  }
  LabelledImages out;
  DecodeOptions d;
  d.batch_size = batch_size;
  out.codes = torch::cat(codes);
  out.images = decode_and_classify(vae, nullptr, out.codes, device, d).images;
  out.labels = torch::cat(labels);
  out.scenario = torch::cat(index);
  return out;
}

LabelledImages keep_confirmed_draws(const LabelledImages& draws, JudgePanel& judges, const VerdictRule& rule,
                                    int64_t scenarios, const std::string& device_name, std::vector<int64_t>* kept) {
  auto device = parse_device(device_name, kStage);
  LabelledImages out;
  if (draws.size() == 0) {
    out = draws;
  } else {
    JudgeReading reading = judges.read(draws.images, device);
    auto ok = confident(reading, rule).logical_and(reading.label.eq(draws.labels)).nonzero().view(-1);
    out.images = draws.images.index_select(0, ok).contiguous();
    out.labels = draws.labels.index_select(0, ok).contiguous();
    out.scenario = draws.scenario.index_select(0, ok).contiguous();
    if (draws.codes.defined()) out.codes = draws.codes.index_select(0, ok).contiguous();
  }
  if (kept) {
    auto counts = torch::zeros({scenarios}, torch::kLong);
    if (out.size() > 0) counts.index_add_(0, out.scenario, torch::ones({out.size()}, torch::kLong));
    kept->assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + scenarios);
  }
  return out;
}

LabelledImages labelled_failures(const std::vector<LabelledScenario>& scenarios, const at::Tensor& failure_images) {
  const int64_t f = failure_images.defined() ? failure_images.size(0) : 0;
  std::vector<int64_t> rows, labels, index;
  for (size_t i = 0; i < scenarios.size(); ++i)
    for (int64_t m : scenarios[i].member_failures) {
      if (m < 0 || m >= f)
        throw StateError(
            fmt::format("{}: scenario {} lists failure {} but identify kept {}: the distill run does not "
                        "belong to this identify run; run distill again",
                        kStage, scenarios[i].id, m, f));
      rows.push_back(m);
      labels.push_back(scenarios[i].label);
      index.push_back(static_cast<int64_t>(i));
    }
  LabelledImages out;
  auto n = static_cast<int64_t>(rows.size());
  auto idx = torch::tensor(rows, torch::kLong);
  out.images = n > 0 ? failure_images.index_select(0, idx).contiguous()
                     : (failure_images.defined() ? failure_images.slice(0, 0, 0) : torch::empty({0}, torch::kUInt8));
  out.labels = torch::tensor(labels, torch::kLong);
  out.scenario = torch::tensor(index, torch::kLong);
  return out;
}

// ---------------------------------------------------------------------------------------
// BalancedStream

struct BalancedStream::Impl {
  // A cycle over a list of values, reshuffled (with the stream's generator) at each wrap.
  struct Cycle {
    std::vector<int64_t> values, order;
    size_t next = 0;
    int64_t draw(at::Generator& gen) {
      if (next == order.size() || order.empty()) {
        auto perm = torch::randperm(static_cast<int64_t>(values.size()), gen, torch::kLong);
        const int64_t* p = perm.data_ptr<int64_t>();
        order.assign(values.size(), 0);
        for (size_t i = 0; i < values.size(); ++i) order[i] = values[static_cast<size_t>(p[i])];
        next = 0;
      }
      return order[next++];
    }
  };
  at::Generator gen;
  Cycle labels;                        // the distinct labels
  std::map<int64_t, Cycle> scenarios;  // label -> its scenarios
  std::map<int64_t, Cycle> images;     // scenario -> its image indices
};

BalancedStream::BalancedStream(const at::Tensor& labels, const at::Tensor& scenario, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  impl_->gen = at::detail::createCPUGenerator(seed);
  auto l = labels.to(torch::kLong).contiguous();
  auto s = scenario.to(torch::kLong).contiguous();
  if (l.numel() == 0 || l.numel() != s.numel())
    throw Error("BalancedStream: needs at least one image and one scenario index per label");
  std::map<int64_t, std::vector<int64_t>> by_scenario;
  std::map<int64_t, std::vector<int64_t>> label_scenarios;
  for (int64_t i = 0; i < l.numel(); ++i) {
    const int64_t sc = s.data_ptr<int64_t>()[i], lab = l.data_ptr<int64_t>()[i];
    auto& members = by_scenario[sc];
    if (members.empty()) label_scenarios[lab].push_back(sc);
    members.push_back(i);
  }
  for (auto& [lab, scs] : label_scenarios) {
    impl_->labels.values.push_back(lab);
    impl_->scenarios[lab].values = scs;
  }
  for (auto& [sc, members] : by_scenario) impl_->images[sc].values = std::move(members);
}

BalancedStream::~BalancedStream() = default;
BalancedStream::BalancedStream(BalancedStream&&) noexcept = default;
BalancedStream& BalancedStream::operator=(BalancedStream&&) noexcept = default;

at::Tensor BalancedStream::next(int64_t n) {
  auto out = torch::empty({n}, torch::kLong);
  auto* p = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = impl_->labels.draw(impl_->gen);
    const int64_t sc = impl_->scenarios[label].draw(impl_->gen);
    p[i] = impl_->images[sc].draw(impl_->gen);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Fine-tuning

CorrectResult correct_classifier(Classifier& original, const at::Tensor& train_images, const at::Tensor& train_labels,
                                 const LabelledImages& scenario_samples, const LabelledImages& failures,
                                 const CorrectOptions& options) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  auto device = parse_device(options.device, kStage);
  const int64_t n = train_images.size(0);
  if (n == 0) throw DataError(std::string(kStage) + ": the training split is empty");
  if (!options.lambdas.empty() && scenario_samples.size() == 0)
    throw DataError(std::string(kStage) + ": no scenario samples to train on");
  if (options.baseline && failures.size() == 0)
    throw DataError(std::string(kStage) +
                    ": the baseline needs the failures of the labelled scenarios, and they have none (the distill run "
                    "predates membership records: run distill again, or pass --baseline none)");
  const int64_t classes = original.spec().num_classes;
  for (const LabelledImages* set : {&scenario_samples, &failures})
    if (set->size() > 0 && (set->labels.min().item<int64_t>() < 0 || set->labels.max().item<int64_t>() >= classes))
      throw StateError(fmt::format("{}: a scenario label is outside the classifier's {} classes", kStage, classes));

  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  const int64_t steps = batches * options.epochs;
  const bool bf16 = resolve_precision(options.precision, device) == "bf16";
  check_option(!bf16 || device.is_cpu(), kStage, "--precision bf16 is implemented for the CPU only");

  // The early stop's check set: every holdout-th sample of each scenario, out of training.
  LabelledImages train_samples = scenario_samples, check_samples;
  if (options.patience > 0 && scenario_samples.size() > 0) {
    auto scen = scenario_samples.scenario.contiguous();
    const int64_t* sp = scen.data_ptr<int64_t>();
    std::map<int64_t, int64_t> seen;
    std::vector<int64_t> keep, check;
    for (int64_t i = 0; i < scenario_samples.size(); ++i)
      (++seen[sp[i]] % options.holdout == 0 ? check : keep).push_back(i);
    if (!check.empty() && !keep.empty()) {
      auto take = [&](const std::vector<int64_t>& rows) {
        auto idx = torch::tensor(rows, torch::kLong);
        LabelledImages out;
        out.images = scenario_samples.images.index_select(0, idx);
        out.labels = scenario_samples.labels.index_select(0, idx);
        out.scenario = scenario_samples.scenario.index_select(0, idx);
        if (scenario_samples.codes.defined()) out.codes = scenario_samples.codes.index_select(0, idx);
        return out;
      };
      train_samples = take(keep);
      check_samples = take(check);
    }
  }
  // A check: accuracy and mean cross-entropy on the check samples.
  auto check = [&](Classifier& model) {
    torch::NoGradGuard no_grad;
    model.set_training(false);
    auto logits = predict_logits(model, check_samples.images, 500, device);
    model.set_training(true);
    if (options.freeze_batch_norm) model.freeze_batch_norm();
    return std::pair{logits.argmax(1).eq(check_samples.labels).to(torch::kFloat64).mean().item<double>(),
                     torch::nn::functional::cross_entropy(logits, check_samples.labels).item<double>()};
  };
  struct Plan {
    std::string name;
    double lambda;
  };
  std::vector<Plan> plans;
  for (double l : options.lambdas) plans.push_back({lambda_name(l), l});
  if (options.baseline) plans.push_back({"baseline", -1});

  CorrectResult result;
  result.scenario_samples = scenario_samples.size();
  result.baseline_failures = options.baseline ? failures.size() : 0;
  // With several ranks, model m trains on rank m mod size, whole (DESIGN §6): every model
  // starts from the same random state, so each is the model one process would train.
  const int ranks = dist::current_size(), rank = dist::current_rank();
  for (size_t m = 0; m < plans.size(); ++m) {
    const auto& plan = plans[m];
    if (static_cast<int>(m % static_cast<size_t>(ranks)) != rank) {
      CorrectedModel placeholder;  // trained on another rank; filled in below
      placeholder.name = plan.name;
      placeholder.lambda = plan.lambda;
      result.models.push_back(std::move(placeholder));
      continue;
    }
    const bool baseline = plan.lambda < 0;
    const auto model_start = std::chrono::steady_clock::now();
    // Every model starts from the same state of every random stream, so each result depends
    // only on its own λ, not on the sweep around it.
    torch::manual_seed(derive_seed(options.seed, kOrderStream));
    auto gen = at::detail::createCPUGenerator(derive_seed(options.seed, kOrderStream));
    const LabelledImages& extra = baseline ? failures : train_samples;
    std::optional<BalancedStream> stream;
    if (extra.size() > 0) stream.emplace(extra.labels, extra.scenario, derive_seed(options.seed, kOrderStream + 1));

    auto model = original.clone();
    model->to(device);
    model->set_training(true);
    if (options.freeze_batch_norm) model->freeze_batch_norm();
    auto optimizer = make_optimizer(options, model->parameters());
    double loss_sum = 0, train_sum = 0, extra_sum = 0;
    int64_t step = 0;
    // Early stop: the best held-out accuracy (in samples right) and loss so far, and the checks
    // since either last improved. The loss counts while some check sample is still wrong: on a
    // small check set the count of right samples can stay flat for a while as a small λ slowly
    // moves the scenario's logits; once every one is right, the loss would go on shrinking
    // for the whole budget without changing a prediction, and no longer counts.
    const bool checking = options.patience > 0 && check_samples.size() > 0;
    double last_check = -1, best_loss = std::numeric_limits<double>::infinity();
    int64_t best_right = -1, flat_checks = 0;
    bool done = false;
    for (int epoch = 0; epoch < options.epochs && !done; ++epoch) {
      auto order = torch::randperm(n, gen, torch::kLong);
      for (int64_t b = 0; b < batches && !done; ++b) {
        ++step;
        optimizer->zero_grad();
        at::Tensor loss, train_loss, extra_loss;
        if (baseline) {
          auto idx = stream->next(options.scenario_batch_size);
          auto x = to_unit_float(extra.images.index_select(0, idx), device);
          auto y = extra.labels.index_select(0, idx).to(device);
          at::Tensor logits;
          {
            std::optional<CpuBf16Autocast> autocast;
            if (bf16) autocast.emplace();
            logits = model->forward(x);
          }
          extra_loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), y);
          loss = extra_loss;
        } else {
          auto idx = order.slice(0, b * options.batch_size, std::min(n, (b + 1) * options.batch_size));
          auto x = train_images.index_select(0, idx);
          auto y = train_labels.index_select(0, idx);
          const int64_t m_train = idx.size(0);
          if (plan.lambda > 0) {
            // One forward over both batches (batch norm sees them together, one pass is faster).
            auto sidx = stream->next(options.scenario_batch_size);
            x = torch::cat({x, extra.images.index_select(0, sidx)});
            y = torch::cat({y, extra.labels.index_select(0, sidx)});
          }
          at::Tensor logits;
          {
            std::optional<CpuBf16Autocast> autocast;
            if (bf16) autocast.emplace();
            logits = model->forward(to_unit_float(x, device));
          }
          logits = logits.to(torch::kFloat32);
          auto y_dev = y.to(device);
          train_loss = torch::nn::functional::cross_entropy(logits.slice(0, 0, m_train), y_dev.slice(0, 0, m_train));
          loss = train_loss;
          if (plan.lambda > 0) {
            extra_loss = torch::nn::functional::cross_entropy(logits.slice(0, m_train), y_dev.slice(0, m_train));
            loss = loss + plan.lambda * extra_loss;
          }
        }
        loss.backward();
        optimizer->step();
        const double l = loss.item<double>();
        if (!std::isfinite(l))
          throw Error(fmt::format("{}: fine-tuning {} diverged (loss is not finite) at step {}; lower --lr", kStage,
                                  plan.name, step));
        loss_sum += l;
        if (train_loss.defined()) train_sum += train_loss.item<double>();
        if (extra_loss.defined()) extra_sum += extra_loss.item<double>();
        if (options.on_progress)
          options.on_progress({static_cast<int>(m) + 1, static_cast<int>(plans.size()), plan.name, step, steps,
                               loss_sum / static_cast<double>(step)});
        if (checking && step % options.check_every == 0) {
          const auto [accuracy, check_loss] = check(*model);
          last_check = accuracy;
          const auto right = static_cast<int64_t>(std::llround(accuracy * static_cast<double>(check_samples.size())));
          const bool better = right > best_right || (right < check_samples.size() &&
                                                     check_loss < best_loss * (1.0 - options.min_improvement));
          flat_checks = better ? 0 : flat_checks + 1;
          best_right = std::max(best_right, right);
          best_loss = std::min(best_loss, check_loss);
          done = flat_checks >= options.patience;
        }
      }
    }
    if (checking && step % options.check_every != 0) last_check = check(*model).first;
    model->set_training(false);
    model->to(torch::kCPU);
    CorrectedModel out;
    out.name = plan.name;
    out.lambda = plan.lambda;
    out.model = std::move(model);
    out.steps = step;
    out.check_accuracy = last_check;
    out.train_loss = train_sum / static_cast<double>(step);
    out.scenario_loss = extra_sum / static_cast<double>(step);
    out.seconds = seconds_since(model_start);
    result.models.push_back(std::move(out));
  }
  if (ranks > 1) {
    // Every rank's models to every rank: [index, figures, parameters..., buffers...] each.
    std::vector<at::Tensor> mine;
    for (size_t m = 0; m < plans.size(); ++m) {
      CorrectedModel& c = result.models[m];
      if (!c.model) continue;
      mine.push_back(torch::tensor({static_cast<int64_t>(m), c.steps}, torch::kLong));
      mine.push_back(torch::tensor({c.train_loss, c.scenario_loss, c.seconds, c.check_accuracy}, torch::kFloat64));
      for (auto& t : c.model->parameters()) mine.push_back(t.detach());
      for (auto& t : c.model->buffers()) mine.push_back(t.detach());
    }
    const size_t per_model = 2 + original.parameters().size() + original.buffers().size();
    for (const auto& bytes : dist::current_world()->allgather_bytes(dist::pack_tensors(mine))) {
      auto parts = dist::unpack_tensors(bytes);
      for (size_t at = 0; at + per_model <= parts.size(); at += per_model) {
        CorrectedModel& c = result.models.at(static_cast<size_t>(parts[at][0].item<int64_t>()));
        if (c.model) continue;  // this rank's own
        c.steps = parts[at][1].item<int64_t>();
        c.train_loss = parts[at + 1][0].item<double>();
        c.scenario_loss = parts[at + 1][1].item<double>();
        c.seconds = parts[at + 1][2].item<double>();
        c.check_accuracy = parts[at + 1][3].item<double>();
        c.model = original.clone();
        c.model->to(torch::kCPU);
        torch::NoGradGuard no_grad;
        size_t i = at + 2;
        for (auto& t : c.model->parameters()) t.copy_(parts[i++]);
        for (auto& t : c.model->buffers()) t.copy_(parts[i++]);
        c.model->set_training(false);
      }
    }
  }
  result.scenarios = scenario_samples.size() > 0 ? std::get<0>(at::_unique(scenario_samples.scenario)).numel() : 0;
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace defuse
