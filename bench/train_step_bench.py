#!/usr/bin/python3
"""Milliseconds per training step of the pipeline's two training loops, in Python PyTorch.

The VAE step of train-vae (batch 128) and the classifier step of correct (64 training
images + 64 scenario images, CE + λ·CE, SGD with momentum), with the models of
bench/pipeline_bench.py on random MNIST-shaped data. Used to measure process-wide settings
(OpenMP waits, malloc, threads, precision) that both defuse and Python are subject to:
run it under different environments side by side, e.g.

  OMP_WAIT_POLICY=passive bench/train_step_bench.py --model vae
  GOMP_SPINCOUNT=10000    bench/train_step_bench.py --model vae

usage: train_step_bench.py [--model vae|classifier] [--threads N] [--steps N] [--bf16] [--profile]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from classifier_train import Net  # noqa: E402
from pipeline_bench import CL, Vae, unit, vae_terms  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["vae", "classifier"], default="vae")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (mixed precision)")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's operator table")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x_u8 = torch.randint(0, 256, (60000, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (60000,))
    gen = torch.Generator().manual_seed(1)
    if a.model == "vae":
        model = Vae(1, 28, 28).to(memory_format=CL)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    else:
        model = Net(0.13, 0.31).to(memory_format=CL)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step():
        idx = torch.randint(0, 60000, (128,), generator=gen)
        x = unit(x_u8[idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            if a.model == "vae":
                recon, kl = vae_terms(model, x, gen)
                loss = recon.float().mean() + 2.0 * kl.float().mean()
            else:
                logits = model(x).float()
                loss = F.cross_entropy(logits[:64], y[idx[:64]]) + 0.1 * F.cross_entropy(logits[64:], y[idx[64:]])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - start) * 1000 / a.steps
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "GLIBC_TUNABLES")
                   if k in os.environ)
    print(f"{a.model} step, {a.threads} threads{', bf16' if a.bf16 else ''}{' (' + env + ')' if env else ''}: "
          f"{ms:.2f} ms")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(20):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
