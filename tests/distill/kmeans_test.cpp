// Tests of k-means (src/defuse/distill/kmeans.h), the DP-GMM's default initialisation:
// k-means++ seeding, Lloyd's iterations with bounded assignments, determinism.
#include "defuse/distill/kmeans.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "defuse/base/error.h"
#include "distill/cluster_support.h"

namespace defuse {
namespace {

using test::adjusted_rand;
using test::make_anisotropic;
using test::make_blobs;

TEST(KMeans, PlusPlusSeedsOnePointPerSeparatedCluster) {
  auto b = make_blobs(300, 2, 3);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    auto seeds = kmeans_plusplus(b.x.data(), 300, 2, nullptr, 3, seed);
    ASSERT_EQ(seeds.size(), 3u);
    std::vector<int32_t> clusters;
    for (auto s : seeds) clusters.push_back(b.labels[s]);
    std::sort(clusters.begin(), clusters.end());
    EXPECT_EQ(clusters, (std::vector<int32_t>{0, 1, 2})) << "seed " << seed;
  }
  // Zero-weight points are never seeds; fewer distinct points give fewer seeds.
  std::vector<double> w(300, 1.0);
  for (int i = 0; i < 300; ++i)
    if (b.labels[i] == 2) w[i] = 0;
  for (auto s : kmeans_plusplus(b.x.data(), 300, 2, w.data(), 3, 1)) EXPECT_NE(b.labels[s], 2);
  std::vector<double> same = {1, 1, 1, 1, 2, 2};
  EXPECT_EQ(kmeans_plusplus(same.data(), 3, 2, nullptr, 3, 0).size(), 2u);
}

TEST(KMeans, LloydFindsTheClustersAndIsDeterministic) {
  auto b = make_blobs(3000, 4, 5);
  KMeansOptions o;
  o.clusters = 5;
  o.seed = 11;
  auto r = kmeans(b.x.data(), 3000, 4, o);
  EXPECT_TRUE(r.converged);
  EXPECT_DOUBLE_EQ(adjusted_rand(r.labels, b.labels), 1.0);
  auto r2 = kmeans(b.x.data(), 3000, 4, o);
  EXPECT_EQ(r.labels, r2.labels);
  EXPECT_EQ(r.centers, r2.centers);
  // Centres are the cluster means.
  for (int64_t c = 0; c < 5; ++c) {
    double sum = 0, count = 0;
    for (int64_t i = 0; i < 3000; ++i)
      if (r.labels[i] == c) sum += b.x[i * 4], count += 1;
    EXPECT_NEAR(r.centers[c * 4], sum / count, 1e-9);
  }
  EXPECT_THROW(kmeans(b.x.data(), 3000, 4, KMeansOptions{0}), ConfigError);
}

// Lloyd's assignments skip points whose bounds prove their centre the nearest (Hamerly):
// with many centres per true cluster (so that most points sit near several centres and
// many iterations run) and a thread count other than 1, every final label must still be
// the nearest centre by a float64 search, up to float32 rounding near ties, and the result
// must not depend on the thread count.
TEST(KMeans, BoundedAssignmentsKeepTheNearestCentre) {
  const int64_t n = 6000, d = 6, k = 40;
  const auto x = make_anisotropic(n, d, 5, 21);
  KMeansOptions o;
  o.clusters = k;
  o.seed = 3;
  o.threads = 3;
  auto r = kmeans(x.data(), n, d, o);
  EXPECT_GT(r.iterations, 5);
  int64_t ties = 0;
  double inertia = 0;
  for (int64_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity(), own = 0, scale = 0;
    for (int64_t c = 0; c < k; ++c) {
      double dist = 0, norm = 0;
      for (int64_t j = 0; j < d; ++j) {
        dist += (x[i * d + j] - r.centers[c * d + j]) * (x[i * d + j] - r.centers[c * d + j]);
        norm += x[i * d + j] * x[i * d + j] + r.centers[c * d + j] * r.centers[c * d + j];
      }
      best = std::min(best, dist);
      if (c == r.labels[i]) own = dist;
      scale = std::max(scale, norm);
    }
    inertia += own;
    if (own > best) {
      ++ties;
      EXPECT_LE(own - best, 1e-5 * scale) << "point " << i;
    }
  }
  EXPECT_LE(ties, 3);
  EXPECT_NEAR(r.inertia, inertia, 1e-9 * inertia);
  o.threads = 1;
  auto one = kmeans(x.data(), n, d, o);
  EXPECT_EQ(one.labels, r.labels);
  EXPECT_EQ(one.centers, r.centers);
}

TEST(KMeans, MoreClustersThanDistinctPoints) {
  std::vector<double> x = {0, 0, 0, 0, 3, 3, 3, 3};
  KMeansOptions o;
  o.clusters = 4;
  auto r = kmeans(x.data(), 4, 2, o);
  EXPECT_EQ(r.distinct_seeds, 2);
  EXPECT_EQ(r.labels[0], r.labels[1]);
  EXPECT_EQ(r.labels[2], r.labels[3]);
  EXPECT_NE(r.labels[0], r.labels[2]);
  EXPECT_EQ(r.inertia, 0.0);
}

}  // namespace
}  // namespace defuse
