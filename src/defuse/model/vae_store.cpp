#include "defuse/model/vae_store.h"

#include <nlohmann/json.hpp>

#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"

namespace defuse {

namespace {

constexpr const char* kCodesFormat = "defuse-vae-codes-1";

const ArtifactRecord& require_artifact(const StageRecord& record, const std::string& name, Workspace& workspace) {
  const ArtifactRecord* a = record.artifact(name);
  if (!a)
    throw StateError("workspace " + workspace.dir().string() + ": the last train-vae stage recorded no '" + name +
                     "' artifact: run `defuse train-vae` again");
  return *a;
}

}  // namespace

at::Tensor VaeCodes::train_spread() const {
  if (!train.defined() || train.size(0) < 2) return torch::ones({train.defined() ? train.size(1) : 0});
  return train.std(0);
}

std::pair<std::string, std::string> save_vae_artifact(Workspace& workspace, const Vae& vae) {
  write_atomic_via(workspace.path(kVaeArtifact), [&](const std::filesystem::path& tmp) { vae.save(tmp); });
  return {"model", kVaeArtifact};
}

std::pair<std::string, std::string> save_vae_codes(Workspace& workspace, const VaeCodes& codes) {
  write_atomic_via(workspace.path(kVaeCodesArtifact), [&](const std::filesystem::path& tmp) {
    torch::serialize::OutputArchive archive;
    nlohmann::json meta = {{"format", kCodesFormat},
                           {"train", codes.train.size(0)},
                           {"test", codes.test.size(0)},
                           {"latent", codes.train.size(1)}};
    archive.write("defuse_meta", c10::IValue(meta.dump()));
    archive.write("train", codes.train.to(torch::kCPU).contiguous());
    archive.write("test", codes.test.to(torch::kCPU).contiguous());
    archive.save_to(tmp.string());
  });
  return {"codes", kVaeCodesArtifact};
}

VaeCodes read_vae_codes(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw IoError("vae: " + path.string() + " does not exist");
  VaeCodes codes;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string(), c10::Device(c10::kCPU));
    archive.read("train", codes.train);
    archive.read("test", codes.test);
  } catch (const c10::Error& e) {
    throw StateError("vae: " + path.string() + " is not a latent-codes file (" +
                     std::string(e.what_without_backtrace()).substr(0, 200) + "): run `defuse train-vae` again");
  }
  if (codes.train.dim() != 2 || codes.test.dim() != 2 || codes.train.size(1) != codes.test.size(1))
    throw StateError("vae: " + path.string() + " holds codes of inconsistent shapes: run `defuse train-vae` again");
  return codes;
}

WorkspaceVae load_workspace_vae(Workspace& workspace, c10::Device device) {
  WorkspaceVae out;
  out.record = workspace.require(kVaeStage, "train-vae");
  out.model = load_vae(workspace.path(require_artifact(out.record, "model", workspace).path), device);
  return out;
}

VaeCodes load_vae_codes(Workspace& workspace) {
  StageRecord record = workspace.require(kVaeStage, "train-vae");
  VaeCodes codes = read_vae_codes(workspace.path(require_artifact(record, "codes", workspace).path));
  if (record.options.contains("latent") && record.options["latent"].is_number_integer() &&
      codes.train.size(1) != record.options["latent"].get<int64_t>())
    throw StateError("workspace " + workspace.dir().string() + ": vae/codes.pt has " +
                     std::to_string(codes.train.size(1)) + " latent dimensions but the VAE has " +
                     std::to_string(record.options["latent"].get<int64_t>()) + ": run `defuse train-vae` again");
  return codes;
}

}  // namespace defuse
