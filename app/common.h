// Helpers shared by the subcommands (app layer only: they combine stages, loading and saving).
#pragma once

#include <string>

#include "cli.h"
#include "defuse/base/workspace.h"
#include "defuse/data/dataset.h"

namespace defuse::cli {

inline constexpr const char* kDefaultData = "fashion-mnist";

// The --data spec to use: the one given, else the one the workspace's classifier was
// trained on, else the default dataset.
std::string resolve_data_spec(Workspace& workspace, const std::string& given);

// Loads the dataset and logs one line describing it.
Dataset load_dataset_logged(Context& ctx, const std::string& spec, const DataOptions& options = {});

// "91.23%"
std::string percent(double fraction, int decimals = 2);

}  // namespace defuse::cli
