#!/usr/bin/python3
"""sched_ref.py — pinned torch.optim.lr_scheduler values for tests/test_sched.c.

Prints, as C tables, the LR each torch scheduler gives at each step or epoch for the
configs the test rebuilds with ns_sched (paste into tests/test_sched.c). Needs torch:
/usr/bin/python3 on Debian (python3-torch). Not a test itself: it only prints.
"""
import math

import torch

BASE = 0.1


def make_opt():
    p = torch.zeros(1, requires_grad=True)
    return torch.optim.SGD([p], lr=BASE)


def lrs(sched_cls, n, **kw):
    """LR in force at steps/epochs 0..n-1 (scheduler stepped after each)."""
    opt = make_opt()
    s = sched_cls(opt, **kw)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


def table(name, vals):
    print(f"static const double ref_{name}[{len(vals)}] = {{")
    for i in range(0, len(vals), 4):
        print("    " + ", ".join("%.17g" % v for v in vals[i:i + 4]) + ",")
    print("};")


# Steps at which the per-step schedules are pinned (of 100).
PICKS = [0, 1, 5, 9, 10, 11, 29, 30, 31, 50, 75, 98, 99]


def picked(name, vals):
    """{step, lr} pairs at PICKS."""
    print(f"static const struct step_lr ref_{name}[{len(PICKS)}] = {{")
    for s in PICKS:
        print("    {%d, %.17g}," % (s, vals[s]))
    print("};")


# Fixed val-loss sequence for plateau: improvements, sub-threshold changes, NaN and inf.
PLATEAU_VALS = [1.0, 0.9, 0.899, 0.898, 0.897, 0.8, math.nan, 0.85, math.inf, 0.79,
                0.79, 0.79, 0.79, 0.79, 0.79, 0.79, 0.5, 0.6]


def plateau():
    opt = make_opt()
    s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2,
                                                   threshold=0.01, threshold_mode="rel",
                                                   cooldown=0, min_lr=0.02)
    out = []
    for v in PLATEAU_VALS:
        s.step(v)
        out.append(opt.param_groups[0]["lr"])  # LR after the epoch-end call
    return out


def cosine_warmup(total, warm, start_factor, eta_min):
    """LinearLR warm-up over `warm` steps, then CosineAnnealingLR over the rest."""
    out = lrs(torch.optim.lr_scheduler.LinearLR, warm, start_factor=start_factor,
              end_factor=1.0, total_iters=warm)
    out += lrs(torch.optim.lr_scheduler.CosineAnnealingLR, total - warm, T_max=total - warm,
               eta_min=eta_min)
    return out


def main():
    print(f"/* torch {torch.__version__}, scripts/ref/sched_ref.py; base lr {BASE} */")
    print("/* step/exp/plateau: LR for epochs 0..n-1 (plateau: after each epoch-end call); */")
    print("/* onecycle/cosine: {step, LR} of 100 steps. */")
    table("step", lrs(torch.optim.lr_scheduler.StepLR, 10, step_size=3, gamma=0.5))
    table("exp", lrs(torch.optim.lr_scheduler.ExponentialLR, 10, gamma=0.9))
    table("plateau", plateau())
    picked("onecycle", lrs(torch.optim.lr_scheduler.OneCycleLR, 100, max_lr=BASE,
                          total_steps=100, pct_start=0.3, anneal_strategy="cos",
                          div_factor=25.0, final_div_factor=1e4, three_phase=False,
                          cycle_momentum=False))
    picked("cosine_warmup", cosine_warmup(100, 10, 0.1, 0.001))
    picked("cosine", lrs(torch.optim.lr_scheduler.CosineAnnealingLR, 100, T_max=100,
                        eta_min=0.0))


if __name__ == "__main__":
    main()
