#!/usr/bin/env python3
"""An independent reader: a small ensemble, trained apart from defuse, that reads defuse's failures.

defuse decides with its own judges whether a failure it found is genuine (a careful reader would
still give the decode its seed's label) or a label change (the decode turned into another class,
and the classifier under test is right). To measure how often defuse is right, the benchmarks need
a reader that shares nothing with those judges: other architectures (5x5 LeNet-style, wide VGG-style
with dropout, all-convolutional with strided convs and global average pooling, where defuse's
judges are its zoo `cnn` and a small ResNet), other augmentation (a random affine per image, where
defuse's judges see +-2 px shifts), other optimiser (SGD with Nesterov momentum, where defuse uses
AdamW one-cycle), other seeds. The pipeline never uses it; only benchmarks do.

Run with Debian's /usr/bin/python3 (python3-torch and numpy; no torchvision).

usage:
  independent_reader.py train --data SPEC --out DIR [--epochs 4] [--threads 2] [--seed 12345]
                              [--limit N]
      SPEC: mnist:DIR | fashion-mnist[:DIR] | gtsrb:DIR. Trains the 3 models and saves them as
      TorchScript in DIR with DIR/reader.json (accuracies, spec, epochs, seeds, image shape,
      seconds). --limit N trains on the first N training images only (smoke tests).
  independent_reader.py read --reader DIR --workspace WS [--json] [--confidence 0.5] [--threads 2]
      Reads WS/identify/failures.pt (and the latest distill run's scenarios in WS/defuse.db):
      how often the reader sees the seed label, the classifier's prediction, or something else,
      against defuse's verdicts when present.
  independent_reader.py heldout --reader DIR --workspace WS [--json] [--confidence 0.5]
                                [--threads 2]
      Reads WS/evaluate/heldout.pt: each evaluated model's accuracy on all draws and on the
      draws the reader confidently reads as the draw's label.

A reading: mean softmax over the 3 models; label = argmax; confident when that mean probability
is >= --confidence and all 3 models' own argmax agree with it.
"""
import argparse
import gzip
import json
import math
import os
import sqlite3
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
READER_FORMAT = "defuse-independent-reader-1"
VERDICTS = ("genuine", "label-change", "ambiguous")  # defuse's Verdict enum, in its order


class UsageError(Exception):
    """A problem the user can fix (bad spec, missing file, shape mismatch): one line, exit 2."""


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes, the only type MNIST-style files use
        raise UsageError(f"{path}: not an IDX file of unsigned bytes")
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def find_idx(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise UsageError(f"{directory}: neither {stem} nor {stem}.gz found")


def load_idx_dataset(directory):
    def images(stem):
        return torch.from_numpy(read_idx(find_idx(directory, stem)).copy()).unsqueeze(1)

    def labels(stem):
        return torch.from_numpy(read_idx(find_idx(directory, stem)).astype(np.int64))

    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def read_ppm(path):
    """A binary PPM (P6, maxval < 256) as uint8 [3, H, W]. Header tokens may be separated by any
    whitespace and interleaved with # comments (OpenCV writes one)."""
    with open(path, "rb") as f:
        data = f.read()
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        tokens.append(data[start:pos])
    pos += 1  # the single whitespace byte that ends the header
    if tokens[0] != b"P6":
        raise UsageError(f"{path}: not a binary PPM (P6)")
    width, height, maxval = (int(t) for t in tokens[1:])
    if maxval > 255:
        raise UsageError(f"{path}: 16-bit PPM not supported")
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * 3, offset=pos)
    return torch.from_numpy(pixels.reshape(height, width, 3).transpose(2, 0, 1).copy())


