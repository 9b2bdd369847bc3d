#!/usr/bin/python3
"""How much Gaussian blur alone costs a classifier: its accuracy on a dataset's test images,
sharp and blurred (σ = 0.5, 0.75, 1, 1.5 px, 7x7 kernel, replicate padding) and halved then
re-enlarged (bilinear). It separates "the VAE's reconstructions are blurred" from "the VAE's
reconstructions lost the content": if blur costs little but reconstructions are misread, the
generator is losing content (docs/benchmarks.md, "Validity", GTSRB fidelity).

  defuse export -w WS -m original -o C.pt
  /usr/bin/python3 bench/blur_sensitivity.py --model C.pt --data gtsrb:DIR [--threads 1]

The test split is the independent reader's (bench/independent_reader.py load_data), not
defuse's: for GTSRB its held-out tracks differ from defuse's, so some test images may be in
the classifier's training split and the sharp accuracy reads high; the drops are the figure.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import independent_reader as ir  # noqa: E402


def gaussian_blur(x, sigma):
    k = torch.arange(-3, 4, dtype=torch.float32)
    g = torch.exp(-k ** 2 / (2 * sigma * sigma))
    g /= g.sum()
    c = x.shape[1]
    w = (g[:, None] * g[None, :]).expand(c, 1, 7, 7)
    return F.conv2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), w, groups=c)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="TorchScript classifier (defuse export)")
    ap.add_argument("--data", required=True, help="mnist:DIR | fashion-mnist[:DIR] | gtsrb:DIR")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _, _, xte, yte = ir.load_data(args.data, 0)
    x = xte.float() / 255 if xte.dtype == torch.uint8 else xte
    model = torch.jit.load(args.model, map_location="cpu")
    model.eval()

    def accuracy(images):
        with torch.no_grad():
            pred = torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)])
        return float(pred.eq(yte).float().mean())

    print(f"sharp          {accuracy(x):.4f}")
    for sigma in (0.5, 0.75, 1.0, 1.5):
        print(f"blur sigma {sigma:<4} {accuracy(gaussian_blur(x, sigma)):.4f}")
    side = x.shape[-2:]
    halved = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear"), size=side, mode="bilinear")
    print(f"halved+upscaled {accuracy(halved):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
