#!/usr/bin/env python3
"""The scaling model of docs/benchmarks.md ("Distribution"): data-parallel steps on N nodes,
T(N) = C/N + A(N) with a ring allreduce A(N) = 2(N-1)/N * S / bandwidth + 2(N-1) * latency.
C and S for the MNIST models are measured (bench/distributed_bench.sh); ResNet-18 at 64x64 is
an estimate. Usage: bench/scaling_model.py [--bandwidth GB/s] [--latency-us US]"""
import argparse

p = argparse.ArgumentParser()
p.add_argument("--bandwidth", type=float, default=1.1, help="effective GB/s between nodes (10 GbE: 1.1)")
p.add_argument("--latency-us", type=float, default=50.0, help="per hop")
a = p.parse_args()
models = {  # name: (compute ms per 128-image step on one 2-core node, gradient bytes)
    "MNIST cnn": (37.5, 0.87e6),
    "MNIST VAE": (44.7, 2.5e6),
    "ResNet-18 64x64 (estimate)": (570.0, 44.7e6),
}
def allreduce_ms(n, size):
    return 2 * (n - 1) / n * size / (a.bandwidth * 1e9) * 1e3 + 2 * (n - 1) * a.latency_us / 1e3
print(f"{'model':28s} {'N':>3s} {'fixed batch: speedup':>22s} {'eff':>5s} {'128 per rank: eff':>18s}")
for name, (c, s) in models.items():
    for n in (2, 8, 32):
        t = c / n + allreduce_ms(n, s)
        print(f"{name:28s} {n:3d} {c / t:22.2f} {100 * c / t / n:4.0f}% {100 * c / (c + allreduce_ms(n, s)):17.0f}%")
