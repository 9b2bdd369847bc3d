// Moving identify's failures in and out of a workspace. The tensors go to one archive,
// identify/failures.pt (written atomically); the provenance of every kept failure goes to
// the catalogue table `failures`, written in the same transaction that marks the stage
// complete, so either both are there or neither is:
//
//   failures (run_id, idx, seed_index, seed_split, seed_label, predicted_label, probability,
//             noise BLOB float32[Z], latent BLOB float32[Z])
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "defuse/base/workspace.h"
#include "defuse/identify/identify.h"

namespace defuse {

class Database;

inline constexpr const char* kFailuresArtifact = "identify/failures.pt";
inline constexpr const char* kFailureGridArtifact = "identify/failures.png";
inline constexpr const char* kRejectedGridArtifact = "identify/label-changes.png";

// Writes the tensors atomically; returns (artifact name, relative path) for complete_stage.
std::pair<std::string, std::string> save_failure_tensors(Workspace& workspace, const FailureSet& failures);

// The rows for the `failures` table (creating it if needed), to run as StageOutput::extra.
std::function<void(Database&)> failure_rows_writer(int64_t run_id, const FailureSet& failures);

// Reads an archive written by save_failure_tensors (summary counts are not stored there).
FailureSet read_failure_tensors(const std::filesystem::path& path);

// The failures of the latest complete identify stage: tensors from its artifact, checked
// against its catalogue rows. Throws StateError when there is no such stage, its files
// changed, or the catalogue disagrees with them.
FailureSet load_failures(Workspace& workspace);
FailureSet load_failures(Workspace& workspace, const StageRecord& record);

}  // namespace defuse
