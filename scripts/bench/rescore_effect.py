"""rescore_effect.py — what select's re-scoring rounds change in the winner of a
`scripts/bench/tabular` run (made with the study budget, so that select re-scored). For each
run whose select decision has `rescored` rounds: the winner select would have taken without
them (the same rule on the trials' own fold figures: the eligible trials within one
standard error of the best, the fewest parameters, then the fewest health findings, the
better metric, the lower number) and the re-scored winner, each trained on all of the
split's training rows for its best epoch count (`nnsearch train`, 3 seeds) and scored on the
test rows by the study metric.

usage: /usr/bin/python3 scripts/bench/rescore_effect.py RUN_DIR SET[,SET...]
Prints one line per run, then per set the mean difference (re-scored - without) and the
mean over sets."""

import gzip
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from final_model import DATA, read_csv, train_predict  # noqa: E402
from tabular_metrics import accuracy, balanced_accuracy, macro_f1  # noqa: E402

# NS_SELECT_REJECT (search/study/store.h): findings that make a trial ineligible
REJECT = {"diverged", "oscillating", "loss_spikes", "overfitting", "generalisation_gap",
          "exploding_gradients"}
SCORE = {"val_acc": accuracy, "val_macro_f1": macro_f1, "val_balanced_acc": balanced_accuracy}


def searched(t):
    return t["stage"].endswith((":bayes", ":random", ":final"))


def n_params(p, d, k):
    """The MLP's parameter count: d inputs, depth hidden layers of one width, k outputs."""
    w, depth = p["model.width"], p["model.depth"]
    return d * w + w + (depth - 1) * (w * w + w) + w * k + k


def plain_winner(trials, d, k):
    c = [t for t in trials if t["state"] == "complete" and t["val_metric"] is not None and searched(t)]
    ok = [t for t in c if not {h["code"] for h in t["health"]} & REJECT] or c
    best = max(ok, key=lambda t: t["val_metric"])
    se = best["result"].get("val_se") or 0
    near = [t for t in ok if best["val_metric"] - t["val_metric"] <= se]
    return min(near, key=lambda t: (n_params(t["params"], d, k), len(t["health"]),
                                    -t["val_metric"], t["number"]))["number"]


def main():
    run, sets = sys.argv[1], sys.argv[2].split(",")
    per = {}
    for s in sets:
        for k in sorted(os.listdir(os.path.join(run, s)), key=int):
            path = os.path.join(run, s, k, "status.json.gz")
            if not os.path.exists(path):
                continue
            st = json.load(gzip.open(path))
            dec = next(x for x in st["stages"] if x["name"].endswith(":select"))["decision"]
            if not dec.get("rescored"):
                continue
            split = os.path.join(DATA, s, k)
            _, tv = read_csv(os.path.join(split, "trainval.csv"))
            _, te = read_csv(os.path.join(split, "test.csv"))
            y = te[:, -1].astype(int)
            w0 = plain_winner(st["trials"], tv.shape[1] - 1, len(set(tv[:, -1].astype(int))))
            w1 = dec["winner"]
            if w0 == w1:
                per.setdefault(s, []).append(0.0)
                print(f"{s} {k}: the same winner, trial {w1}", flush=True)
                continue
            score = SCORE[st["study"]["metric"]]
            by_n = {t["number"]: t for t in st["trials"]}
            got = {}
            with tempfile.TemporaryDirectory() as tmp:
                for n in (w0, w1):
                    t = by_n[n]
                    epochs = int(t["result"].get("best_epoch") or 30)
                    got[n] = statistics.mean(
                        score(y, train_predict(tmp, f"t{n}_{seed}", os.path.join(split, "trainval.csv"),
                                               os.path.join(split, "test.csv"), t["params"], epochs,
                                               seed).argmax(1)) for seed in (1, 2, 3))
            per.setdefault(s, []).append(got[w1] - got[w0])
            print(f"{s} {k}: re-scored trial {w1} {got[w1]:.4f}, without re-scoring trial {w0} "
                  f"{got[w0]:.4f}", flush=True)
    means = []
    for s, v in per.items():
        print(f"{s:<14} re-scored - without {statistics.mean(v):+.4f} over {len(v)} runs")
        means.append(statistics.mean(v))
    if means:
        print(f"mean over sets {statistics.mean(means):+.4f}")


if __name__ == "__main__":
    main()
