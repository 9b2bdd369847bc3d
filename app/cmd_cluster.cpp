// defuse cluster: the variational Dirichlet-process Gaussian mixture on its own, as a
// general clustering tool (points from .csv or .npy, labels to CSV).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "cli.h"
#include "defuse/pipeline/stage_support.h"
#include "defuse/base/atomic_file.h"
#include "defuse/base/error.h"
#include "defuse/base/progress.h"
#include "defuse/distill/dpgmm.h"
#include "defuse/distill/dpgmm_torch.h"
#include "defuse/distill/points_io.h"

namespace defuse::cli {
namespace {

using nlohmann::json;

struct ClusterArgs {
  std::string input, output, model_output, sample_weights, init_labels;
  std::string covariance = "full", weight_prior = "dirichlet_process", init = "kmeans", precision = "auto";
  std::string screen = "auto", engine = "auto";
  double concentration = 0, mean_precision = 0, dof = 0;
  double min_weight = 0.01;
};

// One value per point from a .csv/.npy file with one column (or one row).
std::vector<double> read_column(const std::string& path, int64_t n, const std::string& what) {
  Points p = read_points(path);
  if (p.rows * p.cols != n || (p.rows != 1 && p.cols != 1))
    throw DataError(
        fmt::format("cluster: {} {} holds {}×{} values, expected one per point ({})", what, path, p.rows, p.cols, n));
  return p.values;
}

json model_json(const DpgmmModel& m) {
  return {{"covariance_type", to_string(m.covariance_type)},
          {"weight_prior_type", to_string(m.weight_prior_type)},
          {"components", m.components},
          {"dims", m.dims},
          {"weights", m.weights},
          {"means", m.means},
          {"covariances", m.covariances},
          {"precisions_cholesky", m.precisions_cholesky},
          {"weight_concentration_a", m.weight_concentration_a},
          {"weight_concentration_b", m.weight_concentration_b},
          {"mean_precision", m.mean_precision},
          {"degrees_of_freedom", m.degrees_of_freedom},
          {"original_index", m.original_index},
          {"center", m.center},
          {"priors",
           {{"weight_concentration", m.weight_concentration_prior},
            {"mean_precision", m.mean_precision_prior},
            {"degrees_of_freedom", m.degrees_of_freedom_prior},
            {"mean", m.mean_prior},
            {"covariance", m.covariance_prior}}}};
}

const Registrar registrar(
    "cluster",
    "Cluster points (.csv or .npy) with the variational Dirichlet-process Gaussian mixture and write their labels",
    [](CLI::App& app, Context& ctx) -> Action {
      auto a = std::make_shared<ClusterArgs>();
      auto o = std::make_shared<DpgmmOptions>();
      add_common_options(app, ctx, /*with_workspace=*/false);
      add_device_option(app, ctx);
      app.add_option("-i,--input", a->input,
                     "Points: .csv (one point per line, optional header) or .npy (float32/float64, shape N×D)")
          ->required();
      app.add_option("-o,--output", a->output, "Labels CSV to write: index,label,probability (one line per point)")
          ->required();
      app.add_option("--model-output", a->model_output,
                     "Also write the fitted mixture (weights, means, covariances, posterior parameters) as JSON");
      app.add_option("-k,--components", o->components, "Truncation level K: the most components the mixture can use")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      app.add_option("--covariance", a->covariance, "Covariance of each component: full, diag, spherical or tied")
          ->check(CLI::IsMember({"full", "diag", "spherical", "tied"}))
          ->capture_default_str();
      app.add_option("--weight-prior", a->weight_prior,
                     "Prior on the weights: dirichlet_process (stick-breaking) or dirichlet_distribution")
          ->check(CLI::IsMember({"dirichlet_process", "dirichlet_distribution"}))
          ->capture_default_str();
      app.add_option("--concentration", a->concentration,
                     "Concentration α of the weight prior; smaller favours fewer components (default 1/K)");
      app.add_option("--mean-precision-prior", a->mean_precision, "Precision β0 of the prior on the means (default 1)");
      app.add_option("--dof-prior", a->dof, "Degrees of freedom ν0 of the Wishart prior, > D−1 (default D)");
      app.add_option("--reg-covar", o->reg_covar,
                     "Added to the diagonal of every covariance to keep it positive definite")
          ->capture_default_str();
      app.add_option("--tol", o->tol,
                     "Stop when the lower bound changes by less than this (unnormalised, as scikit-learn)")
          ->capture_default_str();
      app.add_option("--max-iter", o->max_iter, "Iterations per fit at most")->capture_default_str();
      app.add_option("--n-init", o->n_init, "Fits from different initialisations; the best lower bound is kept")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      app.add_option("--init", a->init,
                     "Initial responsibilities: kmeans, k-means++, random_from_data, random, or the labels of "
                     "--init-labels")
          ->check(CLI::IsMember({"kmeans", "k-means++", "random_from_data", "random"}))
          ->capture_default_str();
      app.add_option("--init-labels", a->init_labels,
                     "Start from these labels (.csv/.npy, one integer in [0, K) per point) instead of --init");
      app.add_option("--sample-weights", a->sample_weights,
                     "Non-negative weight per point (.csv/.npy, one column); 2 counts a point twice");
      app.add_option("--seed", o->seed, "Random seed of the initialisation")->capture_default_str();
      app.add_option("--prune-below", o->prune_below,
                     "Drop components whose weight falls below this while fitting (0 = keep all K)")
          ->capture_default_str();
      app.add_option("--responsibility-floor", o->responsibility_floor,
                     "Responsibilities at or below this are left out of the M-step (0 = exact, slower)")
          ->capture_default_str();
      app.add_option("--precision", a->precision,
                     "Arithmetic of the E-step products: auto (float32 screen, float64-exact results for full/tied "
                     "covariances), float64, or float32 (float32 error with diag/spherical)")
          ->check(CLI::IsMember({"auto", "float64", "float32"}))
          ->capture_default_str();
      app.add_option("--screen", a->screen,
                     "How the E-step finds the pairs to evaluate exactly (full/tied): auto, bounds (certified "
                     "eigenvalue bounds) or product (expanded product); the results are the same")
          ->check(CLI::IsMember({"auto", "bounds", "product"}))
          ->capture_default_str();
      app.add_option("--engine", a->engine,
                     "auto (built-in BLAS engine on cpu, LibTorch on cuda), builtin, or torch (LibTorch on --device)")
          ->check(CLI::IsMember({"auto", "builtin", "torch"}))
          ->capture_default_str();
      app.add_option("--min-weight", a->min_weight, "Weight above which a component counts as used in the summary")
          ->capture_default_str();

      return [a, o](Context& ctx) {
        prepare_compute(ctx);
        DpgmmOptions opts = *o;
        opts.covariance_type = parse_covariance_type(a->covariance);
        opts.weight_prior_type = parse_weight_prior_type(a->weight_prior);
        opts.precision = parse_dpgmm_precision(a->precision);
        opts.screen = parse_dpgmm_screen(a->screen);
        opts.threads = ctx.threads;
        if (a->concentration != 0) opts.weight_concentration_prior = a->concentration;
        if (a->mean_precision != 0) opts.mean_precision_prior = a->mean_precision;
        if (a->dof != 0) opts.degrees_of_freedom_prior = a->dof;
        const bool torch_engine = a->engine == "torch" || (a->engine == "auto" && ctx.device != "cpu");
        if (a->engine == "builtin" && ctx.device != "cpu")
          throw ConfigError("cluster: the built-in engine runs on the CPU only; use --engine torch for --device " +
                            ctx.device);
        if (torch_engine) opts.engine = torch_dpgmm_engine(ctx.device);

        Progress timer(*ctx.err, "", 0, false);
        Points points = read_points(a->input);
        ctx.info(fmt::format("cluster: {} points × {} features from {} in {}", points.rows, points.cols, a->input,
                             format_duration(timer.elapsed_seconds())));
        std::vector<double> weights;
        if (!a->sample_weights.empty()) weights = read_column(a->sample_weights, points.rows, "sample weights");
        if (!a->init_labels.empty()) {
          auto labels = read_column(a->init_labels, points.rows, "initial labels");
          opts.init = DpgmmInit::kGiven;
          opts.init_labels.resize(labels.size());
          for (size_t i = 0; i < labels.size(); ++i) {
            if (labels[i] != std::floor(labels[i]) || labels[i] < 0 ||
                labels[i] >= static_cast<double>(opts.components))
              throw DataError(fmt::format("cluster: initial label {} of point {} is not an integer in [0, {})",
                                          labels[i], i, opts.components));
            opts.init_labels[i] = static_cast<int32_t>(labels[i]);
          }
        } else {
          opts.init = parse_dpgmm_init(a->init);
        }

        std::unique_ptr<Progress> bar;
        opts.on_iteration = [&](const DpgmmIteration& it) {
          if (!bar || it.iteration == 1) {
            if (bar) bar->finish();
            bar = std::make_unique<Progress>(
                *ctx.err, opts.n_init > 1 ? fmt::format("fit {}/{}", it.init + 1, opts.n_init) : "fit", opts.max_iter,
                ctx.progress());
          }
          bar->update(it.iteration,
                      fmt::format("bound {:.6g}  Δ {:.3g}  K {}", it.lower_bound, it.change, it.components));
        };
        DpgmmResult r =
            fit_dpgmm(points.values.data(), points.rows, points.cols, opts, weights.empty() ? nullptr : weights.data());
        if (bar) bar->finish();
        for (const auto& w : r.warnings) ctx.warn("cluster: warning: " + w);
        if (!r.converged && opts.max_iter > 0)
          ctx.warn(fmt::format("cluster: warning: did not converge in {} iterations (tol {:g}); raise --max-iter",
                               r.iterations, opts.tol));

        std::string csv = "index,label,probability\n";
        csv.reserve(csv.size() + static_cast<size_t>(points.rows) * 24);
        for (int64_t i = 0; i < points.rows; ++i)
          csv += fmt::format("{},{},{:.6g}\n", i, r.labels[i], r.probabilities[i]);
        write_file_atomic(a->output, csv);
        if (!a->model_output.empty()) write_file_atomic(a->model_output, model_json(r.model).dump(1) + "\n");

        const int64_t used = r.model.components_used(a->min_weight);
        json summary = {{"input", a->input},
                        {"output", a->output},
                        {"points", points.rows},
                        {"features", points.cols},
                        {"components", r.model.components},
                        {"components_used", used},
                        {"weights", r.model.weights},
                        {"lower_bound", r.lower_bound},
                        {"lower_bounds", r.lower_bounds},
                        {"converged", r.converged},
                        {"iterations", r.iterations},
                        {"best_init", r.best_init},
                        {"seconds", r.seconds},
                        {"cpu_seconds", r.cpu_seconds},
                        {"init_seconds", r.init_seconds},
                        {"covariance", to_string(opts.covariance_type)},
                        {"precision", to_string(opts.precision)},
                        {"screen", to_string(opts.screen)},
                        {"engine", torch_engine ? "torch" : "builtin"},
                        {"device", ctx.device},
                        {"warnings", r.warnings}};
        if (!a->model_output.empty()) summary["model_output"] = a->model_output;
        ctx.result(summary,
                   fmt::format("cluster: {} points, {} of {} components used (weight > {:g}), lower bound {:.6g}, "
                               "{} in {} iterations, {} -> {}",
                               points.rows, used, r.model.components, a->min_weight, r.lower_bound,
                               r.converged ? "converged" : "not converged", r.iterations, format_duration(r.seconds),
                               a->output));
      };
    },
    75);

}  // namespace
}  // namespace defuse::cli