def load_gtsrb(directory, seed, side=32):
    """The official training layout, Roi-cropped and resized to side x side. There is no test
    split here, so 20% of each class's tracks (a track: ~30 frames of one physical sign) are
    held out; holding out whole tracks keeps near-duplicate frames out of both splits at once."""
    root = os.path.join(directory, "Final_Training", "Images")
    if not os.path.isdir(root):
        raise UsageError(f"gtsrb: {root} not found (expected DIR/Final_Training/Images/000NN/)")
    rng = np.random.default_rng(seed)
    splits = {"train": ([], []), "test": ([], [])}
    for class_name in sorted(os.listdir(root)):
        class_dir = os.path.join(root, class_name)
        if not os.path.isdir(class_dir):
            continue
        csv = os.path.join(class_dir, f"GT-{class_name}.csv")
        with open(csv, "r", newline="") as f:
            lines = [line.rstrip("\r\n") for line in f if line.strip()]
        header = lines[0].lstrip("\ufeff").split(";")
        col = {name: i for i, name in enumerate(header)}
        rows = [line.split(";") for line in lines[1:]]
        tracks = sorted({row[col["Filename"]].split("_")[0] for row in rows})
        held = set(rng.permutation(tracks)[:max(1, round(0.2 * len(tracks)))]) if len(tracks) > 1 else set()
        for row in rows:
            name = row[col["Filename"]]
            big_w, big_h = int(row[col["Width"]]), int(row[col["Height"]])
            x1, y1 = int(row[col["Roi.X1"]]), int(row[col["Roi.Y1"]])
            x2, y2 = int(row[col["Roi.X2"]]), int(row[col["Roi.Y2"]])
            image = read_ppm(os.path.join(class_dir, name))
            h, w = image.shape[1:]
            # The Roi refers to the CSV's Width x Height, but this copy's images are already
            # resized: scale it, rounding outwards (as defuse does) so it never comes out empty.
            cx1, cy1 = x1 * w // big_w, y1 * h // big_h
            cx2, cy2 = -(-x2 * w // big_w), -(-y2 * h // big_h)
            cx2, cy2 = max(cx1 + 1, min(cx2, w)), max(cy1 + 1, min(cy2, h))
            crop = image[:, cy1:cy2, cx1:cx2].unsqueeze(0).float()
            crop = F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False,
                                 antialias=True)
            part = splits["test" if name.split("_")[0] in held else "train"]
            part[0].append(crop.round().clamp(0, 255).to(torch.uint8))
            part[1].append(int(row[col["ClassId"]]))
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    if not xtr:
        raise UsageError(f"gtsrb: no images listed under {root}")
    # The folders list the images class by class; shuffle once so that --limit N still sees
    # every class.
    order = torch.from_numpy(rng.permutation(len(ytr)))
    return torch.cat(xtr)[order], torch.tensor(ytr)[order], torch.cat(xte), torch.tensor(yte)


def load_data(spec, seed):
    """SPEC -> (train images uint8 [N,C,H,W], train labels, test images, test labels)."""
    kind, _, directory = spec.partition(":")
    if kind == "mnist":
        if not directory:
            raise UsageError("mnist needs a directory: mnist:DIR")
        return load_idx_dataset(directory)
    if kind == "fashion-mnist":
        return load_idx_dataset(directory or DEFAULT_FASHION_DIR)
    if kind == "gtsrb":
        if not directory:
            raise UsageError("gtsrb needs a directory: gtsrb:DIR")
        return load_gtsrb(directory, seed)
    raise UsageError(f"unknown data spec {spec!r} (mnist:DIR, fashion-mnist[:DIR], gtsrb:DIR)")


# ---------------------------------------------------------------------------------------------
# Models: three families none of which is defuse's (3x3 conv pairs + FC 128, or a ResNet)
# ---------------------------------------------------------------------------------------------

class Normalised(nn.Module):
    """Takes [0,1] images and normalises per channel inside, so a saved model needs nothing but
    the image to read it."""

    def __init__(self, body, mean, std):
        super().__init__()
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        self.body = body

    def forward(self, x):
        return self.body((x - self.mean) * self.inv_std)


def flat_features(features, shape):
    with torch.no_grad():
        return features(torch.zeros(1, *shape)).numel()


