"""PyTorch reference for the trainer benchmark: the same 784-256-128-10 ReLU MLP (--hidden
changes the widths), data,
preprocessing, optimizer and batching as `nnsearch train`, timed the same way.
Not a test oracle (the golden tensors live elsewhere); only a speed reference.

Run with Debian's interpreter, which has torch:  /usr/bin/python3 scripts/bench/torch_mlp.py
Prints one JSON object per line: a "setup" record, one record per epoch in nnsearch's
format ({"epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds", "samples_per_s"};
samples_per_s counts training samples over training time only, excluding data loading
and the validation pass), then {"final": true, ...}.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="folder with the IDX .gz files [%(default)s]")
    p.add_argument("--batch", type=int, default=128, help="batch size [%(default)s]")
    p.add_argument("--epochs", type=int, default=3, help="epochs [%(default)s]")
    p.add_argument("--hidden", default="256,128",
                   help="hidden widths, comma-separated [%(default)s]")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate [%(default)s]")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share [%(default)s]")
    p.add_argument("--threads", type=int, default=1, help="intra- and inter-op threads [%(default)s]")
    p.add_argument("--seed", type=int, default=1, help="seed for split, init and shuffling [%(default)s]")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where to train; on cuda the data stay on the GPU [%(default)s]")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: autocast GEMMs to bfloat16 (fp32 weights), cuda only [%(default)s]")
    a = p.parse_args()
    try:
        a.hidden = [int(w) for w in a.hidden.split(",")]
    except ValueError:
        p.error("--hidden: comma-separated integers, e.g. 256,128")
    if any(w < 1 for w in a.hidden):
        p.error("--hidden: widths must be >= 1")
    if a.batch < 1 or a.epochs < 1 or a.threads < 1 or not 0.0 < a.val_fraction < 1.0:
        p.error("batch, epochs and threads must be >= 1 and val-fraction in (0, 1)")
    if a.dtype == "bf16" and a.device != "cuda":
        p.error("--dtype bf16 needs --device cuda")
    return a


# The BLAS and OpenMP pools read their thread counts when the libraries load, i.e. on
# `import torch`: set them before that, or set_num_threads alone leaves OpenBLAS at one
# thread per core.
ARGS = parse_args()
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def read_idx(path):
    """IDX file (gzip'd) -> numpy array of its declared shape (uint8 data only)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} values, header says {dims}")
    return data.reshape(dims)


def blas_library():
    """The BLAS shared object this process actually mapped (fp32 Linear -> addmm -> sgemm)."""
    seen = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                name = os.path.basename(path)
                if ("blas" in name or "mkl" in name) and path not in seen:
                    seen.append(path)
    except OSError:
        pass
    return ", ".join(os.path.realpath(p) for p in seen) or "unknown"


def backend_note():
    cfg = torch.__config__.show()
    blas_info = next((tok.split("=")[1].rstrip(",") for tok in cfg.split()
                      if tok.startswith("BLAS_INFO=")), "?")
    cap = next((line.split(":", 1)[1].strip() for line in cfg.splitlines()
                if "CPU capability usage" in line), "?")
    return (f"fp32 nn.Linear -> addmm -> BLAS sgemm (BLAS_INFO={blas_info}; mapped: "
            f"{blas_library()}); oneDNN available={torch.backends.mkldnn.is_available()} "
            f"(used by conv, not by fp32 Linear); elementwise kernels {cap}; "
            f"intra-op threads={torch.get_num_threads()}, "
            f"inter-op threads={torch.get_num_interop_threads()}")


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    a = ARGS
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.manual_seed(a.seed)

    t_load = time.perf_counter()
    images = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz"))
    n = images.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    x_all = images.reshape(n, -1).astype(np.float32)
    y_all = labels.astype(np.int64)

    # Fixed split (54000/6000 on Fashion-MNIST): what matters for speed is the number of
    # training samples per epoch and the size of the validation pass.
    n_val = int(round(n * a.val_fraction))
    perm = np.random.default_rng(a.seed).permutation(n)
    tr, va = perm[n_val:], perm[:n_val]

    # Standardise per feature with training statistics; population std; a constant
    # feature (std 0) is scaled by 1.
    mean = x_all[tr].mean(axis=0, dtype=np.float64)
    std = x_all[tr].std(axis=0, dtype=np.float64)
    std[std == 0.0] = 1.0
    x_all = ((x_all - mean) / std).astype(np.float32)
    dev = torch.device(a.device)
    x_tr, y_tr = torch.from_numpy(x_all[tr].copy()).to(dev), torch.from_numpy(y_all[tr].copy()).to(dev)
    x_va, y_va = torch.from_numpy(x_all[va].copy()).to(dev), torch.from_numpy(y_all[va].copy()).to(dev)
    load_s = time.perf_counter() - t_load

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if a.dtype == "bf16"
                else torch.autocast("cpu", enabled=False))

    dims = [x_tr.shape[1], *ARGS.hidden, 10]
    layers = []
    for i in range(len(dims) - 1):
        lin = torch.nn.Linear(dims[i], dims[i + 1])
        torch.nn.init.kaiming_normal_(lin.weight, mode="fan_in", nonlinearity="relu")
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(a.seed)

    emit({"setup": True, "torch": torch.__version__, "device": a.device, "dtype": a.dtype,
          "backend": backend_note() if a.device == "cpu" else torch.cuda.get_device_name(0),
          "train_samples": int(x_tr.shape[0]), "val_samples": int(x_va.shape[0]),
          "batch": a.batch, "epochs": a.epochs, "load_seconds": round(load_s, 3),
          "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")})

    n_tr = x_tr.shape[0]
    rates = []
    for epoch in range(1, a.epochs + 1):
        model.train()
        sync()
        t0 = time.perf_counter()
        order = torch.randperm(n_tr, generator=gen).to(dev)
        loss_sum = torch.zeros((), device=dev)
        for start in range(0, n_tr, a.batch):  # last partial batch kept
            idx = order[start:start + a.batch]
            xb, yb = x_tr[idx], y_tr[idx]
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().float() * idx.shape[0]
        sync()
        train_s = time.perf_counter() - t0

        model.eval()
        with torch.no_grad():
            logits = model(x_va)
            val_loss = loss_fn(logits, y_va).item()
            val_acc = (logits.argmax(dim=1) == y_va).float().mean().item()
        epoch_s = time.perf_counter() - t0
        rate = n_tr / train_s
        rates.append(rate)
        emit({"epoch": epoch, "train_loss": loss_sum.item() / n_tr, "val_loss": val_loss,
              "val_acc": val_acc, "lr": a.lr, "seconds": round(epoch_s, 4),
              "samples_per_s": round(rate, 1)})

    tail = sorted(rates[1:] if len(rates) > 1 else rates)
    mid = len(tail) // 2
    median = tail[mid] if len(tail) % 2 else 0.5 * (tail[mid - 1] + tail[mid])
    emit({"final": True, "epochs": a.epochs, "median_samples_per_s_after_warmup": round(median, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
