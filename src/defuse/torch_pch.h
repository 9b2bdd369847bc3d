// The one precompiled header of the torch library; the CLI and the torch tests reuse it.
// Only .cpp files see it: headers include <ATen/core/Tensor.h> at most.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>
