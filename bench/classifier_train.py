#!/usr/bin/env python3
"""The same classifier training as `defuse train-classifier --arch cnn`, in Python PyTorch.

Same architecture (cnn: 16/16 conv, pool, 32/32 conv, pool, fc 128, dropout 0.3), same
optimiser (AdamW, weight decay 5e-4), same one-cycle schedule, batch size, channels-last
input, thread count. Data are held as one uint8 tensor and batches gathered by index, as in
defuse (a torch DataLoader would only be slower). Prints one JSON line.

usage: classifier_train.py DIR [--epochs N] [--threads N] [--batch-size N] [--lr X]
"""
import argparse, gzip, json, math, os, struct, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise FileNotFoundError(stem)


def cbr(i, o):
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class Net(nn.Module):
    def __init__(self, mean, std, classes=10):
        super().__init__()
        self.register_buffer("mean", torch.tensor([mean]).view(1, 1, 1, 1))
        self.register_buffer("inv_std", torch.tensor([1.0 / std]).view(1, 1, 1, 1))
        self.body = nn.Sequential(*cbr(1, 16), *cbr(16, 16), nn.MaxPool2d(2), *cbr(16, 32), *cbr(32, 32),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 49, 128), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(128, classes))

    def forward(self, x):
        return self.body((x - self.mean) * self.inv_std)


def one_cycle(peak, step, total):
    warm = 0.25 * total
    start, end = peak / 25.0, peak / 1e4
    if step < warm:
        return start + (peak - start) * step / warm
    p = min(1.0, (step - warm) / max(1.0, total - warm))
    return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xtr = torch.from_numpy(read_idx(find(args.dir, "train-images-idx3-ubyte")).copy()).unsqueeze(1)
    ytr = torch.from_numpy(read_idx(find(args.dir, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(read_idx(find(args.dir, "t10k-images-idx3-ubyte")).copy()).unsqueeze(1)
    yte = torch.from_numpy(read_idx(find(args.dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
    f = xtr.float() / 255
    model = Net(f.mean().item(), f.std().item())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    n = xtr.shape[0]
    batches = (n + args.batch_size - 1) // args.batch_size
    total, step = batches * args.epochs, 0
    epoch_seconds = []
    start = time.time()
    for epoch in range(args.epochs):
        t = time.time()
        model.train()
        order = torch.randperm(n)
        for b in range(batches):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            x = (xtr[idx].float() / 255).contiguous(memory_format=torch.channels_last)
            y = ytr[idx]
            for g in opt.param_groups:
                g["lr"] = one_cycle(args.lr, step, total)
            step += 1
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        epoch_seconds.append(time.time() - t)
    train_seconds = time.time() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, xte.shape[0], 1000):
            x = (xte[s:s + 1000].float() / 255).contiguous(memory_format=torch.channels_last)
            correct += (model(x).argmax(1) == yte[s:s + 1000]).sum().item()
    print(json.dumps({"epochs": args.epochs, "seconds": train_seconds,
                      "seconds_per_epoch": train_seconds / args.epochs, "epoch_seconds": epoch_seconds,
                      "test_accuracy": correct / xte.shape[0], "threads": args.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
