#!/usr/bin/python3
"""Speed and quality of defuse's t-SNE (src/defuse/report/tsne.h) against scikit-learn's
TSNE on the same data with the same settings.

    scripts/bench_tsne.py [--sizes 5000,20000] [--threads 2] [--repeat 2] [--tool PATH]

Builds build/release/tests/defuse_tsne_tool if --tool is not given. Data: C = 10 Gaussian
blobs in D = 10 dimensions (centres N(0, 4²) per coordinate, unit noise), the shape of a
VAE's latent codes. Both sides: Barnes-Hut, perplexity 30, 1000 iterations, theta (angle)
0.5, learning rate "auto", early exaggeration 12, PCA initialisation, the same number of
OpenMP threads (scikit-learn's n_jobs for the neighbours, OMP_NUM_THREADS for its gradient;
the script sets OMP_NUM_THREADS, OMP_WAIT_POLICY=passive and OPENBLAS_CORETYPE=SkylakeX and
re-executes itself so that both sides run in that environment).
Times: scikit-learn's fit() and defuse's tsne() call (file reading excluded on both sides),
the best of --repeat runs, the two sides alternating. Quality: final KL divergence (each
side's own, computed the same way), trustworthiness (k = 5, scikit-learn's function, on a
random subset of at most 5,000 points) and 5-NN accuracy of the blob labels in 2-D.
Prints a Markdown table (docs/benchmarks.md "t-SNE" records the figures).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE, trustworthiness
from sklearn.neighbors import KNeighborsClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(n, d=10, clusters=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (clusters, d))
    labels = rng.integers(0, clusters, n)
    return centres[labels] + rng.normal(0.0, 1.0, (n, d)), labels


def quality(x, labels, y, rng):
    subset = rng.choice(len(x), size=min(len(x), 5000), replace=False)
    trust = trustworthiness(x[subset], y[subset], n_neighbors=5)
    knn = KNeighborsClassifier(n_neighbors=6).fit(y, labels)
    # Leave-one-out: each point's 6 nearest include itself; drop it.
    idx = knn.kneighbors(y, return_distance=False)[:, 1:]
    votes = labels[idx]
    pred = np.array([np.bincount(v, minlength=labels.max() + 1).argmax() for v in votes])
    return trust, float(np.mean(pred == labels))


def run_sklearn(x, threads):
    model = TSNE(perplexity=30.0, n_iter=1000, angle=0.5, init="pca", learning_rate="auto",
                 method="barnes_hut", random_state=0, n_jobs=threads)
    start = time.perf_counter()
    y = model.fit_transform(x)
    return time.perf_counter() - start, float(model.kl_divergence_), y


def run_defuse(tool, path, threads, workdir):
    out = os.path.join(workdir, "embedding.npy")
    cmd = [tool, path, out, "--method", "barnes_hut", "--perplexity", "30", "--iterations", "1000",
           "--theta", "0.5", "--init", "pca", "--threads", str(threads)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return result["seconds"], result["kl_divergence"], np.load(out), result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tool", default=None)
    args = parser.parse_args()
    if os.environ.get("BENCH_TSNE_CHILD") != "1":
        # OpenMP and OpenBLAS read these when they load: set them, then start again so that
        # scikit-learn's OpenMP runtime sees them too. Passive waiting: on a shared machine a
        # spinning thread that waits for a core costs more than a wake-up (both sides alike).
        os.environ["BENCH_TSNE_CHILD"] = "1"
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")  # OpenBLAS 0.3.21 does not know Zen 5
        os.execv(sys.executable, [sys.executable] + sys.argv)
    tool = args.tool
    if tool is None:
        tool = os.path.join(ROOT, "build/release/tests/defuse_tsne_tool")
        subprocess.run(["cmake", "--preset", "release"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "release", "--target", "defuse_tsne_tool"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for n in [int(s) for s in args.sizes.split(",")]:
            x, labels = make_data(n)
            path = os.path.join(workdir, f"points_{n}.npy")
            np.save(path, x)
            best = {"sklearn": None, "defuse": None}
            for r in range(args.repeat):
                for side in (("sklearn", "defuse") if r % 2 == 0 else ("defuse", "sklearn")):
                    if side == "sklearn":
                        seconds, kl, y = run_sklearn(x, args.threads)
                        extra = ""
                    else:
                        seconds, kl, y, info = run_defuse(tool, path, args.threads, workdir)
                        extra = f" (affinities {info['affinity_seconds']:.2f} s)"
                    print(f"  n={n} run {r + 1} {side}: {seconds:.2f} s, KL {kl:.4f}{extra}", flush=True)
                    if best[side] is None or seconds < best[side][0]:
                        best[side] = (seconds, kl, y)
            rng = np.random.default_rng(1)
            q = {side: quality(x, labels, best[side][2], rng) for side in best}
            rows.append((n, best, q))
    print(f"\nload average {os.getloadavg()[0]:.2f} at end\n")
    print("| points | scikit-learn | defuse | speed-up | KL sklearn / defuse | trustworthiness sklearn / defuse "
          "| 5-NN accuracy sklearn / defuse |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, best, q in rows:
        s, d = best["sklearn"], best["defuse"]
        print(f"| {n}×10 | {s[0]:.2f} s | {d[0]:.2f} s | {s[0] / d[0]:.1f}× | {s[1]:.4f} / {d[1]:.4f} "
              f"| {q['sklearn'][0]:.4f} / {q['defuse'][0]:.4f} | {q['sklearn'][1]:.4f} / {q['defuse'][1]:.4f} |")


if __name__ == "__main__":
    sys.exit(main())
