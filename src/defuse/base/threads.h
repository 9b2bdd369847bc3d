// Thread counts for the torch-free maths that runs on OpenMP (DP-GMM, k-means, t-SNE).
#pragma once

namespace defuse {

// The number of threads a `threads` option asks for: itself when positive, otherwise
// OpenMP's default (every core, or OMP_NUM_THREADS), and at least 1.
int resolve_threads(int threads);

// Called first in every parallel region that calls BLAS: the products there are per block
// and must run on the calling thread. OpenBLAS's OpenMP build runs single-threaded inside
// an active parallel region, but a team of one is not active, and it would then start
// omp_get_max_threads() threads of its own for every small product (ruinous when the
// machine is busy). Setting this task's nthreads ICV makes it use one.
void blas_on_this_thread();

}  // namespace defuse
