#!/usr/bin/python3
"""Parity, quality and speed of `defuse cluster` against scikit-learn's
BayesianGaussianMixture, on the same data with the same priors and stopping rule.

Run through scripts/bench_dpgmm.sh (which builds defuse and sets the environment), or:

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 scripts/bench_dpgmm.py --defuse build/release/defuse

Three parts, each printing a Markdown table (docs/dpgmm.md records the figures):

parity   20k×16 points, K = 100 full covariances, both started from the same one-hot
         responsibilities (scikit-learn KMeans labels, passed to defuse with --init-labels and
         to scikit-learn by overriding _initialize_parameters), 30 iterations with tol = 0:
         largest differences of weights, means and the lower bound per iteration.
quality  each from its own k-means initialisation, scikit-learn's stopping rule
         (tol = 1e-3 on its unnormalised lower bound, max_iter 1000): adjusted Rand index
         against the true Gaussian of each point, final lower bound, components used.
speed    the same runs: fit time (scikit-learn's fit(), in a child process per BLAS thread count,
         the fastest kept; defuse's own fit time from --json; the
         defuse process's whole wall time, start-up and file reading included, is shown too),
         and the CPU time of each fit (all threads; steadier than wall time when the
         machine is shared).
         1M×32 runs defuse only unless --sklearn-1m is given (scikit-learn needs ~1 h there).

Data: C Gaussians in D dimensions with random centres (N(0, 4²) per coordinate), random
anisotropic covariances (A·Aᵀ with A Gaussian/√D, scaled by U(0.5, 1.5)), equal weights;
fixed seeds, written as float64 .npy.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import BayesianGaussianMixture

warnings.simplefilter("ignore")  # ConvergenceWarning from the fixed-iteration parity runs


def make_data(n, d, clusters, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (clusters, d))
    labels = rng.integers(0, clusters, n)
    scales = rng.uniform(0.5, 1.5, clusters)
    a = rng.normal(0.0, 1.0, (clusters, d, d)) / np.sqrt(d)
    x = np.empty((n, d))
    noise = rng.normal(0.0, 1.0, (n, d))
    for c in range(clusters):
        idx = labels == c
        x[idx] = centres[c] + (noise[idx] @ a[c].T) * scales[c]
    return x, labels


def sklearn_model(k, resp=None, **kw):
    """BayesianGaussianMixture, optionally started from given responsibilities, recording
    the lower bound of every iteration."""
    bounds = []

    class Recorded(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state):
            if resp is None:
                super()._initialize_parameters(X, random_state)
            else:
                self._initialize(X, resp)

        def _compute_lower_bound(self, log_resp, log_prob_norm):
            value = super()._compute_lower_bound(log_resp, log_prob_norm)
            bounds.append(value)
            return value

    return Recorded(n_components=k, weight_concentration_prior=1.0 / k, **kw), bounds


def run_defuse(binary, points, k, extra, workdir):
    out = os.path.join(workdir, "labels.csv")
    model = os.path.join(workdir, "model.json")
    cmd = [binary, "cluster", "--input", points, "--output", out, "--model-output", model, "-k", str(k),
           "--json", "--quiet"] + extra
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_dpgmm: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    summary = json.loads(proc.stdout)
    labels = np.loadtxt(out, delimiter=",", skiprows=1, usecols=1).astype(int)
    with open(model) as f:
        fitted = json.load(f)
    return summary, labels, fitted, wall


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def parity(args, workdir):
    n, d, k, iters = (4000, 8, 20, 15) if args.quick else (20000, 16, 100, 30)
    x, _ = make_data(n, d, 20, seed=1)
    points = os.path.join(workdir, "parity.npy")
    np.save(points, x)
    init = KMeans(n_clusters=k, n_init=1, random_state=0).fit(x).labels_
    np.save(os.path.join(workdir, "parity_init.npy"), init.astype(np.float64))
    resp = np.zeros((n, k))
    resp[np.arange(n), init] = 1.0
    model, bounds = sklearn_model(k, resp, max_iter=iters, tol=0.0)
    model.fit(x)
    rows = []
    for floor in ["0", "1e-12"]:
        summary, _, fitted, _ = run_defuse(
            args.defuse, points, k,
            ["--init-labels", os.path.join(workdir, "parity_init.npy"), "--max-iter", str(iters), "--tol", "0",
             "--responsibility-floor", floor, "--precision", "float64"], workdir)
        w = np.array(fitted["weights"])
        m = np.array(fitted["means"]).reshape(k, d)
        lb = np.array(summary["lower_bounds"])
        rows.append([f"{n}×{d}, K={k}, {iters} it., floor {floor}",
                     f"{np.max(np.abs(w - model.weights_)):.1e}",
                     f"{np.max(np.abs(m - model.means_) / (np.abs(model.means_) + 1)):.1e}",
                     f"{np.max(np.abs(lb - np.array(bounds)) / np.abs(np.array(bounds))):.1e}"])
    print("\n### Parity (same initial responsibilities, same iterations)\n")
    print(table(["case", "max |Δ weight|", "max |Δ mean|/(|mean|+1)", "max rel. Δ lower bound"], rows))
    return rows


def quality_speed(args, workdir):
    cases = [(5000, 8, 50), (20000, 16, 100)] if args.quick else [(20000, 16, 100), (100000, 32, 100), (1000000, 32, 100)]
    if args.cases:
        cases = [tuple(int(v) for v in c.split("x")) for c in args.cases]
    rows = []
    results = []
    for n, d, k in cases:
        x, truth = make_data(n, d, 20, seed=n + d)
        points = os.path.join(workdir, f"q_{n}_{d}.npy")
        np.save(points, x)
        del x
        record = {"n": n, "d": d, "k": k}
        skip_sklearn = n >= 1000000 and not args.sklearn_1m
        if not skip_sklearn:
            # scikit-learn in a child process per thread setting (BLAS threads are fixed when
            # numpy loads); the fastest is the baseline.
            np.save(os.path.join(workdir, "truth.npy"), truth)
            best = None
            for threads in args.sklearn_threads:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
                result_file = os.path.join(workdir, "sklearn.json")
                subprocess.run([sys.executable, os.path.abspath(__file__), "--sklearn-worker", points,
                                os.path.join(workdir, "truth.npy"), str(k), result_file], env=env, check=True)
                with open(result_file) as f:
                    run = json.load(f)
                run["threads"] = threads
                record[f"sklearn_threads_{threads}"] = run
                if best is None or run["seconds"] < best["seconds"]:
                    best = run
            record["sklearn"] = best
        for precision, screen in [(p, s) for p in args.precisions for s in args.screens]:
            summary, labels, _, wall = run_defuse(
                args.defuse, points, k, ["--max-iter", "1000", "--tol", "1e-3", "--precision", precision,
                                          "--screen", screen, "--seed", "0"] +
                (["--threads", str(args.threads)] if args.threads else []),
                workdir)
            ours = {"seconds": summary["seconds"], "cpu_seconds": summary["cpu_seconds"],
                    "init_seconds": summary["init_seconds"], "wall": wall,
                    "iterations": summary["iterations"], "converged": summary["converged"],
                    "lower_bound": summary["lower_bound"], "ari": float(adjusted_rand_score(truth, labels)),
                    "components_used": summary["components_used"]}
            record[f"defuse_{precision}_{screen}"] = ours
            sk = record.get("sklearn")
            rows.append([
                f"{n // 1000}k×{d}, K={k}", f"{precision}, {screen}",
                f"{sk['seconds']:.1f} s ({sk['iterations']} it., {sk['threads']} thr.)" if sk else "—",
                f"{ours['seconds']:.2f} s ({ours['iterations']} it.; init {ours['init_seconds']:.2f} s; "
                f"process {wall:.2f} s)",
                f"**{sk['seconds'] / ours['seconds']:.0f}×**" if sk else "—",
                f"{sk['cpu_seconds']:.1f} / {ours['cpu_seconds']:.2f} s ({sk['cpu_seconds'] / ours['cpu_seconds']:.0f}×)"
                if sk else f"— / {ours['cpu_seconds']:.2f} s",
                f"{sk['ari']:.4f} / {ours['ari']:.4f}" if sk else f"— / {ours['ari']:.4f}",
                f"{sk['lower_bound']:.1f} / {ours['lower_bound']:.1f} "
                f"({(ours['lower_bound'] - sk['lower_bound']) / abs(sk['lower_bound']):+.1e})" if sk
                else f"— / {ours['lower_bound']:.1f}",
                f"{sk['components_used']} / {ours['components_used']}" if sk else f"— / {ours['components_used']}",
            ])
        results.append(record)
        print(f"bench_dpgmm: {n}×{d} done", file=sys.stderr, flush=True)
    print("\n### Quality and speed (each from its own k-means; tol 1e-3, max_iter 1000)\n")
    print(table(["data", "E-step (precision, screen)", "scikit-learn fit", "defuse fit", "speed-up", "CPU time sklearn / defuse",
                 "ARI sklearn / defuse",
                 "lower bound sklearn / defuse (rel.)", "components > 0.01"], rows))
    return results


def sklearn_worker(points, truth_file, k, out):
    x = np.load(points)
    truth = np.load(truth_file)
    model, _ = sklearn_model(k, None, max_iter=1000, tol=1e-3, random_state=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(x)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    labels = model.predict(x)
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "cpu_seconds": cpu_seconds, "iterations": int(model.n_iter_), "converged": bool(model.converged_),
                   "lower_bound": float(model.lower_bound_), "ari": float(adjusted_rand_score(truth, labels)),
                   "components_used": int((model.weights_ > 0.01).sum())}, f)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--sklearn-worker":
        sklearn_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--defuse", default="build/release/defuse", help="the defuse executable")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test of the script)")
    parser.add_argument("--sklearn-1m", action="store_true", help="also time scikit-learn on 1M×32 (about an hour)")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="defuse --precision values")
    parser.add_argument("--screens", nargs="+", default=["auto"], help="defuse --screen values")
    parser.add_argument("--threads", type=int, default=0, help="defuse --threads (0 = all cores)")
    parser.add_argument("--sklearn-threads", type=int, nargs="+", default=[1, 2],
                        help="BLAS thread counts to time scikit-learn with; the fastest is the baseline")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--cases", nargs="+", help="data sizes as NxDxK (default 20000x16x100 100000x32x100 "
                        "1000000x32x100)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench_dpgmm_") as workdir:
        out = {}
        if not args.skip_parity:
            out["parity"] = parity(args, workdir)
        out["runs"] = quality_speed(args, workdir)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
