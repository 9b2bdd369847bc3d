#!/usr/bin/python3
"""Decode+classify throughput of the identify search, the Python PyTorch way.

Times three patterns on the same architectures as a defuse workspace's VAE decoder and
zoo classifier (random weights: throughput does not depend on them), with the same
thread count, and prints decodes per second, the ratio of defuse's rate to each (when
--defuse-rate is given), and the achieved GFLOP/s as a share of this machine's SGEMM rate
(torch.mm on 2048x2048 float32, measured in this process):

  reference   one seed per forward pass with Q perturbations (the reference code's loop)
  naive       every seed's perturbations in batches of 1024, NCHW, torch.no_grad()
  tuned       batches of 256, channels-last, torch.inference_mode() (what defuse does)

Run with /usr/bin/python3 (Debian's python3-torch) and, for a fair comparison with defuse,
OPENBLAS_CORETYPE=SkylakeX in the environment (defuse re-executes itself with it).
scripts/bench_identify.sh drives it.
"""
import argparse
import json
import os
import sqlite3
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def side_chain(side, stages=4):
    sides = [side]
    for _ in range(stages):
        sides.append((sides[-1] + 1) // 2)
    return sides


class Upsample(nn.Module):
    """defuse's decoder step (src/defuse/model/vae.cpp): x2 to (th, tw)."""

    def __init__(self, cin, cout, th, tw, subpixel):
        super().__init__()
        self.th, self.tw, self.subpixel = th, tw, subpixel
        if subpixel:
            self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1)
        else:
            k = (4 if th % 2 == 0 else 3, 4 if tw % 2 == 0 else 3)
            self.conv = nn.ConvTranspose2d(cin, cout, k, stride=2, padding=1)

    def forward(self, x):
        if not self.subpixel:
            return self.conv(x)
        y = F.pixel_shuffle(self.conv(x), 2)
        if y.shape[2] != self.th or y.shape[3] != self.tw:
            y = y[:, :, : self.th, : self.tw]
        return y


class Decoder(nn.Module):
    def __init__(self, c, h, w, latent, filters, decoder):
        super().__init__()
        hs, ws = side_chain(h), side_chain(w)
        self.filters, self.lh, self.lw = filters, hs[-1], ws[-1]
        self.expand = nn.Linear(latent, filters * hs[-1] * ws[-1])
        layers = []
        for i in range(4, 0, -1):
            layers.append(Upsample(filters, c if i == 1 else filters, hs[i - 1], ws[i - 1], decoder == "subpixel"))
            if i > 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, z, channels_last=False):
        h = F.relu(self.expand(z)).view(z.shape[0], self.filters, self.lh, self.lw)
        if channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(self.body(h))


