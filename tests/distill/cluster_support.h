// Test support for the clustering tests (DP-GMM, its screened E-step, k-means): point sets
// with known clusters, made in code and deterministic; the adjusted Rand index; and the
// comparison of results within the parity tolerance.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace defuse::test {

// The parity tolerance (docs/dpgmm.md): relative to each value's magnitude, with an
// absolute floor for values near zero.
constexpr double kParityRelative = 1e-9;
constexpr double kParityAbsolute = 1e-12;

inline void expect_close(const std::vector<double>& actual, const std::vector<double>& expected,
                         const std::string& what, double relative = kParityRelative,
                         double absolute = kParityAbsolute) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::fabs(actual[i] - expected[i]);
    const double allowed = relative * std::fabs(expected[i]) + absolute;
    worst = std::max(worst, err / allowed);
    EXPECT_LE(err, allowed) << what << "[" << i << "]: " << actual[i] << " vs expected " << expected[i];
  }
  ::testing::Test::RecordProperty(what, std::to_string(worst));
}

// n points in d dimensions around `clusters` well-separated centres (centre c at 10·c on
// every axis, spread 0.5), labelled by centre; deterministic.
struct Blobs {
  std::vector<double> x;
  std::vector<int32_t> labels;
};
inline Blobs make_blobs(int64_t n, int64_t d, int64_t clusters, uint64_t seed = 7) {
  Blobs b;
  b.x.resize(n * d);
  b.labels.resize(n);
  uint64_t state = seed;
  auto uniform = [&] {
    state = 6364136223846793005ULL * state + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % clusters;
    b.labels[i] = static_cast<int32_t>(c);
    for (int64_t j = 0; j < d; ++j) {
      // Sum of uniforms: roughly Gaussian, bounded.
      const double noise = (uniform() + uniform() + uniform() - 1.5) * 0.5 * 2.0;
      b.x[i * d + j] = 10.0 * static_cast<double>(c) * (j % 2 == 0 ? 1.0 : -0.5) + noise;
    }
  }
  return b;
}

// Adjusted Rand index of two labelings.
inline double adjusted_rand(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::map<std::pair<int32_t, int32_t>, double> joint;
  std::map<int32_t, double> ra, rb;
  for (size_t i = 0; i < a.size(); ++i) joint[{a[i], b[i]}] += 1, ra[a[i]] += 1, rb[b[i]] += 1;
  auto choose2 = [](double v) { return v * (v - 1) / 2; };
  double index = 0, sa = 0, sb = 0;
  for (auto& [k, v] : joint) index += choose2(v);
  for (auto& [k, v] : ra) sa += choose2(v);
  for (auto& [k, v] : rb) sb += choose2(v);
  const double expected = sa * sb / choose2(static_cast<double>(a.size()));
  const double max_index = (sa + sb) / 2;
  return max_index == expected ? 1.0 : (index - expected) / (max_index - expected);
}

// n points around `clusters` Gaussians in d dimensions with random rotations and variances
// spread over two orders of magnitude per axis (flat in some directions, narrow in others:
// the case where a bound from the smallest eigenvalue alone is loose), deterministic.
inline std::vector<double> make_anisotropic(int64_t n, int64_t d, int64_t clusters, uint64_t seed) {
  uint64_t state = seed;
  auto uniform = [&] {
    state = 6364136223846793005ULL * state + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  auto normal = [&] { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); };
  std::vector<double> centres(clusters * d), mix(clusters * d * d);
  for (auto& v : centres) v = 3.0 * normal();
  for (int64_t c = 0; c < clusters; ++c)
    for (int64_t i = 0; i < d; ++i) {
      const double scale = std::pow(10.0, -1.0 + 2.0 * uniform());  // 0.1 to 10
      for (int64_t j = 0; j < d; ++j) mix[(c * d + i) * d + j] = scale * normal() / std::sqrt(static_cast<double>(d));
    }
  std::vector<double> x(n * d), z(d);
  for (int64_t p = 0; p < n; ++p) {
    const int64_t c = p % clusters;
    for (auto& v : z) v = normal();
    for (int64_t j = 0; j < d; ++j) {
      double v = centres[c * d + j];
      for (int64_t i = 0; i < d; ++i) v += mix[(c * d + i) * d + j] * z[i];
      x[p * d + j] = v;
    }
  }
  return x;
}

}  // namespace defuse::test
