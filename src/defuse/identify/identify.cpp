#include "defuse/identify/identify.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "defuse/base/error.h"
#include "defuse/base/timing.h"
#include "defuse/dist/world.h"
#include "defuse/model/device.h"
#include "defuse/model/generate.h"
#include "defuse/model/tensors.h"

namespace defuse {

namespace {

constexpr const char* kStage = kIdentifyStage;
// Decodes per block of seeds. Noise is drawn per block, so results depend on this constant
// (fixed) and on Q, never on --batch-size or on how many threads run.
constexpr int64_t kDecodesPerBlock = 8192;
constexpr int64_t kEvalBatch = 1000;

std::string shape_text(const at::Tensor& images) {
  return fmt::format("{}x{}x{}", images.size(1), images.size(2), images.size(3));
}

// Q perturbations for each of `seeds` codes: [seeds, Q, Z].
at::Tensor draw_noise(const IdentifyOptions& o, int64_t seeds, int64_t z, const at::Tensor& scale, at::Generator& gen) {
  if (o.noise == "beta") {
    // Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b) (the reference draws from
    // torch.distributions.Beta, which does the same).
    auto x = at::_standard_gamma(torch::full({seeds, o.samples, z}, o.beta_a, torch::kFloat64), gen);
    auto y = at::_standard_gamma(torch::full({seeds, o.samples, z}, o.beta_b, torch::kFloat64), gen);
    return (x / (x + y)).to(torch::kFloat32);
  }
  return torch::randn({seeds, o.samples, z}, gen, torch::kFloat32) * scale;
}

// What one block of seeds produced. Blocks are identify's unit of work: a distributed run
// spreads them over the ranks (block j on rank j mod size) and merges them in block order, so
// its kept failures are bit-identical to one process's (DESIGN §6).
struct BlockResult {
  int64_t index = 0;  // block number within its radius level
  at::Tensor found;   // bool [s]: which of the block's seeds kept a failure
  int64_t decodes = 0, failing = 0, genuine = 0, label_change = 0, ambiguous = 0, confirmed = 0;
  int64_t seeds_with = 0, failures = 0;
  // The kept failures: latent, noise, images, seed, label, predicted, probability, judge label,
  // agreement, confidence, verdict (empty tensors when there are none, or no judges).
  std::vector<at::Tensor> kept = std::vector<at::Tensor>(11);
  // Label changes the gate left out (images, seed, label, predicted, judge label), at most
  // the search's cap: merging applies the cap over the blocks in order.
  std::vector<at::Tensor> rejected = std::vector<at::Tensor>(5);
};

constexpr size_t kBlockTensors = 2 + 11 + 5;

std::vector<at::Tensor> block_tensors(const BlockResult& r) {
  std::vector<at::Tensor> out{torch::tensor({r.index, r.decodes, r.failing, r.genuine, r.label_change, r.ambiguous,
                                             r.confirmed, r.seeds_with, r.failures},
                                            torch::kLong),
                              r.found};
  for (const auto* part : {&r.kept, &r.rejected})
    for (const auto& t : *part) out.push_back(t.defined() ? t : torch::empty({0}));
  return out;
}

BlockResult block_from(const std::vector<at::Tensor>& t, size_t at) {
  BlockResult r;
  auto c = t[at].accessor<int64_t, 1>();
  r.index = c[0], r.decodes = c[1], r.failing = c[2], r.genuine = c[3], r.label_change = c[4], r.ambiguous = c[5];
  r.confirmed = c[6], r.seeds_with = c[7], r.failures = c[8];
  r.found = t[at + 1];
  for (size_t i = 0; i < 11; ++i) r.kept[i] = t[at + 2 + i];
  for (size_t i = 0; i < 5; ++i) r.rejected[i] = t[at + 13 + i];
  return r;
}

// Every rank's blocks of one level, on every rank, in block order.
std::vector<BlockResult> exchange_blocks(dist::World& world, const std::vector<BlockResult>& mine) {
  std::vector<at::Tensor> packed;
  for (const auto& r : mine)
    for (auto& t : block_tensors(r)) packed.push_back(t);
  std::vector<BlockResult> all;
  for (const auto& bytes : world.allgather_bytes(dist::pack_tensors(packed))) {
    auto tensors = dist::unpack_tensors(bytes);
    for (size_t at = 0; at + kBlockTensors <= tensors.size(); at += kBlockTensors)
      all.push_back(block_from(tensors, at));
  }
  std::sort(all.begin(), all.end(), [](const BlockResult& a, const BlockResult& b) { return a.index < b.index; });
  return all;
}

}  // namespace

const ChoiceNames<Gate>& gate_names() {
  static const ChoiceNames<Gate> names{
      {Gate::kGenuine, "genuine"}, {Gate::kPlausible, "plausible"}, {Gate::kNone, "none"}};
  return names;
}

void IdentifyOptions::validate() const {
  check_option(samples > 0, kStage, "-Q/--samples must be positive (got " + std::to_string(samples) + ")");
  check_option(keep > 0, kStage, "-M/--keep must be positive (got " + std::to_string(keep) + ")");
  check_option(noise == "gaussian" || noise == "beta", kStage,
               "unknown --noise '" + noise + "' (expected gaussian or beta)");
  check_option(sigma > 0 && std::isfinite(sigma), kStage, "--sigma must be a positive number");
  check_option(beta_a > 0 && beta_b > 0 && std::isfinite(beta_a) && std::isfinite(beta_b), kStage,
               "--beta-a and --beta-b must be positive numbers");
  check_option(screen_margin >= 0 && std::isfinite(screen_margin), kStage,
               "--screen-margin must be a non-negative number of logits");
  check_option(max_seeds >= 0, kStage, "--max-seeds must be non-negative (0: every eligible seed)");
  check_option(batch_size > 0, kStage, "--batch-size must be positive (got " + std::to_string(batch_size) + ")");
  check_precision(precision, kStage);
  if (gate != "auto") gate_names().parse(gate, kStage, "gate");
  check_option(search == "fixed" || search == "growing", kStage,
               "unknown --search '" + search + "' (expected fixed or growing)");
  if (search == "growing") {
    check_option(!levels.empty(), kStage, "--levels needs at least one radius for --search growing");
    for (size_t i = 0; i < levels.size(); ++i)
      check_option(levels[i] > 0 && std::isfinite(levels[i]) && (i == 0 || levels[i] > levels[i - 1]), kStage,
                   "--levels must be positive and increasing");
  }
  verdict.validate(kStage);
  check_option(neighbours >= 1, kStage, "--neighbours must be positive");
  check_option(realism_reference >= 1, kStage, "the realism reference needs at least one training code");
  check_option(rejected_examples >= 0, kStage, "rejected examples must be non-negative");
}

FailureSet search_latent(Vae& vae, Classifier& classifier, const at::Tensor& seed_images, const at::Tensor& seed_labels,
                         const at::Tensor& code_spread, const IdentifyOptions& options) {
  return search_latent(vae, classifier, nullptr, seed_images, seed_labels, code_spread, LatentReference{}, options);
}

FailureSet search_latent(Vae& vae, Classifier& classifier, JudgePanel* judges, const at::Tensor& seed_images,
                         const at::Tensor& seed_labels, const at::Tensor& code_spread, const LatentReference& reference,
                         const IdentifyOptions& options) {
  options.validate();
  const bool judged = judges && !judges->empty();
  const Gate gate = options.gate == "auto" ? (judged ? Gate::kGenuine : Gate::kNone)
                                           : gate_names().parse(options.gate, kStage, "gate");
  if (gate != Gate::kNone && !judged)
    throw ConfigError(
        fmt::format("{}: --gate {} needs judges to read the failures, and the workspace has none: run "
                    "`defuse train-judges` first, or pass --gate none to keep unverified failures",
                    kStage, options.gate));
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
    throw ModelError(fmt::format("{}: the VAE was trained on {}x{}x{} images but the seeds are {}", kStage, vs.channels,
                                 vs.height, vs.width, shape_text(seed_images)));
  const int64_t pool = seed_images.size(0);
  if (pool == 0) throw DataError(std::string(kStage) + ": no seed images (the seed split is empty)");
  if (options.noise == "gaussian" && (code_spread.dim() != 1 || code_spread.size(0) != z_dim))
    throw StateError(
        fmt::format("{}: the training codes have {} dimensions but the VAE has {}: run "
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
    throw ModelError(
        fmt::format("{}: the classifier has {} classes but the seed labels go up to {}", kStage, k, max_label));
  out.num_classes = k;

  // Seeds: a random subset (max_seeds) of the pool, in random order, checked chunk by chunk
  // until enough are found. A seed is eligible when the classifier gets it right (the paper's
  // rule; the reference takes every image) and when it reads the seed's plain reconstruction
  // (the decoded μ, no perturbation) right too: otherwise every decode around the seed fails
  // because of the generator, not the classifier (DESIGN §3, "Validity"). Checking stops
  // early, so a cap of 2,000 seeds does not classify a 60,000-image split.
  const int64_t cap = options.max_seeds > 0 ? std::min(options.max_seeds, pool) : pool;
  const at::Tensor order = cap < pool ? torch::randperm(pool, gen, torch::kLong) : torch::arange(pool, torch::kLong);
  at::Tensor eligible;
  if (options.only_correct || options.check_reconstruction) {
    std::vector<at::Tensor> found;
    int64_t n_found = 0, checked = 0, right = 0;
    for (int64_t c0 = 0; c0 < pool && n_found < cap; c0 += kEvalBatch) {
      auto idx = order.slice(0, c0, std::min(pool, c0 + kEvalBatch));
      auto chunk_labels = seed_labels.index_select(0, idx);
      auto chunk_images = seed_images.index_select(0, idx);
      checked += idx.size(0);
      if (options.only_correct) {
        auto logits = predict_logits(classifier, chunk_images, kEvalBatch, device);
        if (logits.dim() != 2 || logits.size(1) != k)
          throw ModelError(fmt::format("{}: the classifier returned logits of shape {}, expected [N, {}]", kStage,
                                       c10::str(logits.sizes()), k));
        auto ok = logits.argmax(1).eq(chunk_labels);
        right += ok.sum().item<int64_t>();
        idx = idx.masked_select(ok);
        chunk_images = chunk_images.index_select(0, ok.nonzero().view(-1));
        chunk_labels = chunk_labels.masked_select(ok);
      }
      if (options.check_reconstruction && idx.size(0) > 0) {
        DecodeOptions d;
        d.batch_size = options.batch_size;
        d.keep_images = false;
        auto recon = reconstruct_and_classify(vae, &classifier, chunk_images, device, d);
        auto ok = recon.predicted.eq(chunk_labels);
        summary.seeds_bad_reconstruction += idx.size(0) - ok.sum().item<int64_t>();
        idx = idx.masked_select(ok);
      }
      found.push_back(idx);
      n_found += idx.size(0);
    }
    summary.seeds_checked = checked;
    summary.seed_accuracy = options.only_correct ? static_cast<double>(right) / static_cast<double>(checked) : 0.0;
    if (options.only_correct && right == 0)
      throw ModelError(
          fmt::format("{}: the classifier gets none of the {} seed images right, so there are no "
                      "correctly classified seeds to search from (pass --all-seeds to seed from "
                      "misclassified images too)",
                      kStage, pool));
    if (n_found == 0)
      throw ModelError(
          fmt::format("{}: the classifier misreads the VAE's reconstruction of every one of the {} "
                      "seeds it checked, so every failure would be the generator's: train a sharper "
                      "VAE (`defuse train-vae` with more --latent, lower --beta or more --epochs)",
                      kStage, checked));
    eligible = torch::cat(found).slice(0, 0, cap);
  } else {
    summary.seeds_checked = 0;
    summary.seed_accuracy = 0;
    eligible = order.slice(0, 0, cap);
  }
  eligible = std::get<0>(eligible.sort());
  at::Tensor seeds = eligible.contiguous();                                           // [S] indices into the pool
  at::Tensor mu = encode_means(vae, seed_images.index_select(0, seeds), kEvalBatch);  // [S, Z]
  dist::World* world = dist::current_world();
  const int ranks = dist::current_size(), rank = dist::current_rank();
  if (world && ranks > 1) {
    // Every rank chose the seeds the same way; rank 0's choice and codes are the ones used, so
    // that no rounding difference between machines can make the ranks search different seeds.
    auto root = dist::unpack_tensors(world->broadcast_bytes(
        world->is_root()
            ? dist::pack_tensors(
                  {seeds, mu, torch::tensor({summary.seeds_checked, summary.seeds_bad_reconstruction}, torch::kLong),
                   torch::tensor({summary.seed_accuracy}, torch::kFloat64)})
            : std::string()));
    seeds = root.at(0), mu = root.at(1);
    summary.seeds_checked = root.at(2)[0].item<int64_t>();
    summary.seeds_bad_reconstruction = root.at(2)[1].item<int64_t>();
    summary.seed_accuracy = root.at(3)[0].item<double>();
  }
  const int64_t n_seeds = seeds.size(0);
  summary.seeds = n_seeds;
  const at::Tensor labels = seed_labels.index_select(0, seeds);  // [S]
  // The noise scale of each radius level: one level (σ) for the fixed search; for the growing
  // one, σ·levels[i] in turn, each for the seeds that have no kept failure yet, so that every
  // kept failure is among the nearest of its seed (Zhao et al. 2018, the method's ancestor).
  std::vector<double> radii{1.0};
  if (options.search == "growing") radii = options.levels;
  auto scale_at = [&](double radius) {
    return options.noise == "gaussian" ? (options.sigma * radius * code_spread.to(torch::kFloat32)) : torch::Tensor();
  };

  const int64_t q = options.samples;
  const int64_t keep = std::min(options.keep, q);
  const int64_t seeds_per_block = std::max<int64_t>(1, kDecodesPerBlock / q);
  std::vector<at::Tensor> kept_latent, kept_noise, kept_images, kept_seed, kept_label, kept_pred, kept_prob;
  std::vector<at::Tensor> kept_judge_label, kept_judge_agreement, kept_judge_confidence, kept_verdict;
  std::vector<at::Tensor> rej_images, rej_seed, rej_label, rej_pred, rej_judge;
  int64_t rejected_kept = 0;
  summary.judges = judged ? judges->size() : 0;
  summary.gate = gate_names().name(gate);

  const auto search_start = std::chrono::steady_clock::now();
  {
    c10::InferenceMode guard;
    // One block of seeds (`pos`: positions in `seeds`) with its `noise` [s, Q, Z]: decode,
    // classify, read with the judges, keep up to M per seed.
    auto search_block = [&](const at::Tensor& pos, const at::Tensor& noise) -> BlockResult {
      BlockResult result;
      const int64_t s = pos.size(0);
      const int64_t rows = s * q;
      auto block_seeds = seeds.index_select(0, pos);                                     // [s] pool indices
      auto block_labels = labels.index_select(0, pos);                                   // [s]
      auto latent = (mu.index_select(0, pos).unsqueeze(1) + noise).view({rows, z_dim});  // [sQ, Z]
      auto row_labels = block_labels.repeat_interleave(q);                               // [sQ]
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
        auto logits32 = logits.to(torch::kFloat32);
        auto [prob, pred] = torch::softmax(logits32, 1).max(1);
        pred = pred.to(torch::kCPU);
        prob = prob.to(torch::kCPU);
        auto failing = pred.ne(batch_labels).nonzero().view(-1);
        if (screen_bf16) {
          // Screen: a decode whose bf16 reading fails, or whose label logit leads the best
          // other class by less than the margin (bf16's error could hide an fp32 failure
          // there), is re-decoded and re-classified in fp32; every kept failure is then a
          // failure of the fp32 classifier with its fp32 image, prediction and probability,
          // and none is missed unless bf16 moves the margin by more than screen_margin.
          auto label_dev = batch_labels.to(logits32.device()).unsqueeze(1);
          auto own = logits32.gather(1, label_dev);
          auto other = logits32.scatter(1, label_dev, -std::numeric_limits<float>::infinity()).amax(1, true);
          auto screened = own.sub(other).lt(options.screen_margin).view(-1).to(torch::kCPU).nonzero().view(-1);
          result.confirmed += screened.size(0);
          if (screened.size(0) > 0) {
            images = vae.decode(z.index_select(0, screened.to(z.device()))).mul_(255.0f).round_();
            auto [prob32, pred32] =
                torch::softmax(classifier.forward(images.div(255.0f)).to(torch::kFloat32), 1).max(1);
            pred32 = pred32.to(torch::kCPU);
            pred.index_put_({screened}, pred32);
            prob.index_put_({screened}, prob32.to(torch::kCPU));
            auto confirmed = pred32.ne(batch_labels.index_select(0, screened)).nonzero().view(-1);
            images = images.index_select(0, confirmed.to(images.device()));
            failing = screened.index_select(0, confirmed);
          } else {
            failing = screened;
          }
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
      result.decodes += rows;

      // The failing decodes of the block, in row order, with their images.
      auto failing = predicted.view({s, q}).ne(block_labels.unsqueeze(1));  // [s, Q]
      const int64_t n_failing = failing.sum().item<int64_t>();
      result.failing += n_failing;
      at::Tensor all_fail_rows = fail_rows.empty() ? torch::empty({0}, torch::kLong) : torch::cat(fail_rows);
      at::Tensor all_fail_images = fail_images.empty() ? at::Tensor() : torch::cat(fail_images);
      auto position = torch::full({rows}, -1, torch::kLong);  // row -> index among the failing ones
      if (n_failing > 0) position.index_put_({all_fail_rows}, torch::arange(n_failing, torch::kLong));

      // The judges read every failing decode; the gate decides which may be kept.
      auto passes = failing.clone();                                                  // [s, Q]
      at::Tensor verdict_rows, reading_label, reading_agreement, reading_confidence;  // per failing decode
      if (judged && n_failing > 0) {
        // In fp32 (autocast covers only the screening forward passes above).
        JudgeReading reading = judges->read(all_fail_images, device);
        reading_label = reading.label;
        reading_agreement = reading.agreement;
        reading_confidence = reading.confidence;
        verdict_rows = failure_verdicts(reading, row_labels.index_select(0, all_fail_rows),
                                        predicted.index_select(0, all_fail_rows), options.verdict);
        result.genuine += verdict_rows.eq(static_cast<int8_t>(Verdict::kGenuine)).sum().item<int64_t>();
        result.label_change += verdict_rows.eq(static_cast<int8_t>(Verdict::kLabelChange)).sum().item<int64_t>();
        result.ambiguous += verdict_rows.eq(static_cast<int8_t>(Verdict::kAmbiguous)).sum().item<int64_t>();
        at::Tensor ok;
        if (gate == Gate::kGenuine)
          ok = verdict_rows.eq(static_cast<int8_t>(Verdict::kGenuine));
        else if (gate == Gate::kPlausible)
          ok = verdict_rows.ne(static_cast<int8_t>(Verdict::kLabelChange));
        else
          ok = torch::ones({n_failing}, torch::kBool);
        auto row_ok = torch::zeros({rows}, torch::kBool);
        row_ok.index_put_({all_fail_rows}, ok);
        passes = passes.logical_and(row_ok.view({s, q}));

        // Examples of what the gate left out: the smallest-perturbation label change of each
        // seed, up to rejected_examples (the merge caps them over the whole search).
        if (gate != Gate::kNone && options.rejected_examples > 0) {
          auto change = torch::zeros({rows}, torch::kBool);
          change.index_put_({all_fail_rows}, verdict_rows.eq(static_cast<int8_t>(Verdict::kLabelChange)));
          auto key =
              noise.norm(2, -1).masked_fill(change.view({s, q}).logical_not(), std::numeric_limits<float>::infinity());
          auto [best, arg] = key.min(1);  // [s]
          auto seeds_with = best.isfinite().nonzero().view(-1);
          const int64_t take = std::min(seeds_with.size(0), options.rejected_examples);
          if (take > 0) {
            auto rows_taken = seeds_with.slice(0, 0, take) * q + arg.index_select(0, seeds_with.slice(0, 0, take));
            auto pos = position.index_select(0, rows_taken);
            result.rejected = {all_fail_images.index_select(0, pos),
                               block_seeds.index_select(0, rows_taken.div(q, "floor")),
                               row_labels.index_select(0, rows_taken), predicted.index_select(0, rows_taken),
                               reading_label.index_select(0, pos)};
          }
        }
      }

      // Keep at most M failures per seed among those that pass the gate, smallest
      // perturbation first (stable sort: ties keep draw order).
      auto key = noise.norm(2, -1).masked_fill(passes.logical_not(), std::numeric_limits<float>::infinity());
      auto [sorted, order] = key.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
      auto valid = sorted.slice(1, 0, keep).isfinite();                                          // [s, M]
      auto chosen = (torch::arange(s, torch::kLong).unsqueeze(1) * q + order.slice(1, 0, keep))  // [s, M]
                        .masked_select(valid);                                                   // [f]
      if (chosen.size(0) > 0) {
        result.seeds_with += valid.any(1).sum().item<int64_t>();
        auto pos = position.index_select(0, chosen);
        auto& k = result.kept;
        k[0] = latent.index_select(0, chosen);
        k[1] = noise.view({rows, z_dim}).index_select(0, chosen);
        k[2] = all_fail_images.index_select(0, pos);
        k[3] = block_seeds.index_select(0, chosen.div(q, "floor"));
        k[4] = row_labels.index_select(0, chosen);
        k[5] = predicted.index_select(0, chosen);
        k[6] = probability.index_select(0, chosen);
        if (judged) {
          k[7] = reading_label.index_select(0, pos);
          k[8] = reading_agreement.index_select(0, pos);
          k[9] = reading_confidence.index_select(0, pos);
          k[10] = verdict_rows.index_select(0, pos);
        }
        result.failures += chosen.size(0);
      }
      result.found = valid.any(1);
      return result;
    };

    // A block's results into the search's, in block order; the rejected examples stop at the cap.
    std::vector<at::Tensor>* kept_parts[11] = {&kept_latent,
                                               &kept_noise,
                                               &kept_images,
                                               &kept_seed,
                                               &kept_label,
                                               &kept_pred,
                                               &kept_prob,
                                               &kept_judge_label,
                                               &kept_judge_agreement,
                                               &kept_judge_confidence,
                                               &kept_verdict};
    std::vector<at::Tensor>* rejected_parts[5] = {&rej_images, &rej_seed, &rej_label, &rej_pred, &rej_judge};
    auto merge = [&](const BlockResult& r) {
      summary.decodes += r.decodes;
      summary.failing_decodes += r.failing;
      summary.failing_genuine += r.genuine;
      summary.failing_label_change += r.label_change;
      summary.failing_ambiguous += r.ambiguous;
      summary.confirmed_decodes += r.confirmed;
      summary.seeds_with_failures += r.seeds_with;
      summary.failures += r.failures;
      if (r.failures > 0)
        for (size_t i = 0; i < 11; ++i)
          if (i < 7 || judged) kept_parts[i]->push_back(r.kept[i]);
      const int64_t available = r.rejected[0].defined() ? r.rejected[0].size(0) : 0;
      const int64_t take = std::min(available, options.rejected_examples - rejected_kept);
      if (take > 0) {
        for (size_t i = 0; i < 5; ++i) rejected_parts[i]->push_back(r.rejected[i].slice(0, 0, take));
        rejected_kept += take;
      }
    };

    // Each level searches the seeds still without a kept failure, in blocks of a fixed size
    // (noise is drawn per block, so results depend on the block size, never on --batch-size).
    // With several ranks, block j of a level runs on rank j mod size; every rank draws every
    // block's noise so that the generator is where one process would have it.
    at::Tensor remaining = torch::arange(n_seeds, torch::kLong);
    int64_t done = 0, my_decodes = 0, my_failures = 0;
    for (size_t level = 0; level < radii.size() && remaining.size(0) > 0; ++level) {
      const at::Tensor scale = scale_at(radii[level]);
      std::vector<at::Tensor> positions;
      std::vector<BlockResult> mine;
      for (int64_t b0 = 0; b0 < remaining.size(0); b0 += seeds_per_block) {
        const int64_t j = static_cast<int64_t>(positions.size());
        positions.push_back(remaining.slice(0, b0, std::min(remaining.size(0), b0 + seeds_per_block)));
        const at::Tensor& pos = positions.back();
        auto noise = draw_noise(options, pos.size(0), z_dim, scale, gen);  // [s, Q, Z]
        if (j % ranks != rank) continue;
        mine.push_back(search_block(pos, noise));
        BlockResult& r = mine.back();
        r.index = j;
        if (ranks == 1) merge(r);
        const int64_t found = r.found.sum().item<int64_t>();
        done += found;
        if (radii.size() == 1 || level + 1 == radii.size()) done += pos.size(0) - found;
        my_decodes += r.decodes;
        my_failures += r.failures;
        // Progress of this rank's share, scaled to the whole search.
        if (options.on_progress)
          options.on_progress({std::min(done * ranks, n_seeds), n_seeds, my_decodes * ranks, my_failures * ranks});
      }
      if (ranks > 1) {
        mine = exchange_blocks(*world, mine);
        for (const auto& r : mine) merge(r);
      }
      std::vector<at::Tensor> unfound;
      for (const auto& r : mine)
        unfound.push_back(positions[static_cast<size_t>(r.index)].masked_select(r.found.logical_not()));
      remaining = unfound.empty() ? torch::empty({0}, torch::kLong) : torch::cat(unfound);
      summary.level_seeds.push_back(
          n_seeds - remaining.size(0) -
          std::accumulate(summary.level_seeds.begin(), summary.level_seeds.end(), int64_t{0}));
    }
  }
  summary.search_seconds = seconds_since(search_start);

  // Outside inference mode: the results are ordinary tensors that callers may modify.
  auto cat_or_empty = [](const std::vector<at::Tensor>& parts, at::Tensor empty) {
    return parts.empty() ? empty : torch::cat(parts).clone();
  };
  // The growing search finds seeds level by level: put the kept failures back in seed order,
  // then perturbation size (a stable sort of the fixed search's order is the identity).
  if (radii.size() > 1 && !kept_seed.empty()) {
    auto seed_of = torch::cat(kept_seed);
    auto norm = torch::cat(kept_noise).norm(2, 1);
    auto by_norm = std::get<1>(norm.sort(/*stable=*/true, 0, false));
    auto by_seed = std::get<1>(seed_of.index_select(0, by_norm).sort(/*stable=*/true, 0, false));
    auto order = by_norm.index_select(0, by_seed);
    for (auto* parts : {&kept_latent, &kept_noise, &kept_images, &kept_seed, &kept_label, &kept_pred, &kept_prob,
                        &kept_judge_label, &kept_judge_agreement, &kept_judge_confidence, &kept_verdict})
      if (!parts->empty()) *parts = {torch::cat(*parts).index_select(0, order)};
  }
  out.latent = cat_or_empty(kept_latent, torch::empty({0, z_dim}, torch::kFloat32));
  out.noise = cat_or_empty(kept_noise, torch::empty({0, z_dim}, torch::kFloat32));
  out.images = cat_or_empty(kept_images, torch::empty({0, vs.channels, vs.height, vs.width}, torch::kUInt8));
  out.seed_index = cat_or_empty(kept_seed, torch::empty({0}, torch::kLong));
  out.seed_label = cat_or_empty(kept_label, torch::empty({0}, torch::kLong));
  out.predicted = cat_or_empty(kept_pred, torch::empty({0}, torch::kLong));
  out.probability = cat_or_empty(kept_prob, torch::empty({0}, torch::kFloat32));
  if (judged) {
    auto& v = out.validity;
    v.judge_label = cat_or_empty(kept_judge_label, torch::empty({0}, torch::kLong));
    v.judge_agreement = cat_or_empty(kept_judge_agreement, torch::empty({0}, torch::kFloat32));
    v.judge_confidence = cat_or_empty(kept_judge_confidence, torch::empty({0}, torch::kFloat32));
    v.verdict = cat_or_empty(kept_verdict, torch::empty({0}, torch::kInt8));
    summary.kept_genuine = v.verdict.eq(static_cast<int8_t>(Verdict::kGenuine)).sum().item<int64_t>();
    summary.kept_label_change = v.verdict.eq(static_cast<int8_t>(Verdict::kLabelChange)).sum().item<int64_t>();
    summary.kept_ambiguous = v.verdict.eq(static_cast<int8_t>(Verdict::kAmbiguous)).sum().item<int64_t>();
    auto& r = out.rejected;
    r.images = cat_or_empty(rej_images, torch::empty({0, vs.channels, vs.height, vs.width}, torch::kUInt8));
    r.seed_index = cat_or_empty(rej_seed, torch::empty({0}, torch::kLong));
    r.seed_label = cat_or_empty(rej_label, torch::empty({0}, torch::kLong));
    r.predicted = cat_or_empty(rej_pred, torch::empty({0}, torch::kLong));
    r.judge_label = cat_or_empty(rej_judge, torch::empty({0}, torch::kLong));
  }
  // Rank 0 keeps the failures: only it measures their neighbourhood.
  if (reference.codes.defined() && out.size() > 0 && dist::is_root())
    measure_neighbourhood(vae, out.latent, out.images, out.seed_label, out.predicted, code_spread, reference,
                          options.neighbours, options.realism_reference, options.seed, device, out.validity);
  auto pair_counts = torch::bincount(out.seed_label * k + out.predicted, {}, k * k).view({k, k});
  summary.pairs.assign(static_cast<size_t>(k), std::vector<int64_t>(static_cast<size_t>(k), 0));
  auto counts = pair_counts.accessor<int64_t, 2>();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) summary.pairs[i][j] = counts[i][j];
  summary.seconds = seconds_since(start);
  return out;
}

void measure_neighbourhood(Vae& vae, const at::Tensor& codes, const at::Tensor& images, const at::Tensor& seed_label,
                           const at::Tensor& predicted, const at::Tensor& code_spread, const LatentReference& reference,
                           int64_t neighbours, int64_t realism_reference, uint64_t seed, c10::Device device,
                           FailureValidity& v) {
  const int64_t f = codes.size(0);
  const int64_t n = reference.codes.size(0);
  if (f == 0 || n == 0) return;
  auto ref = reference.codes.to(torch::kFloat32);
  auto z = codes.to(torch::kFloat32);
  // Nearest training codes (Euclidean in the latent space, where the VAE's prior makes every
  // dimension comparable), in blocks so that F x N distances never sit in memory at once.
  const int64_t kn = std::min<int64_t>(std::max<int64_t>(neighbours, 1), n);
  const int64_t classes =
      std::max<int64_t>(reference.labels.max().item<int64_t>(),
                        std::max(seed_label.max().item<int64_t>(), predicted.max().item<int64_t>())) +
      1;
  auto ref_sq = ref.pow(2).sum(1);  // [N]
  std::vector<at::Tensor> knn_rows;
  constexpr int64_t kBlock = 512;
  for (int64_t b0 = 0; b0 < f; b0 += kBlock) {
    auto zb = z.slice(0, b0, std::min(f, b0 + kBlock));
    auto d = zb.pow(2).sum(1, true) + ref_sq.unsqueeze(0) - 2 * zb.mm(ref.t());  // [b, N]
    knn_rows.push_back(std::get<1>(d.topk(kn, 1, /*largest=*/false, /*sorted=*/true)));
  }
  auto nearest = torch::cat(knn_rows);                                         // [F, kn]
  auto nl = reference.labels.index_select(0, nearest.view(-1)).view({f, kn});  // [F, kn]
  auto counts = torch::zeros({f, classes}, torch::kLong).scatter_add_(1, nl, torch::ones_like(nl));
  v.knn_label = counts.argmax(1);
  v.knn_seed_share = nl.eq(seed_label.unsqueeze(1)).to(torch::kFloat32).mean(1);
  v.knn_predicted_share = nl.eq(predicted.unsqueeze(1)).to(torch::kFloat32).mean(1);

  // Realism: the re-encoding error of the decode, against that of decoded training codes.
  auto spread = code_spread.defined() && code_spread.numel() == z.size(1)
                    ? code_spread.to(torch::kFloat32).clamp_min(1e-6)
                    : torch::ones({z.size(1)});
  auto reencode_error = [&](const at::Tensor& decoded_u8, const at::Tensor& from) {
    auto mu = encode_means(vae, decoded_u8, 500);
    return ((mu - from) / spread).pow(2).sum(1).sqrt();
  };
  auto gen = at::detail::createCPUGenerator(seed + 31);
  const int64_t r = std::min(std::max<int64_t>(realism_reference, 1), n);
  auto pick = r < n ? torch::randperm(n, gen, torch::kLong).slice(0, 0, r) : torch::arange(n, torch::kLong);
  auto ref_codes = ref.index_select(0, pick);
  DecodeOptions d;
  d.batch_size = 500;
  auto ref_images = decode_and_classify(vae, nullptr, ref_codes, device, d).images;
  auto ref_err = std::get<0>(reencode_error(ref_images, ref_codes).sort());  // [r], ascending
  auto err = reencode_error(images, z);                                      // [F]
  // Share of reference errors >= err: r - (number of reference errors < err).
  auto below = torch::searchsorted(ref_err, err, /*out_int32=*/false, /*right=*/false);  // [F]
  v.realism = (static_cast<double>(r) - below.to(torch::kFloat64)).div(static_cast<double>(r)).to(torch::kFloat32);
}

}  // namespace defuse
