// Internal to the readers: wording shared by those that hold out a test split themselves.
#pragma once

#include <cstdint>
#include <string>

#include "defuse/data/dataset.h"

namespace defuse {

// "held out 20% of the <unit> of each class (split-seed 0): 31,367 train / 7,842 test images",
// the part of dataset.source that lets a reader of a log or report reproduce the split.
std::string describe_holdout(const DataOptions& options, const std::string& unit, int64_t train_images,
                             int64_t test_images);

}  // namespace defuse
