"""tabular_metrics.py — the test metrics of scripts/bench/tabular, computed alike for both
sides (Optuna's workers and the report of nnsearch's predictions): accuracy, balanced
accuracy and macro-F1 as nnsearch defines them. Not a script: imported by the others."""

import numpy as np


def accuracy(y, p):
    return float(np.mean(y == p))


def balanced_accuracy(y, p):
    """Mean recall over the classes present in y (nnsearch's val_balanced_acc)."""
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def macro_f1(y, p):
    """Mean F1 over the classes present in y or p (scikit-learn's macro average)."""
    f = []
    for c in np.union1d(np.unique(y), np.unique(p)):
        tp = np.sum((y == c) & (p == c))
        fp = np.sum((y != c) & (p == c))
        fn = np.sum((y == c) & (p != c))
        f.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f))
