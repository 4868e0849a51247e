"""tabular_report.py — the scoring and the summary of scripts/bench/tabular: nnsearch's winner
scored on the test rows from its predictions, one TSV row per run, and the tables and goal
lines computed from the TSV alone. Not the runs themselves (the driver starts them).

usage: /usr/bin/python3 tabular_report.py winner STATUS_JSON            -> the winner's trial number
       /usr/bin/python3 tabular_report.py nns STATUS_JSON PRED_CSV TEST_CSV -> one JSON object
       /usr/bin/python3 tabular_report.py append TSV SET SPLIT SIDE BUDGET SECONDS "ROWS D K RATIO" [JSON]
       /usr/bin/python3 tabular_report.py line SIDE JSON SECONDS           -> one progress line
       /usr/bin/python3 tabular_report.py summarise TSV
       /usr/bin/python3 tabular_report.py compare A_TSV B_TSV           -> nnsearch of A against B
"""
import json
import math
import os
import statistics
import sys

import numpy as np

from tabular_metrics import accuracy, balanced_accuracy, macro_f1

COLUMNS = ("set", "split", "side", "status", "metric", "test_acc", "test_f1", "test_bacc",
           "val_score", "test_score", "trials", "seconds", "budget", "rows", "features",
           "classes", "ratio", "test_noise", "val_measured")
SIDES = ("nnsearch", "optuna")
IMBALANCED = 3.0  # largest / smallest class count above this: an imbalanced set


def select_decision(status):
    for s in status["stages"]:
        if s["name"].endswith(":select"):
            if s["state"] != "complete" or not s["decision"] or s["decision"].get("winner") is None:
                raise SystemExit(f"tabular_report: the select stage has no winner: {json.dumps(s)}")
            return s["decision"]
    raise SystemExit("tabular_report: the study has no select stage")


def nns(status_path, pred_path, test_path):
    """nnsearch's run: the select stage's winner (its validation metric is the estimate),
    its saved model's predictions on the test rows -> accuracy, macro-F1, balanced accuracy.
    The accuracy is checked against the one the select stage computed itself."""
    status = json.load(open(status_path))
    dec = select_decision(status)
    metric = status["study"]["metric"]
    y = np.loadtxt(test_path, delimiter=",", skiprows=1, ndmin=2)[:, -1].astype(int)
    p = np.loadtxt(pred_path, delimiter=",", skiprows=1, ndmin=2)[:, 1].astype(int)
    if len(p) != len(y):
        raise SystemExit(f"tabular_report: {len(p)} predictions for {len(y)} test rows")
    acc = accuracy(y, p)
    if dec.get("test_acc") is not None and abs(acc - dec["test_acc"]) > 1e-5:
        raise SystemExit(f"tabular_report: accuracy from the predictions {acc:.6f} differs from "
                         f"the select stage's test_acc {dec['test_acc']}")
    scores = {"val_acc": acc, "val_balanced_acc": balanced_accuracy(y, p), "val_macro_f1": macro_f1(y, p)}
    if metric not in scores:
        raise SystemExit(f"tabular_report: study metric {metric} is not a classification score")
    ran = [t for t in status["trials"] if t["state"] in ("complete", "pruned", "diverged", "failed")]
    # the estimate nnsearch gives of the winner's score on new data (the select stage's
    # bias-corrected one when it made one), and the winner's own measured validation score
    est = (dec.get("estimate") or {}).get(metric)
    print(json.dumps({"metric": metric, "val_score": dec[metric] if est is None else est,
                      "val_measured": dec[metric], "winner": dec["winner"],
                      "winner_stage": dec["stage"], "test_acc": acc, "test_f1": macro_f1(y, p),
                      "test_bacc": balanced_accuracy(y, p), "test_score": scores[metric],
                      "trials": len(ran), "test_noise": test_noise(y, p, metric)}))


