// Random numbers that are the same on every platform, for results that depend only on the
// seed: the standard library's engines are specified to the bit, its distributions are not
// (their output is implementation-defined), so values are made from an engine's draws here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace defuse {

// A uniform double in [0, 1) from the top 53 bits of one draw.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// One step of a Fisher–Yates shuffle, spelled out (std::shuffle's algorithm is the standard
// library's choice): swaps one of pool[i], …, pool.back(), drawn uniformly, into pool[i].
// Steps i = 0, 1, …, m − 1 draw m distinct elements of the pool into its first m places.
template <typename T>
void swap_in_random(std::vector<T>& pool, int64_t i, std::mt19937_64& rng) {
  const int64_t j = i + static_cast<int64_t>(uniform01(rng) * static_cast<double>(pool.size() - i));
  std::swap(pool[i], pool[std::min<int64_t>(j, pool.size() - 1)]);
}

// min(m, pool.size()) distinct elements of `pool`, uniformly at random, in the order drawn:
// the first steps of that Fisher–Yates shuffle, the rest of the pool dropped.
template <typename T>
std::vector<T> random_subset(std::vector<T> pool, int64_t m, std::mt19937_64& rng) {
  m = std::min<int64_t>(m, static_cast<int64_t>(pool.size()));
  for (int64_t i = 0; i < m; ++i) swap_in_random(pool, i, rng);
  pool.resize(static_cast<size_t>(m));
  return pool;
}

}  // namespace defuse
