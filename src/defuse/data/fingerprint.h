// Content fingerprint of a loaded dataset, recorded as a stage input in the catalogue.
#pragma once

#include <string>

#include "defuse/data/dataset.h"

namespace defuse {

// Hash of shape, class names, and both splits' pixels and labels (XXH3-128, ~20 GB/s).
std::string dataset_fingerprint(const Dataset& dataset);

}  // namespace defuse
