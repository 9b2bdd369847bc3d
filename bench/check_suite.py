#!/usr/bin/python3
"""The Python way of what `defuse check --suite` does, for the start-to-verdict comparison in
scripts/bench_check.sh: load a TorchScript classifier, read a suite's PNGs (PIL, as
torchvision does), score each scenario, print one JSON line.
usage: bench/check_suite.py SUITE_DIR MODEL.pt [THREADS]"""
import json
import sys

import numpy
import torch
from PIL import Image


def main():
    suite_dir, model_file = sys.argv[1], sys.argv[2]
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    suite = json.load(open(suite_dir + "/suite.json"))
    model = torch.jit.load(model_file).eval()
    results = []
    with torch.no_grad():
        for s in suite["scenarios"]:
            arrays = [numpy.asarray(Image.open(suite_dir + "/" + im["file"])) for im in s["images"]]
            x = torch.from_numpy(numpy.stack(arrays)).float().div(255)
            x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
            correct = int((model(x).argmax(1) == s["label"]).sum())
            results.append({"id": s["id"], "images": len(arrays), "accuracy": correct / len(arrays)})
    passed = all(r["accuracy"] >= s["min_accuracy"] for r, s in zip(results, suite["scenarios"]))
    print(json.dumps({"passed": passed, "scenarios": results}))
    return 0 if passed else 9


if __name__ == "__main__":
    sys.exit(main())
