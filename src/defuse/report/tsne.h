// t-SNE (t-distributed stochastic neighbour embedding) into two dimensions, for the report's
// latent map (training codes, failure codes and scenario means; DESIGN §2 "report").
//
// The method is van der Maaten & Hinton (2008), with the Barnes-Hut approximation of van der
// Maaten (2014), in the exact recipe of scikit-learn's TSNE (sklearn/manifold/_t_sne.py,
// _utils.pyx, _barnes_hut_tsne.pyx, 1.2): a binary search per point for the Gaussian
// precision that matches the perplexity (over all points for the exact method, over the
// ⌊3·perplexity⌋ + 1 nearest neighbours for Barnes-Hut), symmetrised joint probabilities,
// Student-t (one degree of freedom) similarities in the embedding, and gradient descent with
// momentum 0.5 then 0.8, per-coordinate gains (+0.2 / ×0.8, at least min_gain) and early
// exaggeration over the first 250 iterations; momentum and gains restart with the second
// phase, the KL divergence is evaluated every 50 iterations and a phase stops early after
// too many evaluations without progress or at a tiny gradient, as scikit-learn's does.
// The same P, initial embedding and options follow scikit-learn's trajectory (tested).
//
// Ours: double precision throughout; the Barnes-Hut quadtree keeps up to 32 points per leaf,
// and the points of a leaf walk the tree together: a cell is summarised for all of them when
// it passes the opening criterion against the leaf's bounding box (so for each point too),
// leaves that fail it interact exactly, and theta = 0 gives the exact gradient; forces are
// summed per point in a fixed order, so a seed gives the same embedding for any thread count.
//
// Torch-free. Matrices are row-major (points [N, D], embeddings [N, 2]). Bad options throw
// ConfigError, NaN/Inf in the points DataError; duplicate points are fine.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace defuse {

enum class TsneMethod {
  kAuto,       // exact up to TsneOptions::exact_max_points points, Barnes-Hut beyond
  kExact,      // all N² pairs: O(N²) memory (8N² bytes; refused beyond 20,000 points) and time
  kBarnesHut,  // kNN affinities and a quadtree for the repulsion: O(N log N) per iteration
};

enum class TsneInit {
  kPca,     // the first two principal components, scaled so that the first has std 1e-4
  kRandom,  // i.i.d. N(0, 1e-4²) coordinates from the seed
  kGiven,   // TsneOptions::init_embedding, used as it is
};

// "auto", "exact", "barnes_hut" and "pca", "random", "given"; parsers throw ConfigError.
TsneMethod parse_tsne_method(const std::string& name);
TsneInit parse_tsne_init(const std::string& name);
std::string to_string(TsneMethod method);
std::string to_string(TsneInit init);

// Reported through TsneOptions::on_progress every check_every iterations and at the end.
struct TsneProgress {
  int iteration = 0;         // gradient steps done so far
  int iterations = 0;        // the most that will run (TsneOptions::iterations)
  double kl_divergence = 0;  // at this step's start; with the exaggerated P while exaggerating
  double gradient_norm = 0;  // ‖gains ⊙ gradient‖, as scikit-learn's convergence test
  bool exaggerated = false;  // still in the early-exaggeration phase
  double seconds = 0;        // since tsne() started (affinities included)
};

struct TsneOptions {
  // Effective number of neighbours each point's Gaussian covers (5–50 is usual).
  double perplexity = 30;
  // scikit-learn refuses perplexity ≥ N (ConfigError here too); with this set, a too large
  // perplexity is lowered to max(1, (N − 1) / 3) instead, so that small sets (a handful of
  // scenario means) still get a map. TsneResult::perplexity says what was used.
  bool clamp_perplexity = false;
  // Gradient-descent steps at most, exaggeration phase included (scikit-learn's n_iter).
  int iterations = 1000;
  // P is multiplied by this during the first exaggeration_iterations steps, which lets
  // clusters form and separate before the fine structure is fitted.
  double early_exaggeration = 12;
  int exaggeration_iterations = 250;
  // Step size; unset = "auto": max(N / early_exaggeration / 4, 50) (Belkina et al. 2019,
  // scikit-learn's default).
  std::optional<double> learning_rate;
  // Momentum during and after the exaggeration phase.
  double momentum = 0.5;
  double final_momentum = 0.8;
  // Lower bound of the per-coordinate gains (delta-bar-delta).
  double min_gain = 0.01;
  // Stop when ‖gains ⊙ gradient‖ falls to this at a check (scikit-learn's min_grad_norm).
  double min_grad_norm = 1e-7;
  // Stop the second phase when the KL divergence has not improved for more than this many
  // iterations (the first phase uses exaggeration_iterations); checked every check_every.
  int iterations_without_progress = 300;
  int check_every = 50;
  // Barnes-Hut opening angle: a cell of width w at squared distance r² from a point is
  // summarised by its centre of mass when w² < theta²·r². 0 = exact (slow), up to 1.
  double theta = 0.5;
  TsneMethod method = TsneMethod::kAuto;
  // kAuto uses the exact method up to this many points. Measured (docs/benchmarks.md
  // "t-SNE", one thread, 1,000 iterations): exact costs about what Barnes-Hut does at 500
  // points, 1.4× (0.4 s) at 1,000, 2.4× at 1,500 and 4× at 2,000 (its N² P stops fitting
  // in cache); up to 1,000 points the exact objective is worth that fraction of a second.
  int64_t exact_max_points = 1000;
  TsneInit init = TsneInit::kPca;
  std::vector<double> init_embedding;  // [N, 2] for TsneInit::kGiven
  // The random initialisation (and a PCA start's second coordinate when the points have one
  // feature, or all of it when they have no spread). PCA signs are fixed without it.
  uint64_t seed = 0;
  int threads = 0;  // CPU threads; 0 = OpenMP's default. Results do not depend on it.
  // Called every check_every iterations and after the last one; may be empty.
  std::function<void(const TsneProgress&)> on_progress;

