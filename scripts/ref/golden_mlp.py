"""golden_mlp.py — golden end-to-end values from PyTorch for tests/test_golden.c.

A 6-5-4-3 MLP (GELU, then tanh on a second model), cross-entropy with label smoothing
0.1 and class weights, batch 7: inputs, parameters in nnsearch's layout (W (out, in)
row-major, then b, layer by layer), logits, loss, gradients, and the parameters after two
Adam steps (lr 0.01, weight decay 0.01: AdamW). Run with Debian's torch:
    /usr/bin/python3 scripts/ref/golden_mlp.py > tests/data/golden_mlp.txt
"""
import torch

torch.manual_seed(0)
torch.set_default_dtype(torch.float32)


def flat(layers):
    return torch.cat([t for l in layers for t in (l.weight.detach().reshape(-1), l.bias.detach())])


def flat_grad(layers):
    return torch.cat([t for l in layers for t in (l.weight.grad.reshape(-1), l.bias.grad)])


def emit(name, t):
    v = t.detach().reshape(-1).tolist()
    print(name, len(v), " ".join(f"{x:.9g}" for x in v))


def case(tag, act):
    dims = [6, 5, 4, 3]
    layers = [torch.nn.Linear(dims[i], dims[i + 1]) for i in range(3)]
    x = torch.randn(7, 6)
    y = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    emit(f"{tag}.params", flat(layers))
    emit(f"{tag}.x", x)
    emit(f"{tag}.y", y.float())

    def forward(x):
        h = x
        for i, l in enumerate(layers):
            h = l(h)
            if i < 2:
                h = act(h)
        return h

    loss_fn = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)
    z = forward(x)
    loss = loss_fn(z, y)
    loss.backward()
    emit(f"{tag}.logits", z)
    emit(f"{tag}.loss", loss.reshape(1))
    emit(f"{tag}.grads", flat_grad(layers))
    opt = torch.optim.AdamW([p for l in layers for p in l.parameters()], lr=0.01, weight_decay=0.01)
    opt.step()
    for l in layers:
        l.zero_grad()
    loss_fn(forward(x), y).backward()
    opt.step()
    emit(f"{tag}.adamw2", flat(layers))


case("gelu", torch.nn.functional.gelu)
case("tanh", torch.tanh)
