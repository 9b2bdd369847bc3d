#!/usr/bin/env python3
"""How much slower this CPU computes on subnormal floats, and what flushing them does.

The SSIM loss convolves the squares of the decoder's sigmoid outputs; below 1e-19 those
squares are subnormal (float32's smallest normal is 1.18e-38). This times the SSIM's grouped
11x11 Gaussian convolution (200 images, 5 statistics x 3 channels, 32x32) and an element-wise
square on normal values, on subnormal ones, and with torch.set_flush_denormal(True), which is
what defuse's flush_denormals() sets in every stage (docs/benchmarks.md, "Time to result: GTSRB").

usage: /usr/bin/python3 bench/denormal_conv.py [--threads 1] [--repeats 3]
"""
import argparse
import time

import torch


def timed(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(200, 15, 32, 32)
    k = torch.rand(15, 1, 11, 11)
    half = x.clone()
    half[:, :, :, :16] = 1e-40
    tiny = x * 1e-20
    squares = tiny * tiny  # every value subnormal
    conv = lambda t: (lambda: torch.nn.functional.conv2d(t, k, padding=5, groups=15))
    rows = [("conv, normal values", conv(x)), ("conv, half subnormal", conv(half)),
            ("conv, all subnormal", conv(squares)), ("square of 1e-20 (subnormal results)", lambda: tiny * tiny)]
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        for name, fn in rows:
            print(f"{name:40s} flush={str(flush):5s} {timed(fn, a.repeats * (10 if 'square' in name else 1)):.4f} s")


if __name__ == "__main__":
    main()
