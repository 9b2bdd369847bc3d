// Micro-benchmarks of the DP-GMM (src/defuse/distill): one E-step + statistics per engine
// and precision, a fixed number of coordinate-ascent iterations, and k-means. Run with
//   OPENBLAS_CORETYPE=SkylakeX build/bench/bench/defuse_bench --benchmark_filter=Dpgmm
// (OpenBLAS 0.3.21 does not know Zen 5; see docs/DESIGN.md §5). The comparison with
// scikit-learn is scripts/bench_dpgmm.sh.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "defuse/distill/dpgmm.h"
#include "defuse/distill/dpgmm_engine.h"
#include "defuse/distill/dpgmm_torch.h"
#include "defuse/distill/kmeans.h"

namespace defuse {
namespace {

// n points around 20 random Gaussians in d dimensions (as scripts/bench_dpgmm.py).
std::vector<double> make_points(int64_t n, int64_t d, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  const int64_t clusters = 20;
  std::vector<double> centres(clusters * d), mix(clusters * d * d);
  for (auto& v : centres) v = 4.0 * normal(rng);
  for (auto& v : mix) v = normal(rng) / std::sqrt(static_cast<double>(d));
  std::vector<double> x(n * d), z(d);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % clusters;
    for (auto& v : z) v = normal(rng);
    for (int64_t j = 0; j < d; ++j) {
      double s = centres[c * d + j];
      for (int64_t q = 0; q < d; ++q) s += mix[(c * d + j) * d + q] * z[q];
      x[i * d + j] = s;
    }
  }
  return x;
}

// Iterations of the full fit from fixed labels (init excluded): args N, D, K, precision
// (0 = float64, 1 = float32), engine (0 = built-in, 1 = LibTorch on the CPU), floor
// (0 = exact, 1 = default 1e-12).
void DpgmmIterations(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto x = make_points(n, d);
  DpgmmOptions o;
  o.components = k;
  o.init = DpgmmInit::kGiven;
  o.init_labels.resize(n);
  for (int64_t i = 0; i < n; ++i) o.init_labels[i] = static_cast<int32_t>((i * 7) % k);
  o.max_iter = 5;
  o.tol = 0;
  o.precision = state.range(3) ? DpgmmPrecision::kFloat32 : DpgmmPrecision::kFloat64;
  if (state.range(4)) o.engine = torch_dpgmm_engine("cpu");
  o.responsibility_floor = state.range(5) ? 1e-12 : 0.0;
  double fit_seconds = 0;
  for (auto _ : state) {
    auto r = fit_dpgmm(x.data(), n, d, o);
    fit_seconds += r.seconds - r.init_seconds;
    benchmark::DoNotOptimize(r.lower_bound);
  }
  state.counters["ms_per_iteration"] = 1e3 * fit_seconds / static_cast<double>(state.iterations() * o.max_iter);
  state.SetLabel(std::string(state.range(4) ? "torch" : "builtin") + (state.range(3) ? " f32" : " f64") +
                 (state.range(5) ? " floor1e-12" : " exact"));
}
BENCHMARK(DpgmmIterations)
    ->ArgNames({"N", "D", "K", "f32", "torch", "floor"})
    ->Args({20000, 16, 100, 0, 0, 1})
    ->Args({20000, 16, 100, 1, 0, 1})
    ->Args({20000, 16, 100, 0, 0, 0})
    ->Args({20000, 16, 100, 0, 1, 1})
    ->Args({100000, 32, 100, 0, 0, 1})
    ->Args({100000, 32, 100, 1, 0, 1})
    ->Args({100000, 32, 100, 0, 0, 0})
    ->Args({100000, 32, 100, 0, 1, 1})
    ->Args({100000, 32, 100, 1, 1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

void KMeansLloyd(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto x = make_points(n, d);
  KMeansOptions o;
  o.clusters = k;
  for (auto _ : state) {
    auto r = kmeans(x.data(), n, d, o);
    state.counters["lloyd_iterations"] = r.iterations;
    benchmark::DoNotOptimize(r.inertia);
  }
}
BENCHMARK(KMeansLloyd)->Args({20000, 16, 100})->Args({100000, 32, 100})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace defuse
