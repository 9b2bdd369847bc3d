#!/usr/bin/python3
"""How scikit-learn's variational DP-GMM behaves on few points, the case that made distill cap
its truncation (docs/benchmarks.md, "Validity"): one point per seed (the mean latent code of the
seed's kept failures, as `distill --points seeds` clusters them), fit with
BayesianGaussianMixture as the reference configures it (Dirichlet process, concentration 1/K,
full covariances, k-means initialisation) for several K; prints how many components hold a
point and their sizes.

  /usr/bin/python3 bench/dpgmm_few_points.py --workspace WS [--components 100,20,10,5]
"""
import argparse
import os
import sys

import numpy as np
from sklearn.mixture import BayesianGaussianMixture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import independent_reader as ir  # noqa: E402  (reads defuse's failures.pt)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--components", default="100,20,10,5")
    args = ap.parse_args()
    t = ir.archive_tensors(os.path.join(args.workspace, "identify", "failures.pt"))
    latent, seed = t["latent"].numpy(), t["seed_index"].numpy()
    points = np.stack([latent[seed == s].mean(0) for s in np.unique(seed)])
    print(f"{points.shape[0]} seed points in {points.shape[1]} dimensions")
    for k in (int(c) for c in args.components.split(",")):
        n = min(k, len(points))  # k-means needs at least as many points as clusters
        m = BayesianGaussianMixture(n_components=n, weight_concentration_prior_type="dirichlet_process",
                                    weight_concentration_prior=1.0 / k, covariance_type="full", max_iter=1000,
                                    random_state=0, init_params="kmeans").fit(points)
        sizes = np.bincount(m.predict(points))
        sizes = sorted(sizes[sizes > 0].tolist(), reverse=True)
        print(f"K = {k:>3}: {len(sizes)} components hold a point; sizes {sizes[:10]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
