// Moving the train-vae stage's results in and out of a workspace: the model and the latent
// means of both splits (vae/codes.pt).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <utility>

#include "defuse/base/workspace.h"
#include "defuse/model/vae.h"

namespace defuse {

inline constexpr const char* kVaeStage = "train-vae";
inline constexpr const char* kVaeArtifact = "vae/model.pt";
inline constexpr const char* kVaeCodesArtifact = "vae/codes.pt";

// The latent means μ of every image of both splits, in dataset order.
struct VaeCodes {
  at::Tensor train;  // [N_train, Z] float32
  at::Tensor test;   // [N_test, Z] float32
  // Standard deviation of each latent dimension over the training codes [Z] (the scale of
  // identify's Gaussian noise).
  at::Tensor train_spread() const;
};

// Write atomically; return (artifact name, relative path) for Workspace::complete_stage.
std::pair<std::string, std::string> save_vae_artifact(Workspace& workspace, const Vae& vae);
std::pair<std::string, std::string> save_vae_codes(Workspace& workspace, const VaeCodes& codes);

// Reads a codes file written by save_vae_codes. Throws IoError / StateError.
VaeCodes read_vae_codes(const std::filesystem::path& path);

struct WorkspaceVae {
  std::unique_ptr<Vae> model;
  StageRecord record;
};

// The VAE of the latest complete train-vae stage (StateError if none or its files changed).
WorkspaceVae load_workspace_vae(Workspace& workspace, c10::Device device);
// The codes of the latest complete train-vae stage; StateError when they do not match the
// VAE's latent size.
VaeCodes load_vae_codes(Workspace& workspace);

}  // namespace defuse
