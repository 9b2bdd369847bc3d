#!/usr/bin/python3
"""How well defuse's validity signals tell genuine failures from label changes, measured with
the independent reader (bench/independent_reader.py), and which verdict rule to use.

Run identify with --gate none and a large --keep (so that every failing decode is kept, with
its judges' reading, its latent neighbours' labels and its realism score), then:

  /usr/bin/python3 bench/validity_calibration.py --reader READER_DIR --workspace WS [--json]

For each candidate rule (judges unanimous with mean probability >= c, optionally with the
latent neighbours mostly of the seed's class, and a realism floor) it prints how many failures
the rule calls genuine and what share of those the reader reads (confidently) as the seed's
label: the precision of "genuine". The reader never takes part in defuse itself.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import independent_reader as ir  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reader", required=True)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--confidence", type=float, default=0.5, help="the reader's confidence threshold")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    t = ir.archive_tensors(os.path.join(args.workspace, "identify", "failures.pt"))
    for key in ("judge_label", "judge_agreement", "judge_confidence"):
        if key not in t:
            print(f"validity_calibration: {args.workspace}: the failures carry no judges' reading "
                  "(run train-judges, then identify)", file=sys.stderr)
            return 2
    meta, models = ir.load_reader(args.reader)
    reading = ir.read_images(meta, models, t["images"], args.confidence, "failures")
    seed, pred = t["seed_label"], t["predicted"]
    reader_seed = reading["confident"] & (reading["label"] == seed)
    reader_pred = reading["confident"] & (reading["label"] == pred)
    reader_seed_any = reading["label"] == seed

    jl, ja, jc = t["judge_label"], t["judge_agreement"], t["judge_confidence"]
    knn = t.get("knn_seed_share")
    realism = t.get("realism")
    seeds = t["seed_index"]

    rows = []
    n = seed.numel()
    for c in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98):
        for k in ((0.0, 0.5, 0.7) if knn is not None else (0.0,)):
            for r in ((0.0, 0.05, 0.2) if realism is not None else (0.0,)):
                rule = (jl == seed) & (ja >= 1 - 1e-6) & (jc >= c - 1e-6)
                if knn is not None:
                    rule &= knn >= k - 1e-6
                if realism is not None:
                    rule &= realism >= r - 1e-6
                kept = int(rule.sum())
                rows.append({
                    "confidence": c, "knn_seed_share": k, "realism": r, "genuine": kept,
                    "seeds": int(torch.unique(seeds[rule]).numel()) if kept else 0,
                    "reader_seed_confident": float(reader_seed[rule].float().mean()) if kept else None,
                    "reader_seed_argmax": float(reader_seed_any[rule].float().mean()) if kept else None,
                    "reader_prediction_confident": float(reader_pred[rule].float().mean()) if kept else None,
                })
    # The label-change verdict's precision, for the same confidences.
    changes = []
    for c in (0.5, 0.7, 0.9):
        rule = (jl == pred) & (ja >= 1 - 1e-6) & (jc >= c - 1e-6)
        kept = int(rule.sum())
        changes.append({"confidence": c, "label_changes": kept,
                        "reader_prediction_confident": float(reader_pred[rule].float().mean()) if kept else None})
    result = {"failures": n, "reader_seed_confident": float(reader_seed.float().mean()),
              "reader_prediction_confident": float(reader_pred.float().mean()),
              "genuine_rules": rows, "label_change_rules": changes}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{n} failing decodes; the reader reads {result['reader_seed_confident']:.3f} confidently as the seed's "
          f"label, {result['reader_prediction_confident']:.3f} as the classifier's prediction")
    print(f"{'conf':>5} {'knn':>5} {'real':>5} {'genuine':>8} {'seeds':>6} {'rd seed':>8} {'rd argmax':>9} {'rd pred':>8}")
    for row in rows:
        f = lambda v: "-" if v is None else f"{v:.3f}"
        print(f"{row['confidence']:>5} {row['knn_seed_share']:>5} {row['realism']:>5} {row['genuine']:>8} "
              f"{row['seeds']:>6} {f(row['reader_seed_confident']):>8} {f(row['reader_seed_argmax']):>9} "
              f"{f(row['reader_prediction_confident']):>8}")
    print("label-change rule (judges unanimous on the classifier's prediction):")
    for row in changes:
        v = row["reader_prediction_confident"]
        print(f"  conf >= {row['confidence']}: {row['label_changes']} label changes, the reader agrees on "
              f"{'-' if v is None else f'{v:.3f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
