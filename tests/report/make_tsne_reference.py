#!/usr/bin/python3
"""Reference values for tests/report/tsne_test.cpp, from scikit-learn's TSNE internals
(Debian's python3-sklearn, 1.2).

Run once; paste its output into tsne_test.cpp between the "BEGIN GENERATED" and
"END GENERATED" markers, inside its "clang-format off" and "on" lines:

    /usr/bin/python3 tests/report/make_tsne_reference.py > /tmp/ref.inc

The data are defined by formulas that the C++ test re-implements (a 64-bit LCG gives
uniforms, Box–Muller turns pairs of them into Gaussians, point n belongs to blob n mod 3),
so only the expected results are embedded:

small   24×4 points: the exact joint P (perplexity 5) of _joint_probabilities, the
        kNN joint P (perplexity 3, 10 neighbours) of _joint_probabilities_nn as a dense
        matrix, and at a fixed embedding the KL divergence and gradient of _kl_divergence
        (exact P) and of _kl_divergence_bh with angle 0 (kNN P).
blobs   150×10 points, perplexity 30: the first 3 steps of the gradient descent from a given
        initial embedding; full TSNE(method="exact") runs from that embedding and from
        init="pca", and TSNE(method="barnes_hut") from init="pca": KL divergence, n_iter_.
"""
import sys

import numpy as np
import sklearn
from scipy.spatial.distance import squareform
from sklearn.manifold import TSNE, _t_sne
from sklearn.neighbors import NearestNeighbors


class Lcg:
    """Uniforms in (0, 1) from a 64-bit LCG (Knuth's MMIX constants), top 53 bits."""

    def __init__(self, state):
        self.state = state

    def uniform(self):
        self.state = (6364136223846793005 * self.state + 1442695040888963407) % (1 << 64)
        return ((self.state >> 11) + 0.5) / float(1 << 53)

    def gaussians(self, count):
        out = []
        while len(out) < count:
            u1, u2 = self.uniform(), self.uniform()
            r = np.sqrt(-2.0 * np.log(u1))
            out += [r * np.cos(2.0 * np.pi * u2), r * np.sin(2.0 * np.pi * u2)]
        return np.array(out[:count])


def blobs(n, d, separation, seed):
    """Point i: separation · e_(i mod 3) (the first three axes) plus N(0, 1) noise."""
    x = Lcg(seed).gaussians(n * d).reshape(n, d)
    for i in range(n):
        x[i, i % 3] += separation
    return x


def embedding(n, scale, seed):
    return scale * Lcg(seed).gaussians(n * 2).reshape(n, 2)


def squared_distances(x):
    diff = x[:, None, :] - x[None, :, :]
    return np.sum(diff * diff, axis=2)


def arr(name, values):
    values = np.asarray(values, dtype=np.float64).ravel()
    body = ", ".join("%.17g" % v for v in values)
    return f'    {{"{name}", {{{body}}}}},\n'


def main():
    out = [f"// scikit-learn {sklearn.__version__}, numpy {np.__version__}\n"]
    out.append("const Reference kReference = {\n")

    # ---- small: affinities and objective ----
    x = blobs(24, 4, 3.0, 2024)
    n = x.shape[0]
    p_exact = _t_sne._joint_probabilities(squared_distances(x), 5.0, 0)
    out.append(arr("small_exact_p", squareform(p_exact)))
    k = min(n - 1, int(3.0 * 3.0 + 1))
    knn = NearestNeighbors(n_neighbors=k).fit(x)
    graph = knn.kneighbors_graph(mode="distance")
    graph.data **= 2
    p_nn = _t_sne._joint_probabilities_nn(graph, 3.0, 0)
    out.append(arr("small_nn_p", p_nn.toarray()))
    y = embedding(n, 2.0, 77)
    kl, grad = _t_sne._kl_divergence(y.ravel(), p_exact, 1, n, 2)
    out.append(arr("small_y", y))
    out.append(arr("small_exact_kl", [kl]))
    out.append(arr("small_exact_grad", grad))
    kl_bh, grad_bh = _t_sne._kl_divergence_bh(y.ravel(), p_nn, 1, n, 2, angle=0.0)
    out.append(arr("small_bh_kl", [kl_bh]))
    out.append(arr("small_bh_grad", grad_bh))

    # ---- blobs: whole runs ----
    x = blobs(150, 10, 6.0, 7)
    y0 = embedding(150, 1e-4, 99)
    # The first steps of the same descent (exaggerated P, momentum 0.5, learning rate 50):
    # later ones amplify the float32 rounding of scikit-learn's P (a 1e-8 relative change of
    # P moves scikit-learn's own embedding by O(1) after 50 steps), so only the KL of the
    # whole run is compared.
    p_blobs = _t_sne._joint_probabilities(squared_distances(x), 30.0, 0)
    steps, _, _ = _t_sne._gradient_descent(
        _t_sne._kl_divergence, y0.ravel().copy(), it=0, n_iter=3, n_iter_check=50, learning_rate=50.0,
        momentum=0.5, args=[p_blobs * 12.0, 1, 150, 2])
    out.append(arr("blobs_given_3_steps", steps))
    model = TSNE(perplexity=30, method="exact", init=y0.copy(), learning_rate="auto").fit(x)
    out.append(arr("blobs_given_kl", [model.kl_divergence_]))
    out.append(arr("blobs_given_iter", [model.n_iter_ + 1]))
    model = TSNE(perplexity=30, method="exact", init="pca", learning_rate="auto", random_state=0).fit(x)
    out.append(arr("blobs_exact_pca_kl", [model.kl_divergence_]))
    model = TSNE(perplexity=30, method="barnes_hut", init="pca", learning_rate="auto", random_state=0).fit(x)
    out.append(arr("blobs_bh_pca_kl", [model.kl_divergence_]))
    out.append("};\n")
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