def test_noise(y, p, metric):
    """How far the test score of this model on these test rows lies, on average, from its
    expected score on new rows like them: sqrt(2/pi) x the bootstrap sd of the score over
    the test rows (300 resamples, seed 1). No estimate made before the test can be
    expected to come closer than this: the floor of |estimate - test|."""
    f = {"val_acc": accuracy, "val_balanced_acc": balanced_accuracy, "val_macro_f1": macro_f1}[metric]
    rng = np.random.default_rng(1)
    b = [f(y[i], p[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(300))]
    return math.sqrt(2 / math.pi) * float(np.std(b))


def append(tsv, name, split, side, budget, seconds, info, result_path=None):
    """One row; a run that failed (no JSON) gets status 'failed' and empty scores."""
    rows, d, k, ratio = info.split()
    r = json.load(open(result_path)) if result_path else None
    row = {"set": name, "split": split, "side": side, "status": "ok" if r else "failed",
           "seconds": f"{float(seconds):.2f}", "budget": budget, "rows": rows, "features": d,
           "classes": k, "ratio": ratio}
    for c in ("metric", "test_acc", "test_f1", "test_bacc", "val_score", "test_score", "trials", "test_noise",
              "val_measured"):
        v = r.get(c) if r else None
        row[c] = "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))
    new = not os.path.exists(tsv) or all(line.startswith("#") for line in open(tsv))
    with open(tsv, "a") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(row[c] for c in COLUMNS) + "\n")


def read_tsv(path):
    comments, rows, header = [], [], None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("#"):
            comments.append(line)
        elif header is None:
            header = line.split("\t")
        elif line:
            rows.append(dict(zip(header, line.split("\t"))))
    return comments, rows


def mean(v):
    return statistics.fmean(v) if v else math.nan


def sfmt(x):
    """A signed figure in a 9-wide column; '-' when there is none."""
    return f"{'-':>9}" if x is None or not math.isfinite(x) else f"{x:+9.4f}"


def sd(v):
    return statistics.stdev(v) if len(v) > 1 else math.nan


def fmt(x, w=6, p=3):
    return f"{'-':>{w}}" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{w}.{p}f}"


def pm(m, s, p=3):
    """'0.912±0.013', or the mean alone when the spread is unknown (one value)."""
    if math.isnan(m):
        return "-"
    return f"{m:.{p}f}" if math.isnan(s) else f"{m:.{p}f}±{s:.{p}f}"


