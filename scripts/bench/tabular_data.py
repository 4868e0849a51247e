"""tabular_data.py — the data side of scripts/bench/tabular: writes scikit-learn's bundled
sets as CSV (the R sets come from tabular_export.R in the same format), describes a set,
and cuts the stratified 60/20/20 splits. Not the search or the scoring.

usage: /usr/bin/python3 tabular_data.py sklearn OUTDIR SET...     -> OUTDIR/SET.csv, SET.classes
       /usr/bin/python3 tabular_data.py info OUTDIR SET           -> "rows features classes ratio"
       /usr/bin/python3 tabular_data.py split OUTDIR SET SEED DIR -> DIR/{train,val,trainval,test}.csv
       /usr/bin/python3 tabular_data.py quantile DIR              -> DIR/quantile/{trainval,test}.csv

A set's CSV: header row, numeric predictors, last column `label` = class index 0..K-1.
"""
import os
import sys

import numpy as np

SKLEARN_SETS = ("iris", "wine", "breast_cancer", "digits")


def write_csv(path, names, x, y):
    """Header and rows; reals with 17 significant digits (exact), labels as integers."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(",".join(list(names) + ["label"]) + "\n")
        for row, lab in zip(x, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(lab)}\n")
    os.replace(tmp, path)


def read_csv(path):
    """(feature names, x float64 (n, d), y int (n,)); the label is the last column."""
    with open(path) as f:
        names = f.readline().strip().split(",")
    a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if names[-1] != "label":
        raise SystemExit(f"{path}: the last column is '{names[-1]}', not 'label'")
    return names[:-1], a[:, :-1], a[:, -1].astype(int)


def export_sklearn(out, sets):
    # load_* read the files bundled with Debian's python3-sklearn; nothing is downloaded.
    from sklearn import datasets
    os.makedirs(out, exist_ok=True)
    for name in sets:
        if name not in SKLEARN_SETS:
            raise SystemExit(f"tabular_data: unknown scikit-learn set '{name}'; known: {', '.join(SKLEARN_SETS)}")
        b = getattr(datasets, f"load_{name}")()
        names = [f"f{k}" for k in range(b.data.shape[1])]
        if getattr(b, "feature_names", None) is not None and name != "digits":
            names = ["".join(c if c.isalnum() else "_" for c in str(s)) for s in b.feature_names]
        write_csv(os.path.join(out, f"{name}.csv"), names, b.data, b.target)
        with open(os.path.join(out, f"{name}.classes"), "w") as f:
            f.write("".join(f"{c}\n" for c in b.target_names))


def info(out, name):
    names, x, y = read_csv(os.path.join(out, f"{name}.csv"))
    counts = np.bincount(y)
    counts = counts[counts > 0]
    print(len(y), len(names), len(counts), f"{counts.max() / counts.min():.3g}")


def split(out, name, seed, dest):
    """Stratified 60/20/20: per class, a permutation drawn with numpy's RandomState(seed);
    round(0.2 n_k) rows to test, round(0.2 n_k) to validation (halves rounded up), the rest
    to training. trainval = the training rows then the validation rows (what nnsearch gets)."""
    names, x, y = read_csv(os.path.join(out, f"{name}.csv"))
    rng = np.random.RandomState(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(np.floor(0.2 * len(idx) + 0.5))
        parts["test"].extend(idx[:k])
        parts["val"].extend(idx[k:2 * k])
        parts["train"].extend(idx[2 * k:])
    os.makedirs(dest, exist_ok=True)
    for p in parts:
        parts[p] = rng.permutation(np.array(parts[p], dtype=int))
    parts["trainval"] = np.concatenate([parts["train"], parts["val"]])
    for p, idx in parts.items():
        write_csv(os.path.join(dest, f"{p}.csv"), names, x[idx], y[idx])


def quantile(dest):
    """A split's trainval and test rows with every feature mapped to a standard normal
    through its empirical quantiles on the trainval rows (scikit-learn's
    QuantileTransformer, up to 1,000 quantiles, fitted on trainval only): the quantile
    preprocessing experiment of docs/BENCHMARKS.md, for nnsearch's side only."""
    from sklearn.preprocessing import QuantileTransformer
    names, xtv, ytv = read_csv(os.path.join(dest, "trainval.csv"))
    _, xte, yte = read_csv(os.path.join(dest, "test.csv"))
    qt = QuantileTransformer(n_quantiles=min(1000, len(ytv)), output_distribution="normal",
                             subsample=10**9, random_state=0).fit(xtv)
    out = os.path.join(dest, "quantile")
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "trainval.csv"), names, qt.transform(xtv), ytv)
    write_csv(os.path.join(out, "test.csv"), names, qt.transform(xte), yte)


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "sklearn":
        export_sklearn(a[1], a[2:])
    elif len(a) == 3 and a[0] == "info":
        info(a[1], a[2])
    elif len(a) == 5 and a[0] == "split":
        split(a[1], a[2], int(a[3]), a[4])
    elif len(a) == 2 and a[0] == "quantile":
        quantile(a[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