def lenet(shape, classes):
    """LeNet-5 in its Caffe proportions (5x5 convs of 20 and 50 channels, FC 500), with batch
    norm so that a few epochs of SGD suffice."""
    c = shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 20, 5, padding=2, bias=False), nn.BatchNorm2d(20), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5, bias=False), nn.BatchNorm2d(50), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten())
    return nn.Sequential(features, nn.Linear(flat_features(features, shape), 500), nn.ReLU(inplace=True),
                         nn.Dropout(0.25), nn.Linear(500, classes))


def vgg(shape, classes):
    """VGG-style: 3x3 blocks of 32, 64 and 128 channels, each ending in a max pool, and a dropout
    head. Only the last, lowest-resolution block has two convs: on a CPU a second conv at full
    resolution would cost as much as the rest of the net."""
    c = shape[0]

    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    features = nn.Sequential(
        *conv(c, 32), nn.MaxPool2d(2),
        *conv(32, 64), nn.MaxPool2d(2),
        *conv(64, 128), *conv(128, 128), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.4))
    return nn.Sequential(features, nn.Linear(flat_features(features, shape), 256), nn.ReLU(inplace=True),
                         nn.Dropout(0.4), nn.Linear(256, classes))


def allconv(shape, classes):
    """All-convolutional (Springenberg et al.): strided convs instead of pooling, a 1x1 conv to
    class scores and global average pooling instead of a fully connected head."""
    c = shape[0]

    def conv(i, o, k, stride):
        return [nn.Conv2d(i, o, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(o),
                nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv(c, 32, 3, 1), *conv(32, 48, 3, 2), *conv(48, 48, 3, 1),
        *conv(48, 96, 3, 2), nn.Dropout(0.2), *conv(96, 96, 3, 1), *conv(96, 96, 1, 1),
        nn.Conv2d(96, classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


ARCHITECTURES = (("lenet5", lenet), ("vgg", vgg), ("allconv", allconv))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def random_affine(x, generator, colour):
    """A random affine per image: rotation +-10 deg, scale 0.9-1.1, translation +-2 px. theta is
    the sampling transform (output -> input) in normalised coordinates; the parameter ranges are
    symmetric, so drawing the inverse directly is as good as inverting a drawn forward one."""
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 2.0  # pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    # Normalised x spans w pixels over 2 units; scale the off-diagonals so rotation stays
    # a rotation on non-square images.
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    theta[:, 0, 2], theta[:, 1, 2] = shift[:, 0] * 2 / w, shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Digits and clothes lie on black; a sign fills its crop, so repeat its border instead.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border" if colour else "zeros",
                         align_corners=False)


def evaluate_probs(model, images, batch_size=500):
    """Softmax of a model over uint8 images, in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            out.append(F.softmax(model(images[i:i + batch_size].float() / 255), dim=1))
    return torch.cat(out) if out else torch.zeros(0)


def train_one(name, build, seed, xtr, ytr, classes, mean, std, epochs, batch_size=128, peak_lr=0.05):
    torch.manual_seed(seed)  # weights and dropout
    generator = torch.Generator().manual_seed(seed + 1)  # shuffling and augmentation
    shape = tuple(xtr.shape[1:])
    model = Normalised(build(shape, classes), mean, std)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}],
                          lr=peak_lr, momentum=0.9, nesterov=True)
    n = xtr.shape[0]
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = max(1, epochs * steps_per_epoch)
    warmup = max(1, total // 20)
    step, start = 0, time.time()
    colour = shape[0] == 3
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        running, seen = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = random_affine(xtr[idx].float() / 255, generator, colour)
            # Linear warm-up, then cosine to zero: plain SGD needs the warm-up with BN at lr 0.05.
            lr = peak_lr * (step + 1) / warmup if step < warmup else \
                0.5 * peak_lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            for group in opt.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running += loss.item() * idx.numel()
            seen += idx.numel()
        print(f"  {name}: epoch {epoch + 1}/{epochs} loss {running / max(1, seen):.4f} "
              f"({time.time() - start:.0f} s)", flush=True)
    model.eval()
    return model, time.time() - start


def cmd_train(args):
    torch.set_num_threads(args.threads)
    t0 = time.time()
    xtr, ytr, xte, yte = load_data(args.data, args.seed)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    classes = int(max(ytr.max().item(), yte.max().item() if yte.numel() else 0)) + 1
    shape = list(xtr.shape[1:])
    f = xtr.float() / 255
    mean = f.mean(dim=(0, 2, 3)).tolist()
    std = f.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del f
    load_seconds = time.time() - t0
    print(f"data {args.data}: {xtr.shape[0]} train / {xte.shape[0]} test images of {shape}, {classes} classes "
          f"({load_seconds:.1f} s)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    models, probs = [], []
    for k, (name, build) in enumerate(ARCHITECTURES):
        # Seeds spaced apart so that no model's stream starts where a neighbour's ends.
        seed = args.seed + 1000 * (k + 1)
        model, seconds = train_one(name, build, seed, xtr, ytr, classes, mean, std, args.epochs)
        p = evaluate_probs(model, xte)
        accuracy = (p.argmax(1) == yte).float().mean().item()
        path = os.path.join(args.out, f"{name}.pt")
        torch.jit.script(model).save(path)
        models.append({"name": name, "file": os.path.basename(path), "seed": seed,
                       "parameters": sum(q.numel() for q in model.parameters()),
                       "test_accuracy": accuracy, "training_seconds": round(seconds, 1)})
        probs.append(p)
        print(f"  {name}: test accuracy {accuracy:.4f}, {seconds:.0f} s", flush=True)
    reading = read_probs(probs, 0.5)
    ensemble = (reading["label"] == yte).float().mean().item()
    confident = reading["confident"]
    # Of the test images the reader is confident on, how many it gets right: what a confident
    # reading of a failure is worth.
    confident_accuracy = (reading["label"][confident] == yte[confident]).float().mean().item() \
        if confident.any() else None
    meta = {
        "format": READER_FORMAT, "data": args.data, "epochs": args.epochs, "seed": args.seed,
        "limit": args.limit, "threads": args.threads, "image_shape": shape, "num_classes": classes,
        "train_images": int(xtr.shape[0]), "test_images": int(xte.shape[0]),
        "test_split": "t10k" if not args.data.startswith("gtsrb") else "20% of tracks per class, seeded",
        "normalisation": {"mean": mean, "std": std},
        "augmentation": "random affine per image: rotation +-10 deg, scale 0.9-1.1, translation +-2 px",
        "optimiser": "SGD Nesterov momentum 0.9, wd 5e-4, batch 128, peak lr 0.05, warm-up + cosine",
        "models": models, "ensemble_test_accuracy": ensemble,
        "ensemble_confident_share": confident.float().mean().item(),
        "ensemble_confident_accuracy": confident_accuracy,
        "training_seconds": round(sum(m["training_seconds"] for m in models), 1),
        "total_seconds": round(time.time() - t0, 1), "torch": torch.__version__,
    }
    with open(os.path.join(args.out, "reader.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"reader in {args.out}: ensemble test accuracy {ensemble:.4f} "
          f"(models {', '.join('%s %.4f' % (m['name'], m['test_accuracy']) for m in models)}); "
          f"confident on {meta['ensemble_confident_share']:.3f} of test images, "
          f"{fmt(confident_accuracy, 4)} right there; training {meta['training_seconds']:.0f} s, "
          f"total {meta['total_seconds']:.0f} s")


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def read_probs(probs, confidence):
    """Combines per-model softmax outputs [M][N, K] into the reader's reading."""
    if probs[0].shape[0] == 0:  # an empty failure set: nothing to reduce over
        return {"label": torch.zeros(0, dtype=torch.long), "probability": torch.zeros(0),
                "confident": torch.zeros(0, dtype=torch.bool)}
    stacked = torch.stack(probs)  # [M, N, K]
    mean = stacked.mean(0)
    p, label = mean.max(1)
    agree = (stacked.argmax(2) == label.unsqueeze(0)).all(0)
    return {"label": label, "probability": p, "confident": agree & (p >= confidence)}


def load_reader(directory):
    meta_path = os.path.join(directory, "reader.json")
    if not os.path.exists(meta_path):
        raise UsageError(f"{meta_path} not found: train a reader first (independent_reader.py train)")
    with open(meta_path) as f:
        meta = json.load(f)
    models = [torch.jit.load(os.path.join(directory, m["file"]), map_location="cpu") for m in meta["models"]]
    for m in models:
        m.eval()
    return meta, models


def read_images(meta, models, images, confidence, what):
    shape = list(images.shape[1:])
    if shape != list(meta["image_shape"]):
        raise UsageError(f"{what}: images are {'x'.join(map(str, shape))} but the reader was trained on "
                         f"{'x'.join(map(str, meta['image_shape']))} ({meta['data']})")
    if images.dtype != torch.uint8:
        raise UsageError(f"{what}: images are {images.dtype}, expected uint8")
    with torch.no_grad():
        return read_probs([evaluate_probs(m, images) for m in models], confidence)


def archive_tensors(path):
    """The tensors of a LibTorch OutputArchive, by name. LibTorch writes tensors as parameters
    (or buffers with is_buffer), never as plain attributes, but accept all three."""
    module = torch.jit.load(path, map_location="cpu")
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in dir(module):
        if name not in tensors and not name.startswith("_"):
            try:
                value = getattr(module, name)
            except Exception:  # properties of RecursiveScriptModule that need more than a name
                continue
            if isinstance(value, torch.Tensor):
                tensors[name] = value
    return {name: t.detach() for name, t in tensors.items()}


def shares(reading, seed, predicted):
    """The reader's outcomes over a set of failures, as shares of it."""
    n = int(seed.numel())
    if n == 0:
        return {"count": 0}
    label, confident = reading["label"], reading["confident"]
    is_seed, is_pred = label == seed, label == predicted

    def share(mask):
        return round(mask.float().mean().item(), 4)

    return {"count": n, "seed": share(is_seed), "seed_confident": share(is_seed & confident),
            "predicted": share(is_pred), "predicted_confident": share(is_pred & confident),
            "other": share(~is_seed & ~is_pred), "not_confident": share(~confident)}


def outcome(reading, seed, predicted):
    """Per failure: 0 read confidently as the seed label, 1 confidently as the prediction,
    2 anything else (a third class, or not confident)."""
    out = torch.full_like(seed, 2)
    out[reading["confident"] & (reading["label"] == predicted)] = 1
    out[reading["confident"] & (reading["label"] == seed)] = 0
    return out


def verdict_table(verdict, out):
    table = {}
    for v, name in enumerate(VERDICTS):
        row = out[verdict == v]
        table[name] = {"count": int(row.numel()), "seed": int((row == 0).sum()),
                       "predicted": int((row == 1).sum()), "other_or_unsure": int((row == 2).sum())}
    judged = table["genuine"]["count"] + table["label-change"]["count"]
    summary = {
        # Of what defuse calls genuine, how much the reader confirms (precision of "genuine").
        "genuine_confirmed": table["genuine"]["seed"] / table["genuine"]["count"] if table["genuine"]["count"] else None,
        # Of what defuse calls a label change, how much the reader reads as the new class.
        "label_change_confirmed": (table["label-change"]["predicted"] / table["label-change"]["count"]
                                   if table["label-change"]["count"] else None),
        # Of failures the reader reads confidently as the seed label, how many defuse kept as genuine
        # (recall of "genuine").
        "reader_seed_called_genuine": (table["genuine"]["seed"] / sum(table[n]["seed"] for n in VERDICTS)
                                       if sum(table[n]["seed"] for n in VERDICTS) else None),
        "decided": judged,
    }
    return table, summary


def latest_distill_scenarios(db_path, failure_count):
    """(run id, [scenario dicts with member indices], [warnings]) of the latest complete distill
    run, or (None, [], []) when there is none."""
    if not os.path.exists(db_path):
        return None, [], []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    warnings = []
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"stage_runs", "scenarios", "scenario_members"} <= tables:
            return None, [], []
        row = db.execute("SELECT id FROM stage_runs WHERE stage = 'distill' AND status = 'complete' "
                         "ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None, [], []
        run_id = row[0]
        # A later identify run may have replaced failures.pt under an older distill run; the
        # indices would then point into another failure set.
        later = db.execute("SELECT COUNT(*) FROM stage_runs WHERE stage = 'identify' AND status = 'complete' "
                           "AND id > ?", (run_id,)).fetchone()[0]
        if later:
            warnings.append(f"identify ran after distill run {run_id}: scenario members may not match "
                            "failures.pt (run `defuse distill` again)")
        verdicts = {}
        if "scenario_validity" in tables:
            verdicts = dict(db.execute("SELECT scenario_id, verdict FROM scenario_validity WHERE run_id = ?",
                                       (run_id,)))
        members = {sid: np.frombuffer(blob, dtype="<i8").astype(np.int64) for sid, blob in db.execute(
            "SELECT scenario_id, failures FROM scenario_members WHERE run_id = ?", (run_id,))}
        scenarios = []
        for sid, seed_label, predicted_label in db.execute(
                "SELECT id, seed_label, predicted_label FROM scenarios WHERE run_id = ? ORDER BY id", (run_id,)):
            idx = members.get(sid, np.zeros(0, dtype=np.int64))
            bad = (idx < 0) | (idx >= failure_count)
            if bad.any():
                warnings.append(f"scenario {sid}: {int(bad.sum())} member indices outside the failure set")
                idx = idx[~bad]
            scenarios.append({"id": sid, "seed_label": seed_label, "predicted_label": predicted_label,
                              # Without judges distill still writes a validity row, verdict ''.
                              "members": idx, "verdict": verdicts.get(sid) or None})
        return run_id, scenarios, warnings
    finally:
        db.close()


def cmd_read(args):
    meta, models = load_reader(args.reader)
    path = os.path.join(args.workspace, "identify", "failures.pt")
    if not os.path.exists(path):
        raise UsageError(f"{path} not found: run `defuse identify -w {args.workspace}` first")
    t = archive_tensors(path)
    for key in ("images", "seed_label", "predicted"):
        if key not in t:
            raise UsageError(f"{path}: no '{key}' tensor; not a defuse failures file?")
    seed, predicted = t["seed_label"].long(), t["predicted"].long()
    reading = read_images(meta, models, t["images"], args.confidence, path)
    result = {"reader": args.reader, "reader_data": meta["data"], "workspace": args.workspace,
              "confidence": args.confidence, "failures": shares(reading, seed, predicted)}
    out = outcome(reading, seed, predicted)
    if "verdict" in t:
        result["verdict_table"], result["verdict_summary"] = verdict_table(t["verdict"].long(), out)
    if "rejected_images" in t and t["rejected_images"].shape[0] and \
            "rejected_seed_label" in t and "rejected_predicted" in t:
        rejected = read_images(meta, models, t["rejected_images"], args.confidence, path + " (rejected)")
        result["rejected"] = shares(rejected, t["rejected_seed_label"].long(), t["rejected_predicted"].long())
    run_id, scenarios, warnings = latest_distill_scenarios(os.path.join(args.workspace, "defuse.db"),
                                                           seed.numel())
    if run_id is not None:
        rows = []
        for s in scenarios:
            idx = torch.from_numpy(s["members"])
            # The members' own seed labels, not the scenario's majority label: a scenario may mix.
            sub = {k: v[idx] for k, v in reading.items()}
            sh = shares(sub, seed[idx], predicted[idx])
            s_out = out[idx]
            confident_seed = (s_out == 0).float().mean().item() if idx.numel() else 0.0
            rows.append({"id": s["id"], "seed_label": s["seed_label"], "predicted_label": s["predicted_label"],
                         "members": int(idx.numel()), "defuse_verdict": s["verdict"],
                         "reader_seed": sh.get("seed"), "reader_seed_confident": sh.get("seed_confident"),
                         "reader_predicted_confident": sh.get("predicted_confident"),
                         "reader_genuine": idx.numel() > 0 and confident_seed >= 0.5})
        scen = {"distill_run": run_id, "count": len(rows),
                "reader_genuine": sum(r["reader_genuine"] for r in rows), "scenarios": rows}
        if any(r["defuse_verdict"] for r in rows):
            cross = {}
            for r in rows:
                key = r["defuse_verdict"] or "none"
                cross.setdefault(key, {"count": 0, "reader_genuine": 0})
                cross[key]["count"] += 1
                cross[key]["reader_genuine"] += int(r["reader_genuine"])
            scen["by_defuse_verdict"] = cross
        result["scenarios"] = scen
    if warnings:
        result["warnings"] = warnings
    if args.json:
        print(json.dumps(result))
        return
    print_read(result)


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def print_shares(title, s):
    if not s["count"]:
        print(f"{title}: none")
        return
    print(f"{title}: {s['count']}")
    print(f"  read as seed label      {s['seed']:.3f}   confidently {s['seed_confident']:.3f}")
    print(f"  read as prediction      {s['predicted']:.3f}   confidently {s['predicted_confident']:.3f}")
    print(f"  read as a third class   {s['other']:.3f}")
    print(f"  not confident           {s['not_confident']:.3f}")


def print_read(r):
    print(f"reader {r['reader']} ({r['reader_data']}), confidence >= {r['confidence']}, workspace {r['workspace']}")
    for w in r.get("warnings", []):
        print(f"warning: {w}")
    print_shares("kept failures", r["failures"])
    if "verdict_table" in r:
        print("defuse verdict x reader (confident seed / confident prediction / other or unsure):")
        print(f"  {'verdict':<14}{'count':>7}{'seed':>7}{'pred':>7}{'other':>7}")
        for name, row in r["verdict_table"].items():
            print(f"  {name:<14}{row['count']:>7}{row['seed']:>7}{row['predicted']:>7}{row['other_or_unsure']:>7}")
        s = r["verdict_summary"]
        print(f"  genuine confirmed by reader {fmt(s['genuine_confirmed'])}, label-change confirmed "
              f"{fmt(s['label_change_confirmed'])}, reader-seed failures called genuine "
              f"{fmt(s['reader_seed_called_genuine'])}")
    else:
        print("no defuse verdicts in this failure set (judges did not run)")
    if "rejected" in r:
        print_shares("rejected by the gate", r["rejected"])
    if "scenarios" in r:
        s = r["scenarios"]
        print(f"scenarios of distill run {s['distill_run']}: {s['count']}, reader-genuine {s['reader_genuine']} "
              f"(members read confidently as their seed label in >= 50%)")
        print(f"  {'id':>4}{'seed':>6}{'pred':>6}{'members':>9}{'rd seed':>9}{'rd conf':>9}{'rd pred':>9}"
              f"  {'genuine':<8}defuse")
        for row in s["scenarios"]:
            print(f"  {row['id']:>4}{row['seed_label']:>6}{row['predicted_label']:>6}{row['members']:>9}"
                  f"{fmt(row['reader_seed']):>9}{fmt(row['reader_seed_confident']):>9}"
                  f"{fmt(row['reader_predicted_confident']):>9}  {'yes' if row['reader_genuine'] else 'no':<8}"
                  f"{row['defuse_verdict'] or '-'}")
        for verdict, c in s.get("by_defuse_verdict", {}).items():
            print(f"  defuse {verdict}: {c['count']} scenarios, {c['reader_genuine']} reader-genuine")
    else:
        print("no distilled scenarios in the workspace")


# ---------------------------------------------------------------------------------------------
# Held-out draws
# ---------------------------------------------------------------------------------------------

def cmd_heldout(args):
    path = os.path.join(args.workspace, "evaluate", "heldout.pt")
    if not os.path.exists(path):
        if args.json:
            print(json.dumps({"workspace": args.workspace, "heldout": None, "message": f"{path} not found"}))
        else:
            print(f"{path} not found: no held-out draws to read")
        return
    meta, models = load_reader(args.reader)
    t = archive_tensors(path)
    for key in ("images", "labels"):
        if key not in t:
            raise UsageError(f"{path}: no '{key}' tensor; not a defuse held-out file?")
    labels = t["labels"].long()
    reading = read_images(meta, models, t["images"], args.confidence, path)
    verified = reading["confident"] & (reading["label"] == labels)
    genuine = t["genuine"].bool() if "genuine" in t else None

    def accuracy(right, mask):
        return round(right[mask].float().mean().item(), 4) if mask.any() else None

    everything = torch.ones_like(verified)
    result = {"reader": args.reader, "reader_data": meta["data"], "workspace": args.workspace,
              "confidence": args.confidence, "draws": int(labels.numel()), "verified": int(verified.sum()),
              "verified_share": round(verified.float().mean().item(), 4) if labels.numel() else None}
    if genuine is not None:
        result["genuine_draws"] = int(genuine.sum())
        result["verified_genuine"] = int((verified & genuine).sum())
    # defuse stores "lambda=0.1" as the attribute pred_lambda_0p1 (attribute names take neither
    # '=' nor '.') and maps the names back in the string attribute `models` (JSON).
    names = {}
    try:
        names = json.loads(getattr(torch.jit.load(path, map_location="cpu"), "models"))
    except Exception:
        pass
    rows = []
    for name in (k for k in t if k.startswith("pred_")):  # in the file's order: original first
        right = t[name].long() == labels
        row = {"model": names.get(name, name[len("pred_"):]), "accuracy": accuracy(right, everything),
               "verified_accuracy": accuracy(right, verified)}
        if genuine is not None:
            # Draws of genuine scenarios are the failures defuse means to fix; the reader's
            # verification tells whether each draw still looks like its label.
            row["genuine_accuracy"] = accuracy(right, genuine)
            row["genuine_verified_accuracy"] = accuracy(right, genuine & verified)
        rows.append(row)
    result["models"] = rows
    if args.json:
        print(json.dumps(result))
        return
    print(f"reader {args.reader} ({meta['data']}), confidence >= {args.confidence}; {path}")
    print(f"draws {result['draws']}, reader-verified {result['verified']} ({fmt(result['verified_share'])})"
          + (f"; genuine draws {result['genuine_draws']}, verified {result['verified_genuine']}"
             if genuine is not None else ""))
    header = f"  {'model':<24}{'accuracy':>10}{'verified':>10}"
    if genuine is not None:
        header += f"{'genuine':>10}{'gen+ver':>10}"
    print(header)
    for row in rows:
        line = f"  {row['model']:<24}{fmt(row['accuracy']):>10}{fmt(row['verified_accuracy']):>10}"
        if genuine is not None:
            line += f"{fmt(row['genuine_accuracy']):>10}{fmt(row['genuine_verified_accuracy']):>10}"
        print(line)


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the reader ensemble")
    tr.add_argument("--data", required=True, help="mnist:DIR | fashion-mnist[:DIR] | gtsrb:DIR")
    tr.add_argument("--out", required=True, help="directory for the models and reader.json")
    tr.add_argument("--epochs", type=int, default=4)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--seed", type=int, default=12345)
    tr.add_argument("--limit", type=int, default=0, help="train on the first N training images only")
    for name, helptext in (("read", "read a workspace's failures"), ("heldout", "read a workspace's held-out draws")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--reader", required=True, help="directory written by `train`")
        p.add_argument("--workspace", "-w", required=True)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--confidence", type=float, default=0.5,
                       help="mean probability a confident reading needs (all models must agree too)")
        p.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    try:
        if args.command == "train":
            if args.epochs < 1 or args.limit < 0 or args.threads < 1:
                raise UsageError("--epochs and --threads must be >= 1, --limit >= 0")
            cmd_train(args)
        else:
            torch.set_num_threads(args.threads)
            (cmd_read if args.command == "read" else cmd_heldout)(args)
    except UsageError as e:
        print(f"independent_reader: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