def summarise(path):
    comments, rows = read_tsv(path)
    for c in comments:
        print(c[1:].strip())
    sets = list(dict.fromkeys(r["set"] for r in rows))
    budgets = sorted({r["budget"] for r in rows})
    splits = sorted({int(r["split"]) for r in rows})
    print(f"runs: {len(rows)} ({len(sets)} sets x splits {','.join(map(str, splits))} x "
          f"{len(SIDES)} sides), budget {'/'.join(budgets)} s per run")
    failed = [r for r in rows if r["status"] != "ok"]
    per = {}
    for name in sets:
        by = {(r["side"], int(r["split"])): r for r in rows if r["set"] == name}
        info = next(r for r in rows if r["set"] == name)
        ok = {s: [r for (side, _), r in sorted(by.items()) if side == s and r["status"] == "ok"] for s in SIDES}
        paired = [k for (side, k) in by if side == "nnsearch" and by[(side, k)]["status"] == "ok"
                  and ("optuna", k) in by and by[("optuna", k)]["status"] == "ok"]
        x = {"info": info, "imbalanced": float(info["ratio"]) > IMBALANCED}
        for s in SIDES:
            v = ok[s]
            x[s] = {
                "acc": [float(r["test_acc"]) for r in v], "f1": [float(r["test_f1"]) for r in v],
                "gap": [abs(float(r["val_score"]) - float(r["test_score"])) for r in v],
                "gap_meas": [abs(float(r["val_measured"]) - float(r["test_score"])) for r in v if r.get("val_measured")],
                "bias": [float(r["val_score"]) - float(r["test_score"]) for r in v],
                "bias_meas": [float(r["val_measured"]) - float(r["test_score"]) for r in v if r.get("val_measured")],
                "trials": [int(r["trials"]) for r in v],
                "noise": [float(r["test_noise"]) for r in v if r.get("test_noise")],
                "used": [float(r["seconds"]) / float(r["budget"]) for r in v],
                "metric": sorted({r["metric"] for r in v}),
            }
        for m in ("acc", "f1"):
            by_k = {k: float(by[("nnsearch", k)][f"test_{m}"]) - float(by[("optuna", k)][f"test_{m}"]) for k in paired}
            dd = list(by_k.values())
            x[f"d_{m}"] = (mean(dd), sd(dd) / math.sqrt(len(dd)) if len(dd) > 1 else math.nan, len(dd))
            if m == "acc":
                x["lead"] = by_k  # nnsearch - Optuna by split, for the lead split by split
        per[name] = x

    print()
    print("test accuracy and macro-F1 (mean±sd over splits); diff = nnsearch - Optuna, paired by split, ±SE")
    h = (f"{'set':<14} {'rows':>5} {'d':>4} {'K':>3} {'ratio':>5} {'metric nns/opt':<17} "
         f"{'acc nnsearch':>12} {'acc Optuna':>12} {'diff acc':>14} "
         f"{'F1 nnsearch':>12} {'F1 Optuna':>12} {'diff F1':>14}")
    print(h)
    print("-" * len(h))
    short = {"val_acc": "acc", "val_balanced_acc": "bacc", "val_macro_f1": "f1"}
    for name, x in per.items():
        i = x["info"]
        met = "/".join(",".join(short.get(m, m) for m in x[s]["metric"]) or "-" for s in SIDES)
        print(f"{name:<14} {i['rows']:>5} {i['features']:>4} {i['classes']:>3} {float(i['ratio']):5.3g} {met:<17} "
              f"{pm(mean(x['nnsearch']['acc']), sd(x['nnsearch']['acc'])):>12} {pm(mean(x['optuna']['acc']), sd(x['optuna']['acc'])):>12} "
              f"{pm(*x['d_acc'][:2]):>14} "
              f"{pm(mean(x['nnsearch']['f1']), sd(x['nnsearch']['f1'])):>12} {pm(mean(x['optuna']['f1']), sd(x['optuna']['f1'])):>12} "
              f"{pm(*x['d_f1'][:2]):>14}")
    avg = {s: {m: mean([mean(x[s][m]) for x in per.values() if x[s][m]]) for m in ("acc", "f1", "gap", "gap_meas", "bias", "bias_meas", "used", "trials", "noise")}
           for s in SIDES}
    dacc = mean([x["d_acc"][0] for x in per.values() if x["d_acc"][2]])
    df1 = mean([x["d_f1"][0] for x in per.values() if x["d_f1"][2]])
    print("-" * len(h))
    print(f"{'mean of sets':<14} {'':>5} {'':>4} {'':>3} {'':>5} {'':<17} {fmt(avg['nnsearch']['acc'], 12)} "
          f"{fmt(avg['optuna']['acc'], 12)} {fmt(dacc, 14)} {fmt(avg['nnsearch']['f1'], 12)} "
          f"{fmt(avg['optuna']['f1'], 12)} {fmt(df1, 14)}")
    # split by split, how far the accuracy lead over the sets moves: its spread over the
    # splits is what a claim about the mean lead has to be read against
    by_split = {k: [x["lead"][k] for x in per.values() if k in x["lead"]] for k in splits}
    by_split = {k: v for k, v in by_split.items() if v}
    if len(by_split) > 1:
        leads = [mean(v) for v in by_split.values()]
        print("accuracy lead by split (nnsearch - Optuna, mean over the sets paired at that split): "
              + ", ".join(f"{k}: {mean(v):+.4f} ({len(v)} sets)" for k, v in by_split.items())
              + f"; over the splits {mean(leads):+.4f} ± {sd(leads) / math.sqrt(len(leads)):.4f} (SE)")

    print()
    print("|estimate - test|: |the estimate of the chosen configuration's score - the same score on the test rows|, mean over")
    print("splits; nnsearch's estimate is its select stage's bias-corrected one where it made one (else the winner's")
    print("validation score); |meas-test|: the same with the winner's own measured validation score;")
    print("floor: the test rows' own noise, sqrt(2/pi) x the bootstrap sd of nnsearch's test score (no estimate can be")
    print("expected closer); trials: trials run, mean over splits; used: wall seconds / budget, mean over splits;")
    print("bias est, bias meas: nnsearch's estimate - test and its own measured score - test, signed, mean over splits")
    h2 = f"{'set':<14} {'|est-test| nns':>15} {'|meas-test| nns':>16} {'|est-test| opt':>15} {'floor':>6} {'trials nns':>11} {'trials opt':>11} {'used nns':>9} {'used opt':>9} {'bias est':>9} {'bias meas':>9}"
    print(h2)
    print("-" * len(h2))
    for name, x in per.items():
        n, o = x["nnsearch"], x["optuna"]
        print(f"{name:<14} {fmt(mean(n['gap']), 15)} {fmt(mean(n['gap_meas']) if n['gap_meas'] else None, 16)} {fmt(mean(o['gap']), 15)} {fmt(mean(n['noise']) if n['noise'] else None, 6)} {fmt(mean(n['trials']), 11, 0)} "
              f"{fmt(mean(o['trials']), 11, 0)} {fmt(mean(n['used']), 9, 2)} {fmt(mean(o['used']), 9, 2)} "
              f"{sfmt(mean(n['bias']))} {sfmt(mean(n['bias_meas']) if n['bias_meas'] else None)}")
    print("-" * len(h2))
    print(f"{'mean of sets':<14} {fmt(avg['nnsearch']['gap'], 15)} {fmt(avg['nnsearch']['gap_meas'], 16)} {fmt(avg['optuna']['gap'], 15)} {fmt(avg['nnsearch']['noise'], 6)} "
          f"{fmt(avg['nnsearch']['trials'], 11, 0)} {fmt(avg['optuna']['trials'], 11, 0)} "
          f"{fmt(avg['nnsearch']['used'], 9, 2)} {fmt(avg['optuna']['used'], 9, 2)} "
          f"{sfmt(avg['nnsearch']['bias'])} {sfmt(avg['nnsearch']['bias_meas'])}")

    print()
    print("What must hold:")
    a = avg["nnsearch"]["acc"] >= avg["optuna"]["acc"] + 0.01
    print(f"(a) mean test accuracy nnsearch {avg['nnsearch']['acc']:.4f} >= Optuna {avg['optuna']['acc']:.4f} + 0.01: "
          f"{'met' if a else 'NOT met'}")
    imb = [n for n, x in per.items() if x["imbalanced"]]
    worse = [n for n in imb if not mean(per[n]["nnsearch"]["f1"]) >= mean(per[n]["optuna"]["f1"])]
    print(f"(b) macro-F1 nnsearch >= Optuna on every imbalanced set (ratio > {IMBALANCED:g}: {', '.join(imb) or 'none'}): "
          + ("not judged (no imbalanced set)" if not imb else "met" if not worse else f"NOT met ({', '.join(worse)})"))
    # (c) on the set's own measure: accuracy, or macro-F1 on an imbalanced set
    judged, behind = [], []
    for n, x in per.items():
        m, se, k = x["d_f1"] if x["imbalanced"] else x["d_acc"]
        if k > 1:
            judged.append(n)
            if m < -se:
                behind.append(f"{n} {m:+.3f} (SE {se:.3f})")
    if not judged:
        print("(c) no set worse than Optuna by more than one SE of the paired difference (accuracy; macro-F1 on "
              "imbalanced sets): not judged (needs >= 2 splits per set)")
    else:
        print(f"(c) no set worse than Optuna by more than one SE of the paired difference (accuracy; macro-F1 on "
              f"imbalanced sets; {len(judged)} sets judged): " + ("met" if not behind else f"NOT met ({'; '.join(behind)})"))
    d = avg["nnsearch"]["gap"] <= 0.5 * avg["optuna"]["gap"]
    print(f"(d) mean |estimate - test| nnsearch {avg['nnsearch']['gap']:.4f} <= half of Optuna's {avg['optuna']['gap']:.4f}: "
          f"{'met' if d else 'NOT met'} (floor from the test rows' noise: {fmt(avg['nnsearch']['noise'], 0, 4).strip()})")
    used = [float(r["seconds"]) / float(r["budget"]) for r in rows if r["side"] == "nnsearch" and r["status"] == "ok"]
    e = bool(used) and mean(used) >= 0.9
    print(f"(e) nnsearch used >= 90% of the budget: mean {mean(used):.2f}, min {min(used) if used else math.nan:.2f} "
          f"over {len(used)} runs (Optuna: mean {avg['optuna']['used']:.2f}): {'met' if e else 'NOT met'}")
    if failed:
        print()
        print(f"failed runs ({len(failed)}), left out of the figures above:")
        for r in failed:
            print(f"  {r['set']} split {r['split']} {r['side']}")


