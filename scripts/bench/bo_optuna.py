"""bo_optuna.py — Optuna's TPE on Branin (2-D) and Hartmann-6 over the unit cube, the
reference for scripts/bench/bo. Not a general Optuna harness.
usage: /usr/bin/python3 bo_optuna.py REPS EVALS  -> lines "func tpe rep regret"
"""
import math
import sys

import optuna

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237


def branin(u):
    x, y = -5 + 15 * u[0], 15 * u[1]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


AL = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
     [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(x):
    return -sum(AL[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2 for j in range(6)))
                for i in range(4))


def main():
    reps, evals = int(sys.argv[1]), int(sys.argv[2])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, d, f, fmin in (("branin", 2, branin, BRANIN_MIN),
                             ("hartmann6", 6, hartmann6, HARTMANN6_MIN)):
        for rep in range(1, reps + 1):
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=rep))
            study.optimize(lambda tr: f([tr.suggest_float(f"x{k}", 0.0, 1.0) for k in range(d)]),
                           n_trials=evals)
            print(f"{name} tpe {rep} {study.best_value - fmin:.9g}", flush=True)


if __name__ == "__main__":
    main()
