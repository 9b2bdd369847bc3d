// The CPU engine's unit of work (dpgmm_cpu.cpp): blocks of kBlockRows points, the sparse
// responsibilities each block keeps (BlockEntries, by component), and the scratch one
// thread uses on a block in the screened E-steps. Internal to the distill module.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace defuse::dpgmm_cpu {

constexpr int64_t kBlockRows = 1024;  // points per E-step block (F and log ρ stay in L2)
constexpr int64_t kBoundRows = 256;   // points per product of the bound screen (its [rows, K] stays in L2)

// The responsibilities of one block of points that exceed the floor, sorted by component:
// component k's entries are [offsets[k], offsets[k+1]).
struct BlockEntries {
  std::vector<int32_t> offsets;  // [K + 1]
  std::vector<uint16_t> rows;    // row within the block
  std::vector<double> values;    // r_nk
  std::vector<int32_t> cursor;   // scratch
};

// Sorts pairs q = row·K + k (in row order) into `out` by component (counting sort, stable),
// with their values value(j) for the j-th pair.
template <typename Value>
void sort_pairs(const int32_t* pairs, int64_t count, int64_t k_count, BlockEntries& out, Value&& value) {
  out.offsets.assign(k_count + 1, 0);
  for (int64_t j = 0; j < count; ++j) ++out.offsets[pairs[j] % k_count + 1];
  for (int64_t k = 0; k < k_count; ++k) out.offsets[k + 1] += out.offsets[k];
  out.rows.resize(count);
  out.values.resize(count);
  std::vector<int32_t>& cursor = out.cursor;
  cursor.assign(out.offsets.begin(), out.offsets.end() - 1);
  for (int64_t j = 0; j < count; ++j) {
    const int32_t q = pairs[j];
    const int32_t at = cursor[q % k_count]++;
    out.rows[at] = static_cast<uint16_t>(q / k_count);
    out.values[at] = value(j);
  }
}

// Sorts a block's responsibilities R [rows, K] into `out` by component, keeping values
// > floor (or > row_floor[i] per row): one scan of R collecting the pairs, then a scatter
// of the (few) kept pairs into component order.
void collect_entries(const double* resp, int64_t rows, int64_t k_count, double floor, BlockEntries& out,
                     std::vector<int32_t>& pairs, const double* row_floor = nullptr);

// A parallel pass notes a point whose log-probability is not finite (the first that a thread
// meets) and throws after its threads are done, since an exception must not leave an OpenMP
// region.
inline void note_bad_row(std::atomic<int64_t>& bad_row, int64_t row) {
  int64_t expected = -1;
  bad_row.compare_exchange_strong(expected, row);
}
// DataError naming the point when one was noted (`float32`: the E-step ran in float32, which
// may be why).
void throw_if_bad_row(const std::atomic<int64_t>& bad_row, bool float32 = false);

// Scratch of one thread in the screened passes (both screens; the bound screen's own
// buffers are sized by kBoundRows).
struct BlockScratch {
  BlockScratch(int64_t d, int64_t k_count) : stride((d + 7) / 8 * 8) {
    offset.resize(d);
    rows8.assign(8 * stride, 0.0);
    cut.resize(kBlockRows);
    row_max.resize(kBlockRows);
    row_sum.resize(kBlockRows);
    row_t.resize(kBlockRows);
    centred.resize(kBoundRows * d);
    norms.resize(kBoundRows);
    dots.resize(kBoundRows * 2 * k_count);
    bound.resize(kBoundRows * k_count);
    gather.assign(kBlockRows * stride, 0.0);
    pairs.resize(kBlockRows * k_count);
    values.resize(kBlockRows * k_count);
    best.resize(kBoundRows);
    order.resize(kBoundRows);
    by_best.resize(k_count + 1);
    exact.resize(kBoundRows);
  }
  int64_t stride;
  std::vector<double> offset, rows8, cut, row_max, row_sum, row_t, norms, bound, gather, values;
  std::vector<float> centred, dots;  // the bound screen's product, in float32
  std::vector<int32_t> pairs, best, order, by_best;
  std::vector<double> exact;
};

}  // namespace defuse::dpgmm_cpu
