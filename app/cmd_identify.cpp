// defuse identify: search the VAE's latent space around seed images for realistic decodes
// the classifier gets wrong (DESIGN §3, "Identification").
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/identify_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, IdentifyStageOptions& o) {
  app.add_option("-d,--data", o.data, "Dataset spec (default: the one the workspace's classifier was trained on)");
  app.add_option("-Q,--samples", o.search.samples, "Perturbations decoded per seed")->capture_default_str();
  app.add_option("-M,--keep", o.search.keep, "Failures kept per seed, smallest perturbation first")
      ->capture_default_str();
  app.add_option("--noise", o.search.noise,
                 "gaussian: zero-mean, σ relative to each latent dimension's spread over the training codes; "
                 "beta: the reference's Beta(a, b) per coordinate (adds +0.5 on average; parity mode)")
      ->check(CLI::IsMember({"gaussian", "beta"}))
      ->capture_default_str();
  app.add_option("--sigma", o.search.sigma, "gaussian noise: σ as a multiple of each latent dimension's spread")
      ->capture_default_str();
  app.add_option("--search", o.search.search,
                 "fixed: Q draws per seed at --sigma; growing: Q draws at sigma x each of --levels in turn, for "
                 "the seeds without a kept failure yet, so the kept failures are the nearest ones")
      ->check(CLI::IsMember({"fixed", "growing"}))
      ->capture_default_str();
  app.add_option("--levels", o.search.levels, "growing search: radii as multiples of --sigma, increasing")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--beta-a", o.search.beta_a, "beta noise: shape a (the reference: 50 MNIST/GTSRB, 75 SVHN)")
      ->capture_default_str();
  app.add_option("--beta-b", o.search.beta_b, "beta noise: shape b")->capture_default_str();
  app.add_option("--split", o.split, "Split the seeds come from (train keeps the test split clean for evaluation)")
      ->check(CLI::IsMember({"train", "test"}))
      ->capture_default_str();
  app.add_flag("--all-seeds", o.all_seeds,
               "Seed from every image, not only those the classifier gets right (the reference's behaviour)");
  app.add_flag("--keep-bad-reconstructions", o.keep_bad_reconstructions,
               "Also seed from images whose plain VAE reconstruction the classifier misreads (their failures "
               "are the generator's; the reference's behaviour)");
  app.add_option("--max-seeds", o.search.max_seeds, "Seeds to search, drawn at random from the eligible ones (0: all)")
      ->capture_default_str();
  app.add_option("--batch-size", o.search.batch_size, "Decodes per forward pass")->capture_default_str();
  app.add_option("--precision", o.search.precision,
                 "fp32; bf16: screen in bfloat16, then re-check in fp32 every decode that fails or is within "
                 "--screen-margin of failing, so the kept failures are fp32's; auto: bf16 on CPUs with "
                 "AVX512-BF16, else fp32")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--screen-margin", o.search.screen_margin,
                 "bf16: also check in fp32 every decode whose label logit leads the next class by less than this, "
                 "so that bf16's rounding does not hide fp32 failures")
      ->capture_default_str();
  app.add_option("--gate", o.search.gate,
                 "Which failing decodes may be kept: genuine (the judges read the seed's label), plausible (all but "
                 "label changes), none (every one, unverified); auto: genuine when the workspace has judges "
                 "(`defuse train-judges`), else none")
      ->check(CLI::IsMember({"auto", "genuine", "plausible", "none"}))
      ->capture_default_str();
  app.add_option("--judge-agreement", o.search.verdict.min_agreement,
                 "Share of the judges that must read a class for their reading to count (1: all)")
      ->capture_default_str();
  app.add_option("--judge-confidence", o.search.verdict.min_confidence,
                 "Mean probability the judges must give that class for their reading to count")
      ->capture_default_str();
  app.add_option("--neighbours", o.search.neighbours,
                 "Nearest training codes whose labels each kept failure's validity shows")
      ->capture_default_str();
  app.add_option("--grid", o.grid, "Failures shown in identify/failures.png (one per seed)")->capture_default_str();
  app.add_option("--seed", o.search.seed, "Random seed (seed subset and noise)")->capture_default_str();
}

namespace {

const Registrar registrar = stage_command<IdentifyStageOptions>(
    "identify", "Search the VAE's latent space around seed images for decodes the classifier gets wrong", 30,
    run_identify_stage, Writes::kYes, run_identify_worker);

}  // namespace
}  // namespace defuse::cli
