#!/usr/bin/python3
"""optim_ref.py — pinned torch.optim reference values for tests/test_optim.c.

Runs 3 steps of each optimizer config on a fixed 5-element float32 parameter vector with
gradients that are an exact function of the step, and prints the parameters after every
step as a C table (paste into tests/test_optim.c). Needs torch: /usr/bin/python3 on Debian
(python3-torch). Not a test itself: it only prints.
"""
import torch

P0 = [0.5, -1.25, 2.0, -0.75, 0.125]
GB = [0.25, -0.5, 1.0, 0.0625, -2.0]
GS = [1.0, 1.0, -1.0, -0.5, 0.5]
STEPS = 3


def grad(t):
    """Gradient of step t (1-based): GB + 0.25 t GS, exact in float32."""
    return torch.tensor([b + 0.25 * t * s for b, s in zip(GB, GS)], dtype=torch.float32)


CONFIGS = [
    ("sgd", lambda p: torch.optim.SGD([p], lr=0.1)),
    ("sgd_momentum", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9)),
    ("sgd_nesterov_wd", lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True,
                                                  weight_decay=0.01)),
    ("adam", lambda p: torch.optim.Adam([p], lr=0.01)),
    ("adam_wd", lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.1)),
    ("adamw_wd", lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1)),
    ("rmsprop", lambda p: torch.optim.RMSprop([p], lr=0.01)),
    ("rmsprop_momentum", lambda p: torch.optim.RMSprop([p], lr=0.01, momentum=0.9)),
    ("rmsprop_wd", lambda p: torch.optim.RMSprop([p], lr=0.01, weight_decay=0.1)),
]


def main():
    print(f"/* torch {torch.__version__}, scripts/ref/optim_ref.py */")
    for name, make in CONFIGS:
        p = torch.tensor(P0, dtype=torch.float32, requires_grad=True)
        opt = make(p)
        rows = []
        for t in range(1, STEPS + 1):
            p.grad = grad(t)
            opt.step()
            rows.append(", ".join("%.9g" % v for v in p.detach().tolist()))
        print(f"static const float ref_{name}[{STEPS}][5] = {{")
        for r in rows:
            print(f"    {{{r}}},")
        print("};")


if __name__ == "__main__":
    main()
