"""final_model.py — the final model of a cross-validated winner: refit on every training row,
or the average of K fold models. Measured on the winners of a `scripts/bench/tabular` run:
for every set and split, the winner's config (from the run's status.json.gz) is trained
(a) once on all trainval rows and (b) once per stratified fold on the other folds' rows, for
the epochs the study chose, with `nnsearch train`; both are scored on the split's test rows
(the ensemble by the mean of its members' class probabilities from `nnsearch predict`).

With --holdout, the winners of holdout studies instead (a study that validated on
data.val_fraction of its rows): the winner's config trained (a) as the study trained it, on
the rows left after the validation split (val_fraction 0.1), and (b) refit on every trainval
row, both for the epochs the study chose, each with --seeds training seeds; the means over
the seeds are compared (refit - as trained).

With --offsets, decision offsets outside the product, on the holdout winners of binary sets:
the winner's config trained on 90% of trainval (a stratified cut of its own), the second
class's logit offset fitted on the other 10% to maximise macro-F1 (-4 to 4 by 0.05, ties to
the offset nearest 0), and the test macro-F1 and accuracy of argmax against argmax with the
offset (docs/BENCHMARKS.md, "Decision offsets"). With --gate as well: the offset always
applied against applied only when its cross-fitted gain on the 10% (fitted on one half,
scored on the other, both ways) is above 0, and how far the fit's own gain and the
cross-fitted one lie from the gain on the test rows. With --oof instead: the offset fitted on
the 10% against one fitted on the out-of-fold predictions of --folds folds of all trainval
rows, both applied to the 90% model.

With --seed-ensemble N, the final model as the study makes it (refit, or the holdout winner
as trained) with one training seed against the average of N seeds' class probabilities.

With --top-ensemble N, that final model against the average of the class probabilities of
the N best configs that select re-scored (the winner and the N-1 next by the study metric),
each trained the same way for its own chosen epochs, seed 1.

With --best-mean, that final model against the same training of the re-scored config with
the best study metric (select's near-tie rule picks the fewest parameters within one
standard error of it instead); a split where they are one config counts as no difference.
With --tie-se M, against the re-scored config that rule picks with M standard errors
instead of one (the rule's later tie-breaks, warnings, left out).

With --ignore-health, that final model against the same training of the random or bayes
trial with the best study metric whatever its health findings (select disqualifies trials
with findings while a trial without one exists); a split where they are one trial counts
as no difference.

With --smoothing E, the winner's final model (as in seed_ensemble, seed 1) against the same
training with cross-entropy label smoothing E.

With --refit-scale F, a cross-validated winner's refit for the epochs its folds chose (as
the study refits it) against the same refit for F times as many: the refit sees all the
rows where each fold model saw (K-1)/K of them.

usage: /usr/bin/python3 scripts/bench/final_model.py RUN_DIR [--sets a,b] [--folds K]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --holdout [--seeds N] [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --seed-ensemble N [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --top-ensemble N [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --best-mean [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --tie-se M [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --refit-scale F [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --ignore-health [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --smoothing E [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --offsets [--gate] [--sets a,b]
       /usr/bin/python3 scripts/bench/final_model.py RUN_DIR --offsets --oof [--folds K] [--sets a,b]
Prints one line per set and split, then per set the mean test accuracy and macro-F1 of each
side and the paired difference (ensemble - refit, or refit - as trained) with its standard
error."""

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tabular_metrics import accuracy, macro_f1  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NNS = os.environ.get("NNSEARCH", os.path.join(ROOT, "build", "nnsearch"))
DATA = os.path.join(ROOT, "results", "bench-tabular", "data", "splits")


def read_csv(path):
    with open(path) as f:
        head = f.readline().strip().split(",")
    x = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return head, x


def write_csv(path, head, x):
    with open(path, "w") as f:
        f.write(",".join(head) + "\n")
        for row in x:
            f.write(",".join(repr(float(v)) if i < len(row) - 1 else str(int(v))
                             for i, v in enumerate(row)) + "\n")


