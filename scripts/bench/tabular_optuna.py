"""tabular_optuna.py — the Optuna side of scripts/bench/tabular: TPE (Optuna 3.1) with the
median pruner over the benchmark's MLP space on one split, JOBS worker processes sharing a
journal file, stopped at a wall deadline; then the best trial's own trained model scored
once on the test rows. Not a general harness: the space is the benchmark's, fixed here.

usage: /usr/bin/python3 tabular_optuna.py SPLITDIR BUDGET_S JOBS SEED WORKDIR
  reads SPLITDIR/{train,val,test}.csv (tabular_data.py split), works in WORKDIR (empty),
  prints one JSON object: metric, val_score, test_acc, test_f1, test_bacc, test_score,
  trials, complete, pruned, failed.
"""
import json
import os
import subprocess
import sys
import time

import warnings

import numpy as np

from tabular_metrics import accuracy, balanced_accuracy, macro_f1

SIZES = (16, 32, 64, 128)  # the batch sizes; the same list as nnsearch's batch_sweep
EPOCHS = 30
END_MARGIN_S = 4.0  # the workers stop starting trials this long before the budget ends


def load(path):
    a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return a[:, :-1].astype(np.float32), a[:, -1].astype(np.int64)


def imbalanced(y):
    """nnsearch's rule (health.imbalance_ratio 3): largest / smallest training class > 3."""
    n = np.bincount(y)
    n = n[n > 0]
    return n.max() / n.min() > 3


class Data:
    def __init__(self, splitdir):
        self.xtr, self.ytr = load(os.path.join(splitdir, "train.csv"))
        self.xva, self.yva = load(os.path.join(splitdir, "val.csv"))
        self.xte, self.yte = load(os.path.join(splitdir, "test.csv"))
        # standardise with the training rows' statistics (population sd; a constant feature
        # is scaled by 1), as nnsearch does with its own training rows
        mu = self.xtr.mean(axis=0, dtype=np.float64)
        sd = self.xtr.std(axis=0, dtype=np.float64)
        sd[sd == 0] = 1
        for k in ("xtr", "xva", "xte"):
            setattr(self, k, ((getattr(self, k) - mu) / sd).astype(np.float32))
        self.k = int(max(self.ytr.max(), self.yva.max(), self.yte.max())) + 1
        self.balanced = imbalanced(self.ytr)
        self.metric = "val_balanced_acc" if self.balanced else "val_acc"

    def score(self, y, p):
        return balanced_accuracy(y, p) if self.balanced else accuracy(y, p)


def build(torch, d, k, depth, width, dropout):
    """depth hidden layers of width units, ReLU then dropout after each; He-normal weights,
    zero biases (nnsearch's init: he)."""
    nn = torch.nn
    layers, n = [], d
    for _ in range(depth):
        layers += [nn.Linear(n, width), nn.ReLU(), nn.Dropout(dropout)]
        n = width
    layers.append(nn.Linear(n, k))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


def space(trial):
    """The benchmark's space, the same as the nnsearch config's (scripts/bench/tabular)."""
    return dict(lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
                depth=trial.suggest_int("depth", 1, 3),
                width=trial.suggest_int("width", 32, 256, log=True),
                dropout=trial.suggest_float("dropout", 0.0, 0.5),
                batch_size=trial.suggest_categorical("batch_size", list(SIZES)))


