#include "defuse/pipeline/correct_inputs.h"

#include <fmt/format.h>

#include "defuse/pipeline/stage_support.h"
#include "defuse/base/error.h"
#include "defuse/data/fingerprint.h"
#include "defuse/distill/distill.h"
#include "defuse/identify/failure_store.h"
#include "defuse/identify/identify.h"
#include "defuse/model/classifier_store.h"
#include "defuse/model/device.h"
#include "defuse/model/vae_store.h"

namespace defuse {

CorrectionInputs load_correction_inputs(const StageEnv& env, Workspace& workspace, const std::string& data,
                                        bool with_failures, const std::string& stage) {
  CorrectionInputs in;
  auto device = parse_device(env.device, stage);
  auto classifier = load_workspace_classifier(workspace, device);
  auto vae = load_workspace_vae(workspace, device);
  StageRecord distill = workspace.require("distill", "distill");
  in.scenarios = load_scenarios(workspace.db(), distill.id);
  in.resolved = resolve_annotations(workspace.db(), in.scenarios);
  in.labelled = labelled_scenarios(in.scenarios, in.resolved);
  in.distill_tau = scenario_tau(distill);

  in.dataset = load_dataset_logged(env, resolve_data_spec(workspace, data));
  validate_classifier(*classifier.model, in.dataset, "the workspace's classifier");
  check_vae_fits(*vae.model, in.dataset, stage);

  std::string judges_fingerprint;
  in.judges = load_workspace_judges(workspace, device, &judges_fingerprint);
  for (int64_t j = 0; j < in.judges.size(); ++j)
    validate_classifier(in.judges.model(j), in.dataset, "judge " + in.judges.info()[static_cast<size_t>(j)].name);
  StageRecord identify = workspace.require(kIdentifyStage, "identify");
  if (identify.options.contains("verdict")) {
    in.verdict.min_agreement = identify.options["verdict"].value("agreement", in.verdict.min_agreement);
    in.verdict.min_confidence = identify.options["verdict"].value("confidence", in.verdict.min_confidence);
  }
  if (distill.inputs.value("identify", std::string()) != identify.fingerprint)
    throw StateError(stage +
                     ": identify ran again after distill, so the scenarios no longer describe the stored "
                     "failures: run `defuse distill` (and annotate) again");
  if (with_failures) {
    FailureSet failures = load_failures(workspace, identify);
    in.failures = labelled_failures(in.labelled, failures.images);
  }

  int64_t left_out = 0;
  for (const auto& r : in.resolved) {
    if (r.status != Resolution::kLabelled)
      ++left_out;
    else if (r.automatic)
      ++in.automatic;
  }
  if (left_out > 0)
    env.info(fmt::format("{}: {} of {} scenarios left out (rejected, tied or unlabelled)", stage, left_out,
                         in.resolved.size()));
  if (in.automatic > 0)
    env.warn(
        fmt::format("note: {} of the {} labelled scenarios carry automatic labels (annotate --auto), not a "
                    "person's: the correction is only as right as those labels",
                    in.automatic, in.labelled.size()));

  in.fingerprints = {{"dataset", dataset_fingerprint(in.dataset)},
                     {"classifier", classifier.record.fingerprint},
                     {"vae", vae.record.fingerprint},
                     {"distill", distill.fingerprint},
                     {"identify", identify.fingerprint},
                     {"annotations", resolution_fingerprint(distill.id, in.resolved)},
                     {"judges", judges_fingerprint}};
  in.classifier = std::move(classifier.model);
  in.vae = std::move(vae.model);
  return in;
}

}  // namespace defuse