def cbr(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class Cnn(nn.Module):
    """defuse's zoo "cnn" (src/defuse/model/classifier.cpp), normalisation included."""

    def __init__(self, c, h, w, classes):
        super().__init__()
        self.register_buffer("mean", torch.full((1, c, 1, 1), 0.13))
        self.register_buffer("inv_std", torch.full((1, c, 1, 1), 1 / 0.31))
        self.body = nn.Sequential(cbr(c, 16), cbr(16, 16), nn.MaxPool2d(2), cbr(16, 32), cbr(32, 32), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x):
        return self.body((x - self.mean) * self.inv_std)


def count_flops(module, *inputs):
    """Multiply-adds x 2 of the convolutions and linear layers in one forward pass."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total[0] += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, nn.ConvTranspose2d):
            kh, kw = m.kernel_size
            total[0] += 2 * inp[0].numel() * (m.out_channels // m.groups) * kh * kw
        elif isinstance(m, nn.Linear):
            total[0] += 2 * out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if m is not module]
    with torch.no_grad():
        module(*inputs)
    for h in handles:
        h.remove()
    return total[0]


def sgemm_rate(n=2048, seconds=2.0):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def reference_pattern(dec, clf, mu, labels, q):
    """The reference's loop: one seed per forward pass, Q perturbations each."""
    kept = 0
    with torch.no_grad():
        for i in range(mu.shape[0]):
            z = mu[i].unsqueeze(0) + torch.randn(q, mu.shape[1]) * 0.5
            x = dec(z)
            pred = clf(x).argmax(1)
            kept += int((pred != labels[i]).sum())
    return kept


def batched_pattern(dec, clf, mu, labels, q, batch, channels_last, inference_mode):
    z_all = (mu.repeat_interleave(q, 0) + torch.randn(mu.shape[0] * q, mu.shape[1]) * 0.5)
    y_all = labels.repeat_interleave(q)
    kept = 0
    ctx = torch.inference_mode() if inference_mode else torch.no_grad()
    with ctx:
        for s in range(0, z_all.shape[0], batch):
            x = dec(z_all[s:s + batch], channels_last)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            pred = clf(x).argmax(1)
            kept += int((pred != y_all[s:s + batch]).sum())
    return kept


def timed(fn, decodes):
    start = time.perf_counter()
    fn()
    return decodes / (time.perf_counter() - start)


def workspace_architecture(ws):
    db = sqlite3.connect(os.path.join(ws, "defuse.db"))
    row = db.execute("SELECT options FROM stage_runs WHERE stage = 'train-vae' AND status = 'complete'"
                     " ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        sys.exit(f"identify_bench: {ws} has no complete train-vae stage")
    return json.loads(row[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", help="read the VAE's latent size, filters and decoder from this workspace")
    p.add_argument("--shape", default="1,28,28", help="C,H,W of the images")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--latent", type=int, default=10)
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--decoder", default="subpixel", choices=["subpixel", "transposed"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=300, help="seeds per pattern")
    p.add_argument("-Q", "--samples", type=int, default=100)
    p.add_argument("--defuse-rate", type=float, help="defuse identify's decodes/s, for the ratios")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args()
    if a.workspace:
        o = workspace_architecture(a.workspace)
        a.latent, a.filters, a.decoder = o["latent"], o["filters"], o["decoder"]
    c, h, w = (int(v) for v in a.shape.split(","))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    dec = Decoder(c, h, w, a.latent, a.filters, a.decoder).eval()
    clf = Cnn(c, h, w, a.classes).eval()
    flops = count_flops(dec, torch.zeros(1, a.latent)) + count_flops(clf, torch.zeros(1, c, h, w))
    mu = torch.randn(a.seeds, a.latent)
    labels = torch.randint(0, a.classes, (a.seeds,))
    decodes = a.seeds * a.samples

    # Warm-up (oneDNN primitive caches, allocator).
    batched_pattern(dec, clf, mu[:20], labels[:20], a.samples, 1024, False, False)
    rates = {"reference": timed(lambda: reference_pattern(dec, clf, mu, labels, a.samples), decodes),
             "naive": timed(lambda: batched_pattern(dec, clf, mu, labels, a.samples, 1024, False, False), decodes)}
    dec_cl = Decoder(c, h, w, a.latent, a.filters, a.decoder).eval().to(memory_format=torch.channels_last)
    clf_cl = Cnn(c, h, w, a.classes).eval().to(memory_format=torch.channels_last)
    batched_pattern(dec_cl, clf_cl, mu[:20], labels[:20], a.samples, 256, True, True)
    rates["tuned"] = timed(lambda: batched_pattern(dec_cl, clf_cl, mu, labels, a.samples, 256, True, True), decodes)
    sgemm = sgemm_rate()

    out = {"threads": a.threads, "decoder": a.decoder, "latent": a.latent, "filters": a.filters,
           "mflop_per_decode": flops / 1e6, "sgemm_gflops": sgemm,
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "python_decodes_per_second": rates}
    lines = [f"architecture: {c}x{h}x{w}, latent {a.latent}, {a.filters} filters, {a.decoder} decoder + zoo cnn: "
             f"{flops / 1e6:.2f} MFLOP per decode+classify",
             f"SGEMM (torch.mm 2048^2 float32, {a.threads} threads): {sgemm:.0f} GFLOP/s "
             f"(OPENBLAS_CORETYPE={out['openblas_coretype'] or 'unset'})"]
    all_rates = dict(rates)
    if a.defuse_rate:
        all_rates = {"defuse": a.defuse_rate, **rates}
    for name, r in all_rates.items():
        g = r * flops / 1e9
        lines.append(f"{name:>10}: {r:9.0f} decodes/s  {g:6.1f} GFLOP/s = {100 * g / sgemm:4.1f}% of SGEMM")
    if a.defuse_rate:
        out["defuse_decodes_per_second"] = a.defuse_rate
        out["ratios"] = {name: a.defuse_rate / r for name, r in rates.items()}
        lines.append("defuse vs reference pattern: {reference:.1f}x   vs naive batched: {naive:.2f}x   "
                     "vs tuned Python: {tuned:.2f}x".format(**out["ratios"]))
    out["gflops"] = {name: r * flops / 1e9 for name, r in all_rates.items()}
    out["sgemm_share"] = {name: r * flops / 1e9 / sgemm for name, r in all_rates.items()}
    print(json.dumps(out) if a.json else "\n".join(lines))


if __name__ == "__main__":
    main()
