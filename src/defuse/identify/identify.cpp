#include "defuse/identify/identify.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "defuse/base/error.h"
#include "defuse/model/device.h"
#include "defuse/model/tensors.h"

namespace defuse {

namespace {

constexpr const char* kStage = kIdentifyStage;
// Decodes per block of seeds. Noise is drawn per block, so results depend on this constant
// (fixed) and on Q, never on --batch-size or on how many threads run.
constexpr int64_t kDecodesPerBlock = 8192;
constexpr int64_t kEvalBatch = 1000;

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string shape_text(const at::Tensor& images) {
  return fmt::format("{}x{}x{}", images.size(1), images.size(2), images.size(3));
}

// bfloat16 autocast on the CPU for the lifetime of the object (what torch.autocast("cpu")
// does in Python), restoring the previous state afterwards.
class CpuBf16Autocast {
 public:
  CpuBf16Autocast() : enabled_(at::autocast::is_cpu_enabled()), dtype_(at::autocast::get_autocast_cpu_dtype()) {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CpuBf16Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_cpu_enabled(enabled_);
    at::autocast::set_autocast_cpu_dtype(dtype_);
  }
  CpuBf16Autocast(const CpuBf16Autocast&) = delete;
  CpuBf16Autocast& operator=(const CpuBf16Autocast&) = delete;

