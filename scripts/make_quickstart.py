#!/usr/bin/python3
"""make_quickstart.py — writes the small generated dataset of the end-to-end tests (and
of configs/quickstart.yaml before it moved to Fashion-MNIST):

  configs/data/quickstart.csv       3000 training rows (the search splits off its validation rows)
  configs/data/quickstart-test.csv  1000 held-out test rows from the same generator

Each row has 10 numeric features f1..f10 and a `label` column with one of four classes
(amber, cobalt, jade, ruby; about a quarter each). The class depends nonlinearly on three
hidden variables a, b, c (independent standard normals):

  ring  = sqrt(a^2 + b^2) > sqrt(2 ln 2)      outside or inside a circle (each half the rows)
  cross = (a > 0) XOR (c > 0)                 an XOR of two signs
  class = 2 * ring + cross

a, b and c are observed with a little noise as f2, f5 and f8 (so rows near a boundary are
ambiguous); the other seven columns are pure noise that a large network can overfit. Every
column has its own scale (0.01 to 100) and offset, so standardisation matters. A linear
model cannot do much better than chance here; a small MLP with a sensible learning rate
reaches 0.9 or more in 30 epochs, while too small a learning rate, or SGD with a small one,
stays near chance (0.25).

Deterministic (stdlib random, fixed seed): rerunning gives the same bytes.
Usage: /usr/bin/python3 scripts/make_quickstart.py [OUT_DIR]   (default: configs/data)"""
import math
import os
import random
import sys

TRAIN_ROWS = 3000
TEST_ROWS = 1000
FEATURES = 10
INFORMATIVE = {1: "a", 4: "b", 7: "c"}  # 0-based column -> hidden variable (f2, f5, f8)
OBS_NOISE = 0.03  # noise on the observed informative columns, in units of the hidden variable
CLASSES = ["amber", "cobalt", "jade", "ruby"]
SEED = 20240917
RADIUS = math.sqrt(2.0 * math.log(2.0))  # median radius of a 2-D standard normal


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "configs", "data")
    rng = random.Random(SEED)
    scale = [rng.choice([0.01, 0.1, 1.0, 10.0, 100.0]) for _ in range(FEATURES)]
    offset = [rng.uniform(-5.0, 5.0) * s * 10.0 for s in scale]
    # Fixed-point decimals per column: about five significant digits at the column's scale.
    decimals = [max(0, 4 - int(round(math.log10(s)))) for s in scale]

    def row():
        h = {"a": rng.gauss(0.0, 1.0), "b": rng.gauss(0.0, 1.0), "c": rng.gauss(0.0, 1.0)}
        ring = 1 if math.hypot(h["a"], h["b"]) > RADIUS else 0
        cross = 1 if (h["a"] > 0.0) != (h["c"] > 0.0) else 0
        k = 2 * ring + cross
        x = []
        for j in range(FEATURES):
            if j in INFORMATIVE:
                z = h[INFORMATIVE[j]] + rng.gauss(0.0, OBS_NOISE)
            else:
                z = rng.gauss(0.0, 1.0)
            x.append("%.*f" % (decimals[j], z * scale[j] + offset[j]))
        return ",".join(x) + "," + CLASSES[k] + "\n"

    header = ",".join("f%d" % (j + 1) for j in range(FEATURES)) + ",label\n"
    os.makedirs(out_dir, exist_ok=True)
    for name, n in (("quickstart.csv", TRAIN_ROWS), ("quickstart-test.csv", TEST_ROWS)):
        with open(os.path.join(out_dir, name), "w", newline="\n") as f:
            f.write(header)
            for _ in range(n):
                f.write(row())


if __name__ == "__main__":
    main()
