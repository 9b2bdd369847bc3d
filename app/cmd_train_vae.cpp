// defuse train-vae: train the β-VAE on the training split and encode both splits.
#include <CLI/CLI.hpp>

#include "common.h"
#include "defuse/pipeline/vae_stage.h"

namespace defuse::cli {

void bind_stage_options(CLI::App& app, VaeStageOptions& o) {
  app.add_option("-d,--data", o.data,
                 "Dataset spec (default: the one the workspace's classifier was trained on, else fashion-mnist)");
  app.add_option("--latent", o.train.latent, "Latent dimensions Z (0: 16 for grey images, 128 for colour)")
      ->capture_default_str();
  app.add_option("--epochs", o.train.epochs,
                 "Passes over the training split (0: by the data's shape, 6 on grey images and 18 on colour)")
      ->capture_default_str();
  app.add_option("--batch-size", o.train.batch_size, "Training batch size")->capture_default_str();
  app.add_option("--lr", o.train.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--weight-decay", o.train.weight_decay, "Adam L2 weight decay")->capture_default_str();
  app.add_option("--beta", o.train.beta, "KL weight β of the β-VAE (0: 1 for grey images, 0.1 for colour)")
      ->capture_default_str();
  app.add_option("--anneal-steps", o.train.anneal_steps,
                 "Steps over which the KL weight rises linearly from 0 to β (0: half of all training steps)")
      ->capture_default_str();
  app.add_option("--loss", o.train.loss,
                 "Reconstruction loss: bce, mse, or ssim (1 - SSIM, 11x11 Gaussian window, σ = 1.5; the "
                 "reference's); auto: bce on grey images, ssim on colour (sharper signs: GTSRB fidelity 0.83 "
                 "against 0.58 at 6 epochs)")
      ->check(CLI::IsMember({"auto", "bce", "mse", "ssim"}))
      ->capture_default_str();
  app.add_option("--filters", o.train.filters,
                 "Channels of every hidden convolution (0: 64 for grey images, 128 for colour)")
      ->capture_default_str();
  app.add_option("--decoder", o.train.decoder,
                 "Decoder upsampling: subpixel (3x3 conv + pixel shuffle, fastest here) or transposed (the "
                 "reference's ConvTranspose2d)")
      ->check(CLI::IsMember({"subpixel", "transposed"}))
      ->capture_default_str();
  app.add_option("--seed", o.train.seed, "Random seed (initialisation, shuffling, sampling)")->capture_default_str();
  app.add_option("--precision", o.train.precision,
                 "fp32, or bf16: the training steps in bfloat16 autocast (CPUs with AVX512-BF16/AMX; evaluation "
                 "and the stored model stay fp32); auto: bf16 where the CPU has it")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
}

namespace {

const Registrar registrar = stage_command<VaeStageOptions>(
    "train-vae", "Train the β-VAE whose latent space identify searches, and encode both splits", 20, run_vae_stage,
    Writes::kYes, run_vae_worker);

}  // namespace
}  // namespace defuse::cli