 private:
  bool enabled_;
  at::ScalarType dtype_;
};

// Q perturbations for each of `seeds` codes: [seeds, Q, Z].
at::Tensor draw_noise(const IdentifyOptions& o, int64_t seeds, int64_t z, const at::Tensor& scale,
                      at::Generator& gen) {
  if (o.noise == "beta") {
    // Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) (the reference draws from
    // torch.distributions.Beta, which does the same).
    auto x = at::_standard_gamma(torch::full({seeds, o.samples, z}, o.beta_a, torch::kFloat64), gen);
    auto y = at::_standard_gamma(torch::full({seeds, o.samples, z}, o.beta_b, torch::kFloat64), gen);
    return (x / (x + y)).to(torch::kFloat32);
  }
  return torch::randn({seeds, o.samples, z}, gen, torch::kFloat32) * scale;
}

}  // namespace

void IdentifyOptions::validate() const {
  check_option(samples > 0, kStage, "-Q/--samples must be positive (got " + std::to_string(samples) + ")");
  check_option(keep > 0, kStage, "-M/--keep must be positive (got " + std::to_string(keep) + ")");
  check_option(noise == "gaussian" || noise == "beta", kStage,
               "unknown --noise '" + noise + "' (expected gaussian or beta)");
  check_option(sigma > 0 && std::isfinite(sigma), kStage, "--sigma must be a positive number");
  check_option(beta_a > 0 && beta_b > 0 && std::isfinite(beta_a) && std::isfinite(beta_b), kStage,
               "--beta-a and --beta-b must be positive numbers");
  check_option(max_seeds >= 0, kStage, "--max-seeds must be non-negative (0: every eligible seed)");
  check_option(batch_size > 0, kStage, "--batch-size must be positive (got " + std::to_string(batch_size) + ")");
  check_option(precision == "auto" || precision == "fp32" || precision == "bf16", kStage,
               "unknown --precision '" + precision + "' (expected auto, fp32 or bf16)");
}

bool cpu_has_fast_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

std::string resolve_precision(const std::string& precision, c10::Device device) {
  if (precision != "auto") return precision;
  return device.is_cpu() && cpu_has_fast_bf16() ? "bf16" : "fp32";
}

FailureSet search_latent(Vae& vae, Classifier& classifier, const at::Tensor& seed_images,
                         const at::Tensor& seed_labels, const at::Tensor& code_spread,
                         const IdentifyOptions& options) {
  options.validate();
  const auto device = parse_device(options.device, kStage);
  const std::string precision = resolve_precision(options.precision, device);
  check_option(precision == "fp32" || device.is_cpu(), kStage, "--precision bf16 is implemented for the CPU only");
  const bool screen_bf16 = precision == "bf16";
  const auto start = std::chrono::steady_clock::now();
  const auto& vs = vae.spec();
  const int64_t z_dim = vs.latent;
  if (seed_images.dim() != 4 || seed_labels.dim() != 1 || seed_images.size(0) != seed_labels.size(0))
    throw DataError(std::string(kStage) + ": seed images and labels do not match");
  if (seed_images.size(1) != vs.channels || seed_images.size(2) != vs.height || seed_images.size(3) != vs.width)
    throw ModelError(fmt::format("{}: the VAE was trained on {}x{}x{} images but the seeds are {}", kStage,
                                 vs.channels, vs.height, vs.width, shape_text(seed_images)));
  const int64_t pool = seed_images.size(0);
  if (pool == 0) throw DataError(std::string(kStage) + ": no seed images (the seed split is empty)");
  if (options.noise == "gaussian" && (code_spread.dim() != 1 || code_spread.size(0) != z_dim))
    throw StateError(fmt::format("{}: the training codes have {} dimensions but the VAE has {}: run "
                                 "`defuse train-vae` again",
                                 kStage, code_spread.dim() == 1 ? code_spread.size(0) : -1, z_dim));

  FailureSet out;
  IdentifySummary& summary = out.summary;
  summary.seed_pool = pool;
  summary.precision = precision;
  auto gen = at::detail::createCPUGenerator(options.seed);
  classifier.set_training(false);
  vae.set_training(false);

  // The classes: from the spec when known, else from one forward pass.
  int64_t k = classifier.spec().num_classes;
  if (k <= 0) k = predict_logits(classifier, seed_images.slice(0, 0, 1), 1, device).size(1);
  const int64_t max_label = seed_labels.max().item<int64_t>();
  if (seed_labels.min().item<int64_t>() < 0 || max_label >= k)
    throw ModelError(fmt::format("{}: the classifier has {} classes but the seed labels go up to {}", kStage, k,
                                 max_label));
  out.num_classes = k;

  // Seeds: a random subset (max_seeds) of the pool, in random order, checked chunk by chunk
  // until enough are found that the classifier gets right (the paper's rule; the reference
  // takes every image). Checking stops early, so a cap of 2,000 seeds does not classify a
  // 60,000-image split.
  const int64_t cap = options.max_seeds > 0 ? std::min(options.max_seeds, pool) : pool;
  const at::Tensor order = cap < pool ? torch::randperm(pool, gen, torch::kLong) : torch::arange(pool, torch::kLong);
  at::Tensor eligible;
  if (options.only_correct) {
    std::vector<at::Tensor> found;
    int64_t n_found = 0, checked = 0;
    for (int64_t c0 = 0; c0 < pool && n_found < cap; c0 += kEvalBatch) {
      auto idx = order.slice(0, c0, std::min(pool, c0 + kEvalBatch));
      auto logits = predict_logits(classifier, seed_images.index_select(0, idx), kEvalBatch, device);
      if (logits.dim() != 2 || logits.size(1) != k)
        throw ModelError(fmt::format("{}: the classifier returned logits of shape {}, expected [N, {}]", kStage,
                                     c10::str(logits.sizes()), k));
      auto ok = idx.masked_select(logits.argmax(1).eq(seed_labels.index_select(0, idx)));
      found.push_back(ok);
      n_found += ok.size(0);
      checked += idx.size(0);
    }
    summary.seeds_checked = checked;
    summary.seed_accuracy = static_cast<double>(n_found) / static_cast<double>(checked);
    if (n_found == 0)
      throw ModelError(fmt::format("{}: the classifier gets none of the {} seed images right, so there are no "
                                   "correctly classified seeds to search from (pass --all-seeds to seed from "
                                   "misclassified images too)",
                                   kStage, pool));
    eligible = torch::cat(found).slice(0, 0, cap);
  } else {
    summary.seeds_checked = 0;
    summary.seed_accuracy = 0;
    eligible = order.slice(0, 0, cap);
  }
  eligible = std::get<0>(eligible.sort());
  const at::Tensor seeds = eligible.contiguous();  // [S] indices into the pool
  const int64_t n_seeds = seeds.size(0);
  summary.seeds = n_seeds;
  const at::Tensor labels = seed_labels.index_select(0, seeds);                                  // [S]
  const at::Tensor mu = encode_means(vae, seed_images.index_select(0, seeds), kEvalBatch);     // [S, Z]
  const at::Tensor scale = options.noise == "gaussian" ? (options.sigma * code_spread.to(torch::kFloat32))
                                                       : torch::Tensor();

  const int64_t q = options.samples;
  const int64_t keep = std::min(options.keep, q);
  const int64_t seeds_per_block = std::max<int64_t>(1, kDecodesPerBlock / q);
  std::vector<at::Tensor> kept_latent, kept_noise, kept_images, kept_seed, kept_label, kept_pred, kept_prob;

  const auto search_start = std::chrono::steady_clock::now();
  {
    c10::InferenceMode guard;
    for (int64_t s0 = 0; s0 < n_seeds; s0 += seeds_per_block) {
      const int64_t s = std::min(seeds_per_block, n_seeds - s0);
      const int64_t rows = s * q;
      auto noise = draw_noise(options, s, z_dim, scale, gen);                             // [s, Q, Z]
      auto latent = (mu.slice(0, s0, s0 + s).unsqueeze(1) + noise).view({rows, z_dim});  // [sQ, Z]
      auto row_labels = labels.slice(0, s0, s0 + s).repeat_interleave(q);                // [sQ]
      auto latent_dev = latent.to(device);
      auto predicted = torch::empty({rows}, torch::kLong);
      auto probability = torch::empty({rows}, torch::kFloat32);
      std::vector<at::Tensor> fail_rows, fail_images;
      for (int64_t r0 = 0; r0 < rows; r0 += options.batch_size) {
        const int64_t r1 = std::min(rows, r0 + options.batch_size);
        auto z = latent_dev.slice(0, r0, r1);
        auto batch_labels = row_labels.slice(0, r0, r1);
        // Decode, round to the 8-bit grid the images are stored in, classify; in bfloat16
        // when screening (oneDNN's AVX512-BF16 kernels: 2-2.7x the fp32 rate here).
        at::Tensor images, logits;
        {
          std::optional<CpuBf16Autocast> autocast;
          if (screen_bf16) autocast.emplace();
          images = vae.decode(z).mul_(255.0f).round_();
          logits = classifier.forward(images.div(255.0f));
        }
        if (logits.dim() != 2 || logits.size(1) != k)
          throw ModelError(fmt::format("{}: the classifier returned logits of shape {}, expected [N, {}]", kStage,
                                       c10::str(logits.sizes()), k));
        auto [prob, pred] = torch::softmax(logits.to(torch::kFloat32), 1).max(1);
        pred = pred.to(torch::kCPU);
        prob = prob.to(torch::kCPU);
        auto failing = pred.ne(batch_labels).nonzero().view(-1);
        if (screen_bf16 && failing.size(0) > 0) {
          // Confirm the screened failures at full precision: re-decode and re-classify them
          // in fp32, so that every kept failure is a failure of the fp32 classifier and its
          // image, prediction and probability are the fp32 ones.
          summary.confirmed_decodes += failing.size(0);
          images = vae.decode(z.index_select(0, failing.to(z.device()))).mul_(255.0f).round_();
          auto [prob32, pred32] = torch::softmax(classifier.forward(images.div(255.0f)).to(torch::kFloat32), 1).max(1);
          pred32 = pred32.to(torch::kCPU);
          pred.index_put_({failing}, pred32);
          prob.index_put_({failing}, prob32.to(torch::kCPU));
          auto confirmed = pred32.ne(batch_labels.index_select(0, failing)).nonzero().view(-1);
          images = images.index_select(0, confirmed.to(images.device()));
          failing = failing.index_select(0, confirmed);
        } else {
          images = images.index_select(0, failing.to(images.device()));
        }
        predicted.slice(0, r0, r1).copy_(pred);
        probability.slice(0, r0, r1).copy_(prob);
        if (failing.size(0) > 0) {
          fail_rows.push_back(failing + r0);
          fail_images.push_back(images.to(torch::kCPU, torch::kUInt8).contiguous());
        }
      }
      summary.decodes += rows;

      // Keep at most M failures per seed, smallest perturbation first (stable sort: ties
      // keep draw order).
      auto failing = predicted.view({s, q}).ne(labels.slice(0, s0, s0 + s).unsqueeze(1));  // [s, Q]
      summary.failing_decodes += failing.sum().item<int64_t>();
      auto key = noise.norm(2, -1).masked_fill(failing.logical_not(), std::numeric_limits<float>::infinity());
      auto [sorted, order] = key.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
      auto valid = sorted.slice(1, 0, keep).isfinite();                                             // [s, M]
      auto chosen = (torch::arange(s, torch::kLong).unsqueeze(1) * q + order.slice(1, 0, keep))     // [s, M]
                        .masked_select(valid);                                                      // [f]
      if (chosen.size(0) > 0) {
        summary.seeds_with_failures += valid.any(1).sum().item<int64_t>();
        // Where each failing row's image sits in fail_images.
        auto all_fail_rows = torch::cat(fail_rows);
        auto position = torch::full({rows}, -1, torch::kLong);
        position.index_put_({all_fail_rows}, torch::arange(all_fail_rows.size(0), torch::kLong));
        kept_images.push_back(torch::cat(fail_images).index_select(0, position.index_select(0, chosen)));
        kept_latent.push_back(latent.index_select(0, chosen));
        kept_noise.push_back(noise.view({rows, z_dim}).index_select(0, chosen));
        kept_seed.push_back(seeds.slice(0, s0, s0 + s).index_select(0, chosen.div(q, "floor")));
        kept_label.push_back(row_labels.index_select(0, chosen));
        kept_pred.push_back(predicted.index_select(0, chosen));
        kept_prob.push_back(probability.index_select(0, chosen));
        summary.failures += chosen.size(0);
      }
      if (options.on_progress) options.on_progress({s0 + s, n_seeds, summary.decodes, summary.failures});
    }
  }
  summary.search_seconds = since(search_start);

  // Outside inference mode: the results are ordinary tensors that callers may modify.
  auto cat_or_empty = [](const std::vector<at::Tensor>& parts, at::Tensor empty) {
    return parts.empty() ? empty : torch::cat(parts).clone();
  };
  out.latent = cat_or_empty(kept_latent, torch::empty({0, z_dim}, torch::kFloat32));
  out.noise = cat_or_empty(kept_noise, torch::empty({0, z_dim}, torch::kFloat32));
  out.images = cat_or_empty(kept_images, torch::empty({0, vs.channels, vs.height, vs.width}, torch::kUInt8));
  out.seed_index = cat_or_empty(kept_seed, torch::empty({0}, torch::kLong));
  out.seed_label = cat_or_empty(kept_label, torch::empty({0}, torch::kLong));
  out.predicted = cat_or_empty(kept_pred, torch::empty({0}, torch::kLong));
  out.probability = cat_or_empty(kept_prob, torch::empty({0}, torch::kFloat32));
  auto pair_counts = torch::bincount(out.seed_label * k + out.predicted, {}, k * k).view({k, k});
  summary.pairs.assign(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(k), 0));
  auto counts = pair_counts.accessor<int64_t, 2>();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) summary.pairs[i][j] = counts[i][j];
  summary.seconds = since(start);
  return out;
}

}  // namespace defuse
