// Function multiversioning for the hot loops of the torch-free maths (DP-GMM, k-means,
// t-SNE). The build targets generic x86-64 so that one binary runs everywhere; a function
// marked DEFUSE_CLONES is compiled for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the
// baseline as well, and the loader picks the best one the CPU has (GCC on x86-64 Linux
// only; elsewhere it is an ordinary function). BLAS products are not affected: OpenBLAS
// dispatches its own kernels.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DEFUSE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DEFUSE_CLONES
#endif

// A kernel written once and inlined into each clone that calls it, so that every clone
// compiles it for its own instruction set (a call out of a clone would run the baseline code).
#if defined(__GNUC__)
#define DEFUSE_KERNEL inline __attribute__((always_inline))
#else
#define DEFUSE_KERNEL inline
#endif