def config(train_csv, params, epochs, seed, val_fraction=0):
    """The winner as a fixed training config (by default no validation rows: the epochs are
    given; with val_fraction the rows a holdout study kept for validation are left out).
    A "model.label_smoothing" in params is passed on (the study's space has none)."""
    p = params
    cw = p.get("model.class_weights")
    ls = p.get("model.label_smoothing")
    return "\n".join([
        "data:", f"  train: {train_csv}", "  label: label", f"  val_fraction: {val_fraction}",
        "model:", f"  depth: {p['model.depth']}", f"  width: {p['model.width']}",
        f"  dropout: {p['model.dropout']!r}"] + ([f"  class_weights: {cw}"] if cw else []) +
        ([f"  label_smoothing: {ls!r}"] if ls else []) + [
        "train:", f"  epochs: {epochs}", f"  optimizer: {p.get('train.optimizer', 'adam')}",
        f"  schedule: {p.get('train.schedule', 'constant')}", f"  lr: {p['train.lr']!r}",
        f"  weight_decay: {p['train.weight_decay']!r}", f"  batch_size: {p['train.batch_size']}",
        f"  seed: {seed}", ""])


def train_predict(tmp, name, train_csv, test_csv, params, epochs, seed, val_fraction=0):
    cfg = os.path.join(tmp, name + ".yaml")
    model = os.path.join(tmp, name + ".nsm")
    pred = os.path.join(tmp, name + ".csv")
    with open(cfg, "w") as f:
        f.write(config(train_csv, params, epochs, seed, val_fraction))
    subprocess.run([NNS, "train", cfg, "-o", model, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([NNS, "predict", model, test_csv, "-o", pred, "--no-drift-check"], check=True,
                   stderr=subprocess.DEVNULL)
    _, p = read_csv(pred)
    return p[:, 2:]  # row, prediction, then one probability per class


def stratified_folds(y, k, seed):
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


def one(run, s, k, folds):
    st = json.load(gzip.open(os.path.join(run, s, str(k), "status.json.gz")))
    best = st["best"]
    epochs = int(best["result"].get("best_epoch") or 30)
    split = os.path.join(DATA, s, str(k))
    head, tv = read_csv(os.path.join(split, "trainval.csv"))
    _, te = read_csv(os.path.join(split, "test.csv"))
    y = te[:, -1].astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        test_csv = os.path.join(split, "test.csv")
        refit = train_predict(tmp, "refit", os.path.join(split, "trainval.csv"), test_csv,
                              best["params"], epochs, 1)
        fold = stratified_folds(tv[:, -1].astype(int), folds, 1000 + k)
        probs = []
        for f in range(folds):
            path = os.path.join(tmp, f"fold{f}.csv")
            write_csv(path, head, tv[fold != f])
            probs.append(train_predict(tmp, f"m{f}", path, test_csv, best["params"], epochs, 2 + f))
        ens = np.mean(probs, axis=0)
    r, e = refit.argmax(1), ens.argmax(1)
    return {"acc": (accuracy(y, r), accuracy(y, e)), "f1": (macro_f1(y, r), macro_f1(y, e))}


def holdout(run, s, k, seeds):
    """A holdout winner as trained (90% of trainval) and refit (all of it); None for a
    cross-validated winner. Each side: the mean test score over `seeds` trainings."""
    st = json.load(gzip.open(os.path.join(run, s, str(k), "status.json.gz")))
    best = st["best"]
    if "folds" in best["result"]:
        return None
    epochs = int(best["result"].get("best_epoch") or 30)
    split = os.path.join(DATA, s, str(k))
    test_csv = os.path.join(split, "test.csv")
    y = read_csv(test_csv)[1][:, -1].astype(int)
    out = {"acc": [[], []], "f1": [[], []]}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, seeds + 1):
            for side, vf in ((0, 0.1), (1, 0)):
                p = train_predict(tmp, f"s{side}", os.path.join(split, "trainval.csv"), test_csv,
                                  best["params"], epochs, seed, vf).argmax(1)
                out["acc"][side].append(accuracy(y, p))
                out["f1"][side].append(macro_f1(y, p))
    return {m: (float(np.mean(v[0])), float(np.mean(v[1]))) for m, v in out.items()}


def fit_offset(logp, y):
    """The second class's offset in -4..4 (step 0.05) that maximises macro-F1 of
    argmax(logp + (0, o)) on these rows; ties to the offset nearest 0."""
    best, bo = macro_f1(y, logp.argmax(1)), 0.0
    for o in np.round(np.arange(-80, 81) * 0.05, 2):
        f = macro_f1(y, (logp[:, 1] + o > logp[:, 0]).astype(int))
        if f > best + 1e-12 or (abs(f - best) <= 1e-12 and abs(o) < abs(bo)):
            best, bo = f, o
    return bo


def cross_fitted_gain(logp, y):
    """What an offset fitted on half of these rows gains on the other half (macro-F1 against
    argmax), both ways, averaged; each class's rows alternate between the halves in order
    (as the product's ns_offsets_gain splits them)."""
    half = np.zeros(len(y), dtype=int)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        half[idx] = np.arange(len(idx)) % 2
    g = []
    for h in (0, 1):
        a, b = half == h, half != h
        o = fit_offset(logp[a], y[a])
        g.append(macro_f1(y[b], (logp[b, 1] + o > logp[b, 0]).astype(int)) - macro_f1(y[b], logp[b].argmax(1)))
    return float(np.mean(g))


GATE = {"rows": []}


def binary_holdout(run, s, k):
    """What offsets() and offsets_oof() start from for a binary holdout winner: a dict with
    its params and chosen epochs, the split's trainval rows (head, tv, ytv), the stratified
    10% `val` mask and the test labels y; None for other winners."""
    st = json.load(gzip.open(os.path.join(run, s, str(k), "status.json.gz")))
    best = st["best"]
    if "folds" in best["result"]:
        return None
    split = os.path.join(DATA, s, str(k))
    head, tv = read_csv(os.path.join(split, "trainval.csv"))
    ytv = tv[:, -1].astype(int)
    if ytv.max() != 1:
        return None
    test_csv = os.path.join(split, "test.csv")
    return {"params": best["params"], "epochs": int(best["result"].get("best_epoch") or 30),
            "head": head, "tv": tv, "ytv": ytv, "test_csv": test_csv,
            "y": read_csv(test_csv)[1][:, -1].astype(int),
            "val": stratified_folds(ytv, 10, 2000 + k) == 0}


def train_90(tmp, w):
    """w's config trained on trainval less its 10%: (probabilities on the 10%, on the test
    rows)."""
    tr, va = os.path.join(tmp, "tr.csv"), os.path.join(tmp, "va.csv")
    write_csv(tr, w["head"], w["tv"][~w["val"]])
    write_csv(va, w["head"], w["tv"][w["val"]])
    pv = train_predict(tmp, "m", tr, va, w["params"], w["epochs"], 1)
    pred = os.path.join(tmp, "t.csv")
    subprocess.run([NNS, "predict", os.path.join(tmp, "m.nsm"), w["test_csv"], "-o", pred,
                    "--no-drift-check"], check=True, stderr=subprocess.DEVNULL)
    return pv, read_csv(pred)[1][:, 2:]


def offsets(run, s, k, gate=False):
    """A binary holdout winner trained on 90% of trainval, its offset fitted on the other
    10%: (argmax, argmax with the offset) on the test rows; None for other winners. With
    gate, (argmax with the offset always, with the offset only when its cross-fitted gain on
    the 10% is above 0) instead; the gains are kept in GATE for the summary."""
    w = binary_holdout(run, s, k)
    if not w:
        return None
    ytv, val, y = w["ytv"], w["val"], w["y"]
    with tempfile.TemporaryDirectory() as tmp:
        pv, pt = train_90(tmp, w)
    lv = np.log(np.clip(pv, 1e-12, 1))
    o = fit_offset(lv, ytv[val])
    lt = np.log(np.clip(pt, 1e-12, 1))
    a, b = lt.argmax(1), (lt[:, 1] + o > lt[:, 0]).astype(int)
    if gate:
        own = macro_f1(ytv[val], (lv[:, 1] + o > lv[:, 0]).astype(int)) - macro_f1(ytv[val], lv.argmax(1))
        cf = cross_fitted_gain(lv, ytv[val]) if o != 0 else 0.0
        test = macro_f1(y, b) - macro_f1(y, a)
        GATE["rows"].append((own, cf, test))
        g = b if cf > 0 else a
        print(f"  {s} split {k}: offset {o:+.2f}, gain on the 10%: fitted {own:+.4f}, cross-fitted "
              f"{cf:+.4f}; on the test rows {test:+.4f}; gated: {'applied' if cf > 0 else 'not applied'}",
              flush=True)
        return {"acc": (accuracy(y, b), accuracy(y, g)), "f1": (macro_f1(y, b), macro_f1(y, g))}
    print(f"  {s} split {k}: offset {o:+.2f}, test macro-F1 {macro_f1(y, a):.4f} -> {macro_f1(y, b):.4f}",
          flush=True)
    return {"acc": (accuracy(y, a), accuracy(y, b)), "f1": (macro_f1(y, a), macro_f1(y, b))}


def offsets_oof(run, s, k, folds):
    """A binary holdout winner trained on 90% of trainval (as in offsets()), with the second
    class's offset fitted two ways: on the other 10% (as the product fits a holdout winner's
    offset), and on the out-of-fold predictions of every trainval row (`folds` models, each
    trained on the other folds for the chosen epochs, seed 1: as many held-out rows as the
    study has, for `folds` more trainings): (10% fit, out-of-fold fit) on the test rows; None
    for other winners."""
    w = binary_holdout(run, s, k)
    if not w:
        return None
    head, tv, ytv, val, y = w["head"], w["tv"], w["ytv"], w["val"], w["y"]
    fold = stratified_folds(ytv, folds, 3000 + k)
    oof = np.zeros((len(ytv), 2))
    with tempfile.TemporaryDirectory() as tmp:
        pv, pt = train_90(tmp, w)
        for f in range(folds):
            a, b = os.path.join(tmp, f"a{f}.csv"), os.path.join(tmp, f"b{f}.csv")
            write_csv(a, head, tv[fold != f])
            write_csv(b, head, tv[fold == f])
            oof[fold == f] = train_predict(tmp, f"f{f}", a, b, w["params"], w["epochs"], 1)
    lv = np.log(np.clip(pv, 1e-12, 1))
    lo = np.log(np.clip(oof, 1e-12, 1))
    o10, oo = fit_offset(lv, ytv[val]), fit_offset(lo, ytv)
    lt = np.log(np.clip(pt, 1e-12, 1))
    am = lt.argmax(1)
    b10 = (lt[:, 1] + o10 > lt[:, 0]).astype(int)
    bo = (lt[:, 1] + oo > lt[:, 0]).astype(int)
    print(f"  {s} split {k}: offset on the 10% {o10:+.2f}, out-of-fold {oo:+.2f}; test acc/F1 argmax "
          f"{accuracy(y, am):.4f}/{macro_f1(y, am):.4f}, 10% {accuracy(y, b10):.4f}/{macro_f1(y, b10):.4f}, "
          f"out-of-fold {accuracy(y, bo):.4f}/{macro_f1(y, bo):.4f}", flush=True)
    return {"acc": (accuracy(y, b10), accuracy(y, bo)), "f1": (macro_f1(y, b10), macro_f1(y, bo))}


def status(run, s, k):
    """The run's status of set s, split k (its study's `nnsearch status --json`)."""
    return json.load(gzip.open(os.path.join(run, s, str(k), "status.json.gz")))


def scores(y, a, b):
    """Test accuracy and macro-F1 of the predicted classes a and b, side by side."""
    return {"acc": (accuracy(y, a), accuracy(y, b)), "f1": (macro_f1(y, a), macro_f1(y, b))}


def epochs_of(trial):
    return int((trial.get("result") or {}).get("best_epoch") or 30)


def final_trainings(st, s, k, runs):
    """Test-row class probabilities of each (params, epochs, seed) in runs, trained as the
    study trains its winner's final model (refit on every trainval row under cross-
    validation, on the rows left after the validation split under holdout); and the test
    labels."""
    vf = 0 if "folds" in st["best"]["result"] else 0.1
    split = os.path.join(DATA, s, str(k))
    test_csv = os.path.join(split, "test.csv")
    y = read_csv(test_csv)[1][:, -1].astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        probs = [train_predict(tmp, f"r{i}", os.path.join(split, "trainval.csv"), test_csv,
                               params, epochs, seed, vf)
                 for i, (params, epochs, seed) in enumerate(runs)]
    return probs, y


def seed_ensemble(run, s, k, seeds):
    """The winner's final model as the study makes it with training seed 1, against the
    mean class probabilities of that same training with seeds 1..`seeds`."""
    st = status(run, s, k)
    best = st["best"]
    probs, y = final_trainings(st, s, k, [(best["params"], epochs_of(best), seed)
                                          for seed in range(1, seeds + 1)])
    return scores(y, probs[0].argmax(1), np.mean(probs, axis=0).argmax(1))


def rescored(st):
    """The trials select re-scored (its decision's rescored.trials) and the key of the study
    metric in them; ([], None) when it re-scored none."""
    dec = next((g["decision"] for g in st["stages"] if g["name"].endswith(":select")), None)
    resc = dec.get("rescored", {}).get("trials", []) if isinstance(dec, dict) else []
    metric = next((key for key in ("val_macro_f1", "val_balanced_acc", "val_acc")
                   if resc and key in resc[0]), None)
    return (resc, metric) if metric else ([], None)


def trained_trials(st, s, k, numbers):
    """final_trainings of the configs of the trials numbered, each for its own epochs, seed 1."""
    trials = {t["number"]: t for t in st["trials"]}
    return final_trainings(st, s, k, [(trials[n]["params"], epochs_of(trials[n]), 1)
                                      for n in numbers])


def top_ensemble(run, s, k, n):
    """The winner's final model against the mean class probabilities of it and the n-1 best
    other configs select re-scored (by the study metric, ties by number); None when select
    re-scored fewer than n."""
    st = status(run, s, k)
    resc, metric = rescored(st)
    win = st["best"]["number"]
    order = [win] + [r["trial"] for r in sorted(resc, key=lambda r: (-r[metric], r["trial"]))
                     if r["trial"] != win]
    if not resc or len(order) < n:
        return None
    probs, y = trained_trials(st, s, k, order[:n])
    return scores(y, probs[0].argmax(1), np.mean(probs, axis=0).argmax(1))


def n_params(p, d, k):
    """Parameters of the MLP of trial params p for d features and k classes."""
    w, depth = int(p["model.width"]), int(p["model.depth"])
    return d * w + w + (depth - 1) * (w * w + w) + w * k + k


def tie_pick(st, s, k, m):
    """The re-scored trial select's near-tie rule picks with m standard errors of the best
    (m = 0: the best metric): fewest parameters, then the better metric, then the lower
    number; None when select re-scored none."""
    resc, metric = rescored(st)
    if not resc:
        return None
    best = min(resc, key=lambda r: (-r[metric], r["trial"]))
    if m == 0:
        return best["trial"]
    trials = {t["number"]: t for t in st["trials"]}
    head, tv = read_csv(os.path.join(DATA, s, str(k), "trainval.csv"))
    d, kk = len(head) - 1, len(np.unique(tv[:, -1]))
    near = [r for r in resc if abs(r[metric] - best[metric]) <= m * best["se"]]
    return min(near, key=lambda r: (n_params(trials[r["trial"]]["params"], d, kk), -r[metric],
                                    r["trial"]))["trial"]


def rule_vs_winner(run, s, k, m):
    """The winner's final model against that of tie_pick(m) (one training when they are the
    same trial); None when select re-scored none."""
    st = status(run, s, k)
    top = tie_pick(st, s, k, m)
    if top is None:
        return None
    win = st["best"]["number"]
    probs, y = trained_trials(st, s, k, [win] if top == win else [win, top])
    return scores(y, probs[0].argmax(1), probs[-1].argmax(1))


def best_any_health(st):
    """The complete trial of a random or bayes stage with the best study metric, whatever its
    health findings (ties by number): what select would take if health did not disqualify."""
    hib = st["study"].get("higher_is_better", True)
    full = [t for t in st["trials"] if t["state"] == "complete" and t.get("val_metric") is not None
            and t["stage"].split(":")[-1] in ("random", "bayes")]
    return min(full, key=lambda t: ((-1 if hib else 1) * t["val_metric"], t["number"]))["number"]


def health_vs_winner(run, s, k):
    """The winner's final model against the same training of best_any_health's trial (one
    training when they are the same trial)."""
    st = status(run, s, k)
    top, win = best_any_health(st), st["best"]["number"]
    probs, y = trained_trials(st, s, k, [win] if top == win else [win, top])
    return scores(y, probs[0].argmax(1), probs[-1].argmax(1))


def smoothing(run, s, k, eps):
    """The winner's final model without and with label smoothing eps (seed 1 both)."""
    st = status(run, s, k)
    best = st["best"]
    smooth = dict(best["params"], **{"model.label_smoothing": eps})
    probs, y = final_trainings(st, s, k, [(best["params"], epochs_of(best), 1),
                                          (smooth, epochs_of(best), 1)])
    return scores(y, probs[0].argmax(1), probs[1].argmax(1))


def refit_scale(run, s, k, f):
    """A cross-validated winner refit on every trainval row for its chosen epochs against
    round(f x) of them (seed 1 both); None for a holdout winner."""
    st = status(run, s, k)
    best = st["best"]
    if "folds" not in best["result"]:
        return None
    e = epochs_of(best)
    probs, y = final_trainings(st, s, k, [(best["params"], e, 1),
                                          (best["params"], max(1, round(f * e)), 1)])
    return scores(y, probs[0].argmax(1), probs[1].argmax(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--sets", default="")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--holdout", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-ensemble", type=int, default=0, metavar="N")
    ap.add_argument("--top-ensemble", type=int, default=0, metavar="N")
    ap.add_argument("--best-mean", action="store_true")
    ap.add_argument("--tie-se", type=float, default=None, metavar="M")
    ap.add_argument("--refit-scale", type=float, default=None, metavar="F")
    ap.add_argument("--smoothing", type=float, default=None, metavar="E")
    ap.add_argument("--ignore-health", action="store_true")
    ap.add_argument("--offsets", action="store_true")
    ap.add_argument("--gate", action="store_true")
    ap.add_argument("--oof", action="store_true")
    a = ap.parse_args()
    sets = a.sets.split(",") if a.sets else sorted(
        d for d in os.listdir(a.run) if os.path.isdir(os.path.join(a.run, d)))
    if a.offsets and a.oof:
        print(f"binary holdout winners of {a.run}: a logit offset fitted on 10% of trainval vs on "
              f"the out-of-fold predictions of {a.folds} folds of all of it, both applied to the "
              f"model trained on the other 90%; {NNS}")
        compare(a.run, sets, lambda s, k: offsets_oof(a.run, s, k, a.folds), ("10%", "oof"),
                "out-of-fold - 10%")
    elif a.offsets and a.gate:
        print(f"binary holdout winners of {a.run}: a logit offset fitted on 10% of trainval "
              f"(trained on the other 90%), always applied vs applied only when its cross-fitted "
              f"gain on the 10% is above 0; {NNS}")
        compare(a.run, sets, lambda s, k: offsets(a.run, s, k, gate=True), ("always", "gated"),
                "gated - always")
        r = np.array(GATE["rows"])
        if len(r):
            print(f"test gain vs its estimate, mean |estimate - test gain| over {len(r)} splits: "
                  f"the fit's own {np.abs(r[:, 0] - r[:, 2]).mean():.4f} (signed {np.mean(r[:, 0] - r[:, 2]):+.4f}), "
                  f"cross-fitted {np.abs(r[:, 1] - r[:, 2]).mean():.4f} (signed {np.mean(r[:, 1] - r[:, 2]):+.4f})")
    elif a.offsets:
        print(f"binary holdout winners of {a.run}: argmax vs a logit offset fitted on 10% of "
              f"trainval (trained on the other 90%); {NNS}")
        compare(a.run, sets, lambda s, k: offsets(a.run, s, k), ("argmax", "offset"),
                "offset - argmax")
    elif a.best_mean:
        print(f"the final model of the winners of {a.run} vs that of the re-scored config with "
              f"the best study metric; {NNS}")
        compare(a.run, sets, lambda s, k: rule_vs_winner(a.run, s, k, 0), ("winner", "best"),
                "best metric - winner")
    elif a.ignore_health:
        print(f"the final model of the winners of {a.run} vs that of the random or bayes trial "
              f"with the best study metric, whatever its health findings; {NNS}")
        compare(a.run, sets, lambda s, k: health_vs_winner(a.run, s, k), ("winner", "any"),
                "best of any health - winner")
    elif a.smoothing is not None:
        print(f"the final model of the winners of {a.run} without and with label smoothing "
              f"{a.smoothing:g}; {NNS}")
        compare(a.run, sets, lambda s, k: smoothing(a.run, s, k, a.smoothing),
                ("none", "smooth"), "smoothed - none")
    elif a.refit_scale is not None:
        print(f"cross-validated winners of {a.run}: refit for the chosen epochs vs "
              f"{a.refit_scale:g} times as many; {NNS}")
        compare(a.run, sets, lambda s, k: refit_scale(a.run, s, k, a.refit_scale),
                ("chosen", "scaled"), "scaled - chosen")
    elif a.tie_se is not None:
        print(f"the final model of the winners of {a.run} vs that of the re-scored config the "
              f"near-tie rule picks within {a.tie_se:g} standard errors; {NNS}")
        compare(a.run, sets, lambda s, k: rule_vs_winner(a.run, s, k, a.tie_se), ("winner", "rule"),
                "rule - winner")
    elif a.top_ensemble > 1:
        print(f"the final model of the winners of {a.run} vs the mean of the probabilities of "
              f"the {a.top_ensemble} best re-scored configs; {NNS}")
        compare(a.run, sets, lambda s, k: top_ensemble(a.run, s, k, a.top_ensemble),
                ("winner", "top"), "top ensemble - winner")
    elif a.seed_ensemble > 1:
        print(f"the final model of the winners of {a.run}, one training seed vs the mean of "
              f"{a.seed_ensemble} seeds' probabilities; {NNS}")
        compare(a.run, sets, lambda s, k: seed_ensemble(a.run, s, k, a.seed_ensemble),
                ("one", "seeds"), "seed ensemble - one")
    elif a.holdout:
        print(f"holdout winners of {a.run}: as trained (val_fraction 0.1) vs refit on every "
              f"trainval row, {a.seeds} seeds each; {NNS}")
        compare(a.run, sets, lambda s, k: holdout(a.run, s, k, a.seeds), ("held", "refit"),
                "refit - as trained")
    else:
        print(f"refit vs {a.folds}-fold ensemble of the winners of {a.run}; {NNS}")
        compare(a.run, sets, lambda s, k: one(a.run, s, k, a.folds), ("refit", "ens"),
                "ensemble - refit")


def compare(run, sets, side_by_side, names, what):
    """Per set, the mean of each side over the splits side_by_side(set, split) scored (it
    returns {"acc": (a, b), "f1": (a, b)}, or None to pass a split over), the paired
    difference b - a with its standard error; then the mean difference over the sets."""
    a, b = names
    print(f"{'set':<14} {'acc ' + a:>9} {'acc ' + b:>9} {'diff±SE':>15} {'F1 ' + a:>9} {'F1 ' + b:>9} {'diff±SE':>15}")
    allr = {"acc": [], "f1": []}
    for s in sets:
        res = []
        for k in sorted(os.listdir(os.path.join(run, s)), key=int):
            if os.path.exists(os.path.join(run, s, k, "status.json.gz")):
                r = side_by_side(s, int(k))
                if r:
                    res.append(r)
        if not res:
            continue
        out = [f"{s:<14}"]
        for m in ("acc", "f1"):
            x = np.array([r[m][0] for r in res])
            y = np.array([r[m][1] for r in res])
            d = y - x
            se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            out.append(f"{x.mean():>9.3f} {y.mean():>9.3f} {d.mean():>+8.4f}±{se:.4f}")
            allr[m].append(d.mean())
        print(" ".join(out) + f"  ({len(res)} splits)", flush=True)
    for m in ("acc", "f1"):
        d = np.array(allr[m])
        if len(d):
            print(f"mean over sets, {m}: {what} {d.mean():+.4f} "
                  f"(better on {int((d > 0).sum())}, worse on {int((d < 0).sum())} of {len(d)} sets)")


if __name__ == "__main__":
    main()
