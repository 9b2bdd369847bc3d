#include "defuse/distill/dpgmm_blocks.h"

#include <string>

#include "defuse/base/error.h"

namespace defuse::dpgmm_cpu {

void collect_entries(const double* resp, int64_t rows, int64_t k_count, double floor, BlockEntries& out,
                     std::vector<int32_t>& pairs, const double* row_floor) {
  pairs.clear();
  for (int64_t i = 0; i < rows; ++i) {
    const double* ri = resp + i * k_count;
    const double cut = row_floor ? row_floor[i] : floor;
    for (int64_t k = 0; k < k_count; ++k)
      if (ri[k] > cut) pairs.push_back(static_cast<int32_t>(i * k_count + k));
  }
  sort_pairs(pairs.data(), static_cast<int64_t>(pairs.size()), k_count, out, [&](int64_t j) { return resp[pairs[j]]; });
}

void throw_if_bad_row(const std::atomic<int64_t>& bad_row, bool float32) {
  if (bad_row >= 0)
    throw DataError("dpgmm: the log-probability of point " + std::to_string(bad_row.load()) +
                    " is not finite (values too large" + (float32 ? std::string(" for float32?)") : std::string(")")));
}

}  // namespace defuse::dpgmm_cpu
