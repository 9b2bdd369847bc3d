#include "defuse/correct/evaluate.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "defuse/base/error.h"
#include "defuse/model/classifier.h"
#include "defuse/model/device.h"

namespace defuse {

namespace {

constexpr const char* kStage = "evaluate";

}  // namespace

void EvaluateOptions::validate() const {
  check_option(samples_per_scenario > 0, kStage, "--samples-per-scenario must be positive");
  check_option(!tau || (*tau > 0 && std::isfinite(*tau)), kStage, "--tau must be a positive number");
  check_option(max_test_drop >= 0 && max_test_drop <= 1, kStage,
               "--max-test-drop must be between 0 and 100 percentage points");
  check_option(tie >= 0 && tie <= 1, kStage, "--tie must be between 0 and 100 percentage points");
  check_option(enough >= 0 && enough <= 1, kStage, "--enough must be between 0 and 100 percent");
  check_option(batch_size > 0, kStage, "--batch-size must be positive");
}

ModelScores score_model(Classifier& model, const std::string& name, double lambda, const at::Tensor& test_images,
                        const at::Tensor& test_labels, const LabelledImages& held_out, const LabelledImages& failures,
                        int64_t scenarios, const EvaluateOptions& options, const std::vector<bool>& genuine,
                        at::Tensor* predictions) {
  auto device = parse_device(options.device, kStage);
  auto correct = [&](const at::Tensor& images, const at::Tensor& labels) {
    return predict_logits(model, images, options.batch_size, device).argmax(1).eq(labels).to(torch::kFloat64);
  };
  ModelScores s;
  s.name = name;
  s.lambda = lambda;
  if (test_images.size(0) > 0) s.test_accuracy = correct(test_images, test_labels).mean().item<double>();
  if (held_out.size() > 0) {
    auto predicted = predict_logits(model, held_out.images, options.batch_size, device).argmax(1);
    if (predictions) *predictions = predicted;
    auto hits = predicted.eq(held_out.labels).to(torch::kFloat64);
    s.scenario_accuracy = hits.mean().item<double>();
    auto sums = torch::zeros({scenarios}, torch::kFloat64).index_add_(0, held_out.scenario, hits);
    auto counts = torch::zeros({scenarios}, torch::kFloat64).index_add_(0, held_out.scenario, torch::ones_like(hits));
    // A scenario with no draws to score (the judges confirmed none) is not evaluated: -1.
    auto per = (sums / counts.clamp_min(1)).masked_fill(counts.eq(0), -1.0).contiguous();
    s.per_scenario.assign(per.data_ptr<double>(), per.data_ptr<double>() + scenarios);
    if (!genuine.empty()) {
      std::vector<int64_t> ids;
      for (size_t k = 0; k < genuine.size(); ++k)
        if (genuine[k]) ids.push_back(static_cast<int64_t>(k));
      if (!ids.empty()) {
        auto mask = torch::isin(held_out.scenario, torch::tensor(ids, torch::kLong));
        if (mask.any().item<bool>()) s.genuine_scenario_accuracy = hits.masked_select(mask).mean().item<double>();
      }
    }
  }
  if (failures.size() > 0) s.failure_accuracy = correct(failures.images, failures.labels).mean().item<double>();
  return s;
}

void score_heldout_failures(EvaluationResult& result, const std::vector<at::Tensor>& predictions,
                            const LabelledImages& held_out, const std::vector<bool>& genuine) {
  if (predictions.size() != result.models.size())
    throw Error("evaluate: score_heldout_failures needs one prediction tensor per model");
  result.heldout_failures = 0;
  for (auto& m : result.models) m.heldout_failure_accuracy = -1;
  if (held_out.size() == 0 || predictions.empty()) return;
  auto mask = predictions.front().ne(held_out.labels);
  std::vector<int64_t> ids;
  for (size_t k = 0; k < genuine.size(); ++k)
    if (genuine[k]) ids.push_back(static_cast<int64_t>(k));
  if (!ids.empty()) mask = mask.logical_and(torch::isin(held_out.scenario, torch::tensor(ids, torch::kLong)));
  result.heldout_failures = mask.sum().item<int64_t>();
  if (result.heldout_failures == 0) return;
  auto labels = held_out.labels.masked_select(mask);
  for (size_t i = 0; i < result.models.size(); ++i)
    result.models[i].heldout_failure_accuracy =
        predictions[i].masked_select(mask).eq(labels).to(torch::kFloat64).mean().item<double>();
}

void choose_model(EvaluationResult& r, const EvaluateOptions& options) {
  const double max_test_drop = options.max_test_drop, tie = options.tie, enough = options.enough;
  const double base = r.original().test_accuracy;
  r.by_genuine = r.original().genuine_scenario_accuracy >= 0;
  const bool by_genuine = r.by_genuine;
  auto score = [by_genuine](const ModelScores& m) {
    return by_genuine ? m.genuine_scenario_accuracy : m.scenario_accuracy;
  };
  const char* what = by_genuine ? "genuine-scenario" : "scenario";
  // A drop within floating-point noise of the budget counts as within it.
  auto within = [&](const ModelScores& m) { return base - m.test_accuracy <= max_test_drop + 1e-12; };
  int best = -1;
  auto model_at = [&](int i) -> const ModelScores& { return r.models[static_cast<size_t>(i)]; };
  // The fixes: within the budget and at least `enough`; the highest test accuracy wins (equal:
  // the smaller λ). Where the original already reaches `enough` there is nothing to fix by that
  // measure, and the best score decides.
  const bool by_enough = enough > 0 && score(r.original()) < enough - 1e-12;
  if (by_enough) {
    for (size_t i = 0; i < r.models.size(); ++i) {
      const auto& m = r.models[i];
      if (!m.is_sweep() || !within(m) || score(m) < enough - 1e-12) continue;
      if (best < 0 || m.test_accuracy > model_at(best).test_accuracy ||
          (m.test_accuracy == model_at(best).test_accuracy && m.lambda < model_at(best).lambda))
        best = static_cast<int>(i);
    }
  }
  const std::string budget =
      fmt::format("whose test accuracy is at most {:.2f} points below the original's", 100 * max_test_drop);
  const std::string best_rule =
      fmt::format("the λ with the highest held-out {} accuracy among those {} (ties{}: the smaller λ)", what, budget,
                  tie > 0 ? fmt::format(", within {:.2g} points of the best", 100 * tie) : std::string());
  if (by_enough)
    r.rule = fmt::format(
        "the cheapest fix: of the λ {} and reaching {:.3g}% held-out {} accuracy, the one with the highest test "
        "accuracy",
        budget, 100 * enough, what);
  else if (enough > 0)
    r.rule = best_rule + fmt::format(" (the original already reaches {:.3g}%, so no cheapest fix)", 100 * enough);
  else
    r.rule = best_rule;
  if (best < 0) {
    // The best score within the budget; every model within `tie` of it counts as tied, and the
    // tie goes to the smallest λ (the gentlest change).
    double top = -1;
    for (const auto& m : r.models)
      if (m.is_sweep() && within(m)) top = std::max(top, score(m));
    for (size_t i = 0; i < r.models.size(); ++i) {
      const auto& m = r.models[i];
      if (!m.is_sweep() || !within(m) || score(m) < top - tie - 1e-12) continue;
      if (best < 0 || m.lambda < model_at(best).lambda) best = static_cast<int>(i);
    }
    if (by_enough && best >= 0) r.rule += fmt::format("; none reached {:.3g}%, so {}", 100 * enough, best_rule);
  }
  r.within_budget = best >= 0;
  if (best < 0) {
    // No λ within the budget: the smallest drop (then the higher scenario accuracy).
    for (size_t i = 0; i < r.models.size(); ++i) {
      const auto& m = r.models[i];
      if (!m.is_sweep()) continue;
      if (best < 0) {
        best = static_cast<int>(i);
        continue;
      }
      const auto& b = r.models[static_cast<size_t>(best)];
      if (m.test_accuracy > b.test_accuracy || (m.test_accuracy == b.test_accuracy && score(m) > score(b)))
        best = static_cast<int>(i);
    }
    r.rule += "; no λ stayed within that budget, so the one with the smallest drop";
  }
  r.chosen = best < 0 ? 0 : static_cast<size_t>(best);
  if (best < 0) r.rule += "; no λ model was trained, so the original";
}

nlohmann::json evaluation_json(const EvaluationResult& r) {
  using nlohmann::json;
  json models = json::array();
  for (size_t i = 0; i < r.models.size(); ++i) {
    const auto& m = r.models[i];
    json per = json::object();
    for (size_t k = 0; k < m.per_scenario.size() && k < r.scenario_ids.size(); ++k)
      per[std::to_string(r.scenario_ids[k])] = m.per_scenario[k];
    models.push_back({{"name", m.name},
                      {"lambda", m.is_sweep() ? json(m.lambda) : json(nullptr)},
                      {"test_accuracy", m.test_accuracy},
                      {"test_drop", r.original().test_accuracy - m.test_accuracy},
                      {"scenario_accuracy", m.scenario_accuracy},
                      {"failure_accuracy", m.failure_accuracy < 0 ? json(nullptr) : json(m.failure_accuracy)},
                      {"genuine_scenario_accuracy",
                       m.genuine_scenario_accuracy < 0 ? json(nullptr) : json(m.genuine_scenario_accuracy)},
                      {"heldout_failure_accuracy",
                       m.heldout_failure_accuracy < 0 ? json(nullptr) : json(m.heldout_failure_accuracy)},
                      {"per_scenario", per},
                      {"chosen", i == r.chosen}});
  }
  const auto& c = r.chosen_model();
  return {{"models", models},
          {"chosen", c.name},
          {"lambda", c.is_sweep() ? json(c.lambda) : json(nullptr)},
          {"within_budget", r.within_budget},
          {"rule", r.rule},
          {"scenario_ids", r.scenario_ids},
          {"scenario_labels", r.scenario_labels},
          {"scenario_verdicts", r.scenario_verdicts},
          {"scenario_draws", r.scenario_draws},
          {"by_genuine", r.by_genuine},
          {"draws_drawn", r.draws_drawn},
          {"heldout_failures", r.heldout_failures},
          {"test_images", r.test_images},
          {"scenario_images", r.scenario_images},
          {"failure_images", r.failure_images}};
}

EvaluationResult evaluation_from_json(const nlohmann::json& j) {
  using nlohmann::json;
  auto need = [](const json& o, const std::string& key, const std::string& where) -> const json& {
    if (!o.is_object() || !o.contains(key))
      throw StateError(fmt::format("evaluate's result has no '{}'{}: run `defuse evaluate` again", key, where));
    return o.at(key);
  };
  auto optional = [](const json& v) { return v.is_null() ? -1.0 : v.get<double>(); };
  try {
    EvaluationResult r;
    r.scenario_ids = need(j, "scenario_ids", "").get<std::vector<int64_t>>();
    r.scenario_labels = need(j, "scenario_labels", "").get<std::vector<int64_t>>();
    r.scenario_verdicts = need(j, "scenario_verdicts", "").get<std::vector<std::string>>();
    r.scenario_draws = need(j, "scenario_draws", "").get<std::vector<int64_t>>();
    r.within_budget = need(j, "within_budget", "").get<bool>();
    r.by_genuine = need(j, "by_genuine", "").get<bool>();
    r.rule = need(j, "rule", "").get<std::string>();
    r.draws_drawn = need(j, "draws_drawn", "").get<int64_t>();
    r.heldout_failures = need(j, "heldout_failures", "").get<int64_t>();
    r.test_images = need(j, "test_images", "").get<int64_t>();
    r.scenario_images = need(j, "scenario_images", "").get<int64_t>();
    r.failure_images = need(j, "failure_images", "").get<int64_t>();
    const std::string chosen = need(j, "chosen", "").get<std::string>();
    bool found = false;
    for (const auto& m : need(j, "models", "")) {
      const std::string where = " for a model";
      ModelScores s;
      s.name = need(m, "name", where).get<std::string>();
      s.lambda = optional(need(m, "lambda", where));
      s.test_accuracy = need(m, "test_accuracy", where).get<double>();
      s.scenario_accuracy = need(m, "scenario_accuracy", where).get<double>();
      s.failure_accuracy = optional(need(m, "failure_accuracy", where));
      s.genuine_scenario_accuracy = optional(need(m, "genuine_scenario_accuracy", where));
      s.heldout_failure_accuracy = optional(need(m, "heldout_failure_accuracy", where));
      const json& per = need(m, "per_scenario", where);
      for (int64_t id : r.scenario_ids) s.per_scenario.push_back(need(per, std::to_string(id), where).get<double>());
      if (s.name == chosen) {
        r.chosen = r.models.size();
        found = true;
      }
      r.models.push_back(std::move(s));
    }
    if (r.models.empty() || r.models.front().name != "original")
      throw StateError("evaluate's result does not start with the original model: run `defuse evaluate` again");
    if (!found)
      throw StateError("evaluate's result chose '" + chosen + "', which it does not list: run `defuse evaluate` again");
    return r;
  } catch (const json::exception& e) {
    throw StateError(std::string("evaluate's result is malformed (") + e.what() + "): run `defuse evaluate` again");
  }
}

std::string evaluation_csv(const EvaluationResult& r) {
  std::string out =
      "name,lambda,test_accuracy,test_drop,scenario_accuracy,genuine_scenario_accuracy,failure_accuracy,"
      "heldout_failure_accuracy,chosen";
  for (int64_t id : r.scenario_ids) out += fmt::format(",scenario_{}", id);
  out += "\r\n";
  for (size_t i = 0; i < r.models.size(); ++i) {
    const auto& m = r.models[i];
    out += fmt::format("{},{},{:.6f},{:.6f},{:.6f},{},{},{},{}", m.name,
                       m.is_sweep() ? fmt::format("{:.6g}", m.lambda) : "", m.test_accuracy,
                       r.original().test_accuracy - m.test_accuracy, m.scenario_accuracy,
                       m.genuine_scenario_accuracy < 0 ? "" : fmt::format("{:.6f}", m.genuine_scenario_accuracy),
                       m.failure_accuracy < 0 ? "" : fmt::format("{:.6f}", m.failure_accuracy),
                       m.heldout_failure_accuracy < 0 ? "" : fmt::format("{:.6f}", m.heldout_failure_accuracy),
                       i == r.chosen ? "true" : "false");
    for (double a : m.per_scenario) out += fmt::format(",{:.6f}", a);
    out += "\r\n";
  }
  return out;
}

}  // namespace defuse
