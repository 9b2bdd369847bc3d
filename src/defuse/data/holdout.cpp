// The held-out test split of datasets that come without one (hold_out_groups, dataset.h).
#include "defuse/data/holdout.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace defuse {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // SplitMix64's increment

// SplitMix64 (Steele, Lea and Flood 2014): fixed, portable and fully specified, unlike the
// engines behind std::shuffle and the std distributions, whose algorithms the standard
// library chooses; a split must come out the same with every compiler.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += kGolden);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in 0..bound-1 without modulo bias: reject the lowest 2^64 mod bound outputs.
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

// 31367 -> "31,367".
std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  for (int64_t i = static_cast<int64_t>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return value < 0 ? "-" + digits : digits;
}

}  // namespace

std::vector<bool> hold_out_groups(const std::vector<int64_t>& labels, const std::vector<std::string>& groups,
                                  double holdout, uint64_t split_seed) {
  // Each class's distinct groups in sorted order, so that the shuffle sees the same sequence
  // however the items were listed.
  std::map<int64_t, std::map<std::string, bool>> held;  // class -> group -> held out
  for (size_t i = 0; i < labels.size(); ++i) held[labels[i]].emplace(groups[i], false);
  for (auto& [label, class_groups] : held) {
    std::vector<bool*> order;
    for (auto& entry : class_groups) order.push_back(&entry.second);
    SplitMix64 rng(split_seed + kGolden * static_cast<uint64_t>(label + 1));
    for (size_t i = order.size(); i-- > 1;) std::swap(order[i], order[rng.below(i + 1)]);
    const int64_t n = static_cast<int64_t>(order.size());
    const int64_t wanted = std::llround(holdout * static_cast<double>(n));
    const int64_t n_test = std::clamp<int64_t>(wanted, n >= 2 ? 1 : 0, std::max<int64_t>(n - 1, 0));
    for (int64_t k = 0; k < n_test; ++k) *order[k] = true;
  }
  std::vector<bool> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) out[i] = held[labels[i]][groups[i]];
  return out;
}

std::string describe_holdout(const DataOptions& options, const std::string& unit, int64_t train_images,
                             int64_t test_images) {
  char percent[32];
  std::snprintf(percent, sizeof percent, "%g%%", 100.0 * options.holdout);
  return std::string("held out ") + percent + " of the " + unit + " of each class (split-seed " +
         std::to_string(options.split_seed) + "): " + with_thousands(train_images) + " train / " +
         with_thousands(test_images) + " test images";
}

}  // namespace defuse
