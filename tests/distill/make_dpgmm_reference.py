#!/usr/bin/python3
"""Reference values for tests/distill/dpgmm_test.cpp, from scikit-learn's
BayesianGaussianMixture (Debian's python3-sklearn, 1.2).

Run once; paste its output into tests/distill/dpgmm_reference.h between the "BEGIN GENERATED" and
"END GENERATED" markers, inside its "clang-format off" and "on" lines (or run with --check to compare with what is there):

    /usr/bin/python3 tests/distill/make_dpgmm_reference.py > /tmp/ref.inc

The data and the initial responsibilities are defined by formulas that the C++ test
re-implements (points: a fixed pseudo-random sequence around three centres; responsibilities:
r_nk ∝ 1 + ((7n + 3k) mod 5)), so only the expected results are embedded. scikit-learn takes
no initial responsibilities, so `_initialize_parameters` is replaced by one that uses them
(the same M-step from responsibilities that scikit-learn runs after k-means).
"""
import sys

import numpy as np
import sklearn
from sklearn.mixture import BayesianGaussianMixture

N, D, K = 60, 3, 5
CENTRES = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])


def lcg_uniform(count, state=12345):
    """Uniforms in (0, 1) from a 64-bit LCG (Knuth's MMIX constants), top 53 bits."""
    out = []
    for _ in range(count):
        state = (6364136223846793005 * state + 1442695040888963407) % (1 << 64)
        out.append(((state >> 11) + 0.5) / float(1 << 53))
    return np.array(out)


def make_points():
    """Point n: CENTRES[n % 3] + scale * (u - 0.5) * 2 per feature, scales by cluster."""
    u = lcg_uniform(N * D).reshape(N, D)
    scales = np.array([1.0, 0.5, 1.5])
    return CENTRES[np.arange(N) % 3] + scales[np.arange(N) % 3][:, None] * (2.0 * u - 1.0)


def make_responsibilities(n, k):
    r = 1.0 + ((7 * np.arange(n)[:, None] + 3 * np.arange(k)[None, :]) % 5)
    return r / r.sum(axis=1, keepdims=True)


def fit(X, resp, **kw):
    bounds = []

    class Given(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state):
            self._initialize(X, resp)

        def _compute_lower_bound(self, log_resp, log_prob_norm):
            value = super()._compute_lower_bound(log_resp, log_prob_norm)
            bounds.append(value)
            return value

    model = Given(n_components=resp.shape[1], **kw).fit(X)
    return model, bounds


def arr(name, values):
    values = np.asarray(values, dtype=np.float64).ravel()
    body = ", ".join(repr(float(v)) for v in values)
    return f"    {{\"{name}\", {{{body}}}}},\n"


def main():
    X = make_points()
    resp = make_responsibilities(N, K)
    queries = np.array([[0.1, -0.2, 0.3], [3.5, 1.2, -1.5], [-2.0, 4.0, 0.0], [10.0, 10.0, 10.0]])
    out = [f"// scikit-learn {sklearn.__version__}, numpy {np.__version__}\n"]
    cases = [
        ("full_dp", dict(covariance_type="full")),
        ("diag_dp", dict(covariance_type="diag")),
        ("spherical_dp", dict(covariance_type="spherical")),
        ("tied_dp", dict(covariance_type="tied")),
        ("full_dirichlet", dict(covariance_type="full", weight_concentration_prior_type="dirichlet_distribution")),
        ("full_priors", dict(covariance_type="full", weight_concentration_prior=0.5, mean_precision_prior=0.1,
                             mean_prior=[1.0, 1.0, 1.0], degrees_of_freedom_prior=5.0,
                             covariance_prior=np.diag([2.0, 1.0, 0.5]) + 0.1)),
    ]
    for name, kw in cases:
        # Fixed number of iterations (tol = 0 never stops early) ...
        model, bounds = fit(X, resp, max_iter=8, tol=0.0, reg_covar=1e-6, **kw)
        out.append(f"const Reference k_{name} = {{\n")
        out.append(arr("weights", model.weights_))
        out.append(arr("means", model.means_))
        out.append(arr("covariances", model.covariances_))
        out.append(arr("precisions_cholesky", model.precisions_cholesky_))
        out.append(arr("lower_bounds", bounds))
        out.append(arr("predict_proba", model.predict_proba(queries)))
        # ... and to convergence with scikit-learn's default stopping rule.
        model, bounds = fit(X, resp, max_iter=500, tol=1e-3, reg_covar=1e-6, **kw)
        out.append(arr("converged_lower_bounds", bounds))
        out.append(arr("converged_weights", model.weights_))
        out.append(arr("converged_means", model.means_))
        out.append(f"    {{\"n_iter\", {{{model.n_iter_}}}}},\n")
        out.append("};\n")
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