def predict(torch, model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(dim=1).numpy()


def quiet(optuna):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def journal_storage(optuna, path):
    """The study shared by the worker processes: Optuna's journal file, locked with open(2)
    (the symlink lock, the default, cost 50% more per write here). Reads take the lock too:
    Optuna 3.1 reads without it, and a read that meets a line half appended by the other
    worker takes the rest of that line for the next one and fails (JSONDecodeError, or
    "Should not reach" later); that lost 8 of 60 runs of one benchmark."""
    from optuna.storages._journal.file import get_lock_file

    class LockedReads(optuna.storages.JournalFileStorage):
        def read_logs(self, log_number_from):
            with get_lock_file(self._lock):
                return super().read_logs(log_number_from)

    lock = optuna.storages.JournalFileOpenLock(path)
    return optuna.storages.JournalStorage(LockedReads(path, lock_obj=lock))


def worker(splitdir, deadline, seed, rank, jobs, workdir, journal):
    """One worker process: trials until the deadline; worker 0 then scores the winner."""
    import optuna
    import torch
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    quiet(optuna)
    data = Data(splitdir)
    xtr, ytr = torch.from_numpy(data.xtr), torch.from_numpy(data.ytr)
    best = {"value": -1.0, "path": None}

    def objective(trial):
        p = space(trial)
        torch.manual_seed(seed * 100003 + trial.number)  # weights, dropout and row order
        model = build(torch, xtr.shape[1], data.k, p["depth"], p["width"], p["dropout"])
        opt = torch.optim.Adam(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        loss_fn = torch.nn.CrossEntropyLoss()
        n, b = len(ytr), p["batch_size"]
        value = 0.0
        for epoch in range(1, EPOCHS + 1):
            model.train()
            order = torch.randperm(n)
            finite = True
            for i in range(0, n, b):
                idx = order[i:i + b]
                opt.zero_grad()
                loss = loss_fn(model(xtr[idx]), ytr[idx])
                if not torch.isfinite(loss):
                    finite = False
                    break
                loss.backward()
                opt.step()
            value = data.score(data.yva, predict(torch, model, data.xva))
            if not finite:
                return value  # diverged: its (poor) validation score stands
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        if value > best["value"]:
            # keep the model of this process's best trial so far (the first to reach its
            # value): the study's best trial, the lowest number among equal values, is then
            # on disk, and its score on the test rows needs no retraining
            path = os.path.join(workdir, f"trial_{trial.number}.pt")
            torch.save({"params": p, "state": model.state_dict()}, path)
            if best["path"]:
                os.remove(best["path"])
            best.update(value=value, path=path)
        return value

    # worker 0 creates the study; the others wait for it
    storage = journal_storage(optuna, journal)
    sampler = optuna.samplers.TPESampler(seed=seed * 1000 + rank)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
    if rank == 0:
        study = optuna.create_study(study_name="tabular", storage=storage, direction="maximize",
                                    sampler=sampler, pruner=pruner)
    else:
        while True:
            try:
                study = optuna.load_study(study_name="tabular", storage=storage, sampler=sampler, pruner=pruner)
                break
            except KeyError:
                time.sleep(0.05)
    left = deadline - time.time()
    if left > 0:
        study.optimize(objective, timeout=left, catch=(RuntimeError, ValueError))
    open(os.path.join(workdir, f"done_{rank}"), "w").close()
    if rank == 0:
        while not all(os.path.exists(os.path.join(workdir, f"done_{k}")) for k in range(jobs)):
            time.sleep(0.05)
        score(optuna, torch, data, storage, workdir)


def score(optuna, torch, data, storage, workdir):
    """The study's best trial (its kept model) on the test rows, once -> workdir/result.json."""
    study = optuna.load_study(study_name="tabular", storage=storage)
    states = [t.state for t in study.trials]
    S = optuna.trial.TrialState
    best = study.best_trial
    kept = torch.load(os.path.join(workdir, f"trial_{best.number}.pt"))
    p = kept["params"]
    model = build(torch, data.xtr.shape[1], data.k, p["depth"], p["width"], p["dropout"])
    model.load_state_dict(kept["state"])
    pred = predict(torch, model, data.xte)
    out = os.path.join(workdir, "result.json")
    with open(out + ".tmp", "w") as f:
        json.dump({
            "metric": data.metric, "val_score": best.value, "best_trial": best.number, "params": best.params,
            "test_acc": accuracy(data.yte, pred), "test_f1": macro_f1(data.yte, pred),
            "test_bacc": balanced_accuracy(data.yte, pred), "test_score": data.score(data.yte, pred),
            "trials": len(states), "complete": states.count(S.COMPLETE), "pruned": states.count(S.PRUNED),
            "failed": states.count(S.FAIL)}, f)
    os.replace(out + ".tmp", out)


def main():
    if len(sys.argv) == 9 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], float(a[1]), int(a[2]), int(a[3]), int(a[4]), a[5], a[6])
        return
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    # this launcher imports nothing heavy: the workers' start-up (Python, torch, Optuna) is
    # part of the budget, and a third process importing torch beside them would slow it
    t0 = time.time()
    splitdir, budget, jobs, seed, workdir = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    journal = os.path.join(workdir, "journal.log")
    deadline = t0 + budget - END_MARGIN_S
    # one process per job (threads would share one interpreter lock), each its own TPE seed
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", splitdir, repr(deadline), str(seed),
                               str(k), str(jobs), workdir, journal]) for k in range(jobs)]
    # a worker that fails leaves worker 0 waiting for its done file: stop the others then
    while any(p.poll() is None for p in procs) and not any(p.poll() for p in procs):
        time.sleep(0.1)
    if any(p.poll() for p in procs):
        for p in procs:
            if p.poll() is None:
                p.kill()
    rcs = [p.wait() for p in procs]
    if any(rcs):
        raise SystemExit(f"tabular_optuna: a worker failed (exit codes {rcs})")
    print(open(os.path.join(workdir, "result.json")).read())


if __name__ == "__main__":
    main()