def compare(path_a, path_b):
    """nnsearch of run A against nnsearch of run B (e.g. two search.resampling modes), paired
    by set and split: test accuracy, macro-F1, |estimate - test|, trials."""
    runs = []
    for p in (path_a, path_b):
        comments, rows = read_tsv(p)
        print(f"{'AB'[len(runs)]}: {p}")
        for c in comments:
            print("   " + c[1:].strip())
        runs.append({(r["set"], int(r["split"])): r for r in rows
                     if r["side"] == "nnsearch" and r["status"] == "ok"})
    keys = sorted(set(runs[0]) & set(runs[1]))
    sets = list(dict.fromkeys(k[0] for k in keys))
    print()
    print("paired by split; diff = B - A ± SE; gap = |estimate - test|")
    print(f"{'set':<14} {'rows':>5} {'n':>2} {'acc A':>6} {'acc B':>6} {'diff acc':>14} {'F1 A':>6} {'F1 B':>6} "
          f"{'diff F1':>14} {'gap A':>6} {'gap B':>6} {'trials A':>8} {'trials B':>8}")
    tot = {"acc": [], "f1": [], "gap": []}
    same = 0  # pairs whose winners scored alike on the test rows: most likely the same config
    for name in sets:
        ks = [k for k in keys if k[0] == name]
        pair = [(runs[0][k], runs[1][k]) for k in ks]
        same += sum(x["test_acc"] == y["test_acc"] and x["test_f1"] == y["test_f1"] for x, y in pair)
        line = f"{name:<14} {pair[0][0]['rows']:>5} {len(ks):>2}"
        for m in ("acc", "f1"):
            a = [float(x[f"test_{m}"]) for x, _ in pair]
            b = [float(y[f"test_{m}"]) for _, y in pair]
            d = [y - x for x, y in zip(a, b)]
            se = sd(d) / math.sqrt(len(d)) if len(d) > 1 else math.nan
            line += f" {mean(a):6.3f} {mean(b):6.3f} {pm(mean(d), se):>14}"
            tot[m].append(mean(d))
        gaps = [mean([abs(float(r["val_score"]) - float(r["test_score"])) for r in side]) for side in zip(*pair)]
        trials = [mean([int(r["trials"]) for r in side]) for side in zip(*pair)]
        line += f" {gaps[0]:6.3f} {gaps[1]:6.3f} {trials[0]:8.0f} {trials[1]:8.0f}"
        tot["gap"].append(gaps)
        print(line)
    for m in ("acc", "f1"):
        d = tot[m]
        print(f"mean over sets, test {m}: B - A {mean(d):+.4f} (B better on {sum(x > 0 for x in d)}, "
              f"worse on {sum(x < 0 for x in d)} of {len(d)} sets)")
    if tot["gap"]:
        print(f"mean over sets, gap: A {mean([g[0] for g in tot['gap']]):.4f}, "
              f"B {mean([g[1] for g in tot['gap']]):.4f}")
        print(f"pairs with the same test accuracy and macro-F1 in A and B: {same} of {len(keys)}")


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "winner":
        print(select_decision(json.load(open(a[1])))["winner"])
    elif len(a) == 4 and a[0] == "nns":
        nns(*a[1:])
    elif len(a) in (8, 9) and a[0] == "append":
        append(*a[1:])
    elif len(a) == 4 and a[0] == "line":
        r = json.load(open(a[2]))
        print(f"  {a[1]:<8} test acc {r['test_acc']:.3f}  macro-F1 {r['test_f1']:.3f}  {r['metric']} "
              f"val {r['val_score']:.3f} test {r['test_score']:.3f}  {r['trials']} trials  {float(a[3]):.1f} s")
    elif len(a) == 2 and a[0] == "summarise":
        summarise(a[1])
    elif len(a) == 3 and a[0] == "compare":
        compare(a[1], a[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