  // Throws ConfigError("tsne: ...") for an option out of range.
  void validate() const;
};

struct TsneResult {
  std::vector<double> embedding;  // [N, 2]
  // KL(P ‖ Q) evaluated at the start of the last step (scikit-learn's kl_divergence_): over
  // all pairs for the exact method, over the kNN pairs of P with the Barnes-Hut Z otherwise.
  double kl_divergence = 0;
  int iterations = 0;                      // gradient steps run (scikit-learn's n_iter_ + 1)
  TsneMethod method = TsneMethod::kExact;  // the method used (kAuto resolved)
  double perplexity = 0;                   // the perplexity used (after clamping)
  double learning_rate = 0;                // the step size used ("auto" resolved)
  double affinity_seconds = 0;             // neighbours and P
  double optimisation_seconds = 0;         // initialisation and gradient descent
};

// Embeds `n` points of dimension `d` (row-major [n, d]) into two dimensions. Throws
// ConfigError for bad options, n < 2, d < 1 or perplexity ≥ n (unless clamp_perplexity),
// DataError when a coordinate is NaN or infinite.
TsneResult tsne(const double* points, int64_t n, int64_t d, const TsneOptions& options);

// ---- Building blocks (the stages of tsne(), exposed for tests and benchmarks) ----

// Joint probabilities over the kNN graph: CSR [N, N], symmetric, summing to 1.
struct TsneSparseP {
  int64_t n = 0;
  std::vector<int64_t> indptr;   // [N + 1]
  std::vector<int32_t> indices;  // [nnz], ascending within a row
  std::vector<double> values;    // [nnz]
};

// Conditional probabilities p_{j|i} row by row from squared distances [rows, cols]: each
// row's precision β by scikit-learn's binary search (start 1, ×2 / ÷2 until bracketed, then
// bisection; at most 100 steps; |entropy − ln perplexity| ≤ 1e-5). With `skip_diagonal`
// (the exact method: row i holds the distances to all points) entry (i, i) is left 0.
std::vector<double> tsne_conditional_probabilities(const double* squared_distances, int64_t rows, int64_t cols,
                                                   double perplexity, bool skip_diagonal, int threads = 0);

// Exact joint P [N, N] (scikit-learn's _joint_probabilities, squared): (P + Pᵀ) / sum,
// at least machine epsilon off the diagonal, 0 on it.
std::vector<double> tsne_joint_probabilities(const double* points, int64_t n, int64_t d, double perplexity,
                                             int threads = 0);

// The `k` nearest neighbours of every point (itself excluded; ties by the lower index),
// nearest first: indices [n, k] and squared distances [n, k]. Brute force, blocked BLAS
// products to rank candidates, exact distances for the kept ones.
void tsne_nearest_neighbors(const double* points, int64_t n, int64_t d, int64_t k, std::vector<int32_t>& indices,
                            std::vector<double>& squared_distances, int threads = 0);

// Barnes-Hut joint P (scikit-learn's _joint_probabilities_nn): conditional P over the
// min(N − 1, ⌊3·perplexity + 1⌋) nearest neighbours, P + Pᵀ, divided by its sum.
TsneSparseP tsne_joint_probabilities_nn(const double* points, int64_t n, int64_t d, double perplexity, int threads = 0);

// Gradient of KL(exaggeration·P ‖ Q) at embedding `y` [n, 2] into `gradient` [n, 2]; returns
// that KL when `compute_kl` (scikit-learn's _kl_divergence), else NaN. P dense [n, n].
double tsne_gradient_exact(const std::vector<double>& p, const double* y, int64_t n, double exaggeration,
                           double* gradient, bool compute_kl, int threads = 0);

// The same with sparse P and the Barnes-Hut repulsion at angle `theta` (scikit-learn's
// _kl_divergence_bh: the KL runs over P's non-zeros with the approximated Z).
double tsne_gradient_barnes_hut(const TsneSparseP& p, const double* y, double theta, double exaggeration,
                                double* gradient, bool compute_kl, int threads = 0);

// The initial embedding [n, 2] of tsne() for kPca or kRandom (options.init, options.seed).
std::vector<double> tsne_initial_embedding(const double* points, int64_t n, int64_t d, const TsneOptions& options);

}  // namespace defuse
