#!/usr/bin/python3
"""make_tiny.py — writes configs/data/tiny.csv, the small CSV behind configs/tiny-train.yaml:
600 rows, 8 numeric features, 3 classes named alpha/beta/gamma (200 each), separable
with noise. Deterministic (stdlib random, fixed seed): rerunning gives the same bytes.
Usage: /usr/bin/python3 scripts/make_tiny.py [OUT]"""
import os
import random
import sys

ROWS_PER_CLASS = 200
FEATURES = 8
CLASSES = ["alpha", "beta", "gamma"]
SEED = 20240601


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "configs", "data", "tiny.csv")
    rng = random.Random(SEED)
    # One centre per class; features differ in scale and offset so that standardisation matters.
    centres = [[rng.uniform(-2.0, 2.0) for _ in range(FEATURES)] for _ in CLASSES]
    scale = [rng.choice([0.1, 1.0, 10.0]) for _ in range(FEATURES)]
    offset = [rng.uniform(-50.0, 50.0) for _ in range(FEATURES)]
    rows = []
    for c, name in enumerate(CLASSES):
        for _ in range(ROWS_PER_CLASS):
            x = [(centres[c][j] + rng.gauss(0.0, 1.0)) * scale[j] + offset[j] for j in range(FEATURES)]
            rows.append((x, name))
    rng.shuffle(rows)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", newline="\n") as f:
        f.write(",".join("f%d" % (j + 1) for j in range(FEATURES)) + ",label\n")
        for x, name in rows:
            f.write(",".join("%.4f" % v for v in x) + "," + name + "\n")


if __name__ == "__main__":
    main()
