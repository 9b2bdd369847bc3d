// base/random.h: the platform-independent draws that k-means and the DP-GMM's
// initialisations share.
#include "defuse/base/random.h"

#include <gtest/gtest.h>

#include <numeric>
#include <set>

namespace defuse {
namespace {

TEST(Random, Uniform01IsInTheUnitIntervalAndTheSameForASeed) {
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 1000; ++i) {
    const double u = uniform01(a);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    EXPECT_EQ(u, uniform01(b));
  }
}

TEST(Random, RandomSubsetIsTheFirstStepsOfTheSpelledOutShuffle) {
  std::vector<int64_t> pool(50);
  std::iota(pool.begin(), pool.end(), 100);
  std::mt19937_64 rng(3), same(3);
  const auto subset = random_subset(pool, 12, rng);
  ASSERT_EQ(subset.size(), 12u);
  EXPECT_EQ(std::set<int64_t>(subset.begin(), subset.end()).size(), 12u) << "distinct";
  for (int64_t v : subset) EXPECT_TRUE(v >= 100 && v < 150);
  // The same draws as the steps written out, in the order drawn.
  auto steps = pool;
  for (int64_t i = 0; i < 12; ++i) swap_in_random(steps, i, same);
  EXPECT_EQ(subset, std::vector<int64_t>(steps.begin(), steps.begin() + 12));
  // Asking for more than the pool holds gives all of it, shuffled.
  std::mt19937_64 all_rng(3);
  auto all = random_subset(pool, 80, all_rng);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()), std::set<int64_t>(pool.begin(), pool.end()));
  EXPECT_NE(all, pool);
}

}  // namespace
}  // namespace defuse
