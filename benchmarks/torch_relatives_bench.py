#!/usr/bin/env python
"""softmaxkit.torch's relatives of softmax against torch, torchvision's formula and the
entmax package: forward + backward time.

    python benchmarks/torch_relatives_bench.py            # (1024, 1000) float32, 1 thread
    python benchmarks/torch_relatives_bench.py --quick    # (128, 1000): a check, not numbers
    python benchmarks/torch_relatives_bench.py --threads 2 --dtype float64
    python benchmarks/torch_relatives_bench.py --rows 8192 --only softplus logsigmoid \
        multi_margin_loss sigmoid_focal_loss   # the elementwise functions and the hinge

Each row times ``loss.backward()`` (or ``y.backward(ones)``) after the forward on a
fresh leaf, best of ``--repeat``, in milliseconds, and prints the reference's time
over ours (above 1: softmaxkit is faster). The references: torch's own function where
torch has one, torchvision 0.28's ``sigmoid_focal_loss`` formula in torch ops (its
PyPI wheel does not import with CPU torch), the focal and poly-1 formulas in torch
ops, and the ``entmax`` package when installed. docs/torch.md shows a run. Numbers
depend on the machine and its load; take them on a quiet machine.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

F = torch.nn.functional


def sigmoid_focal_ref(inputs, targets, alpha=0.25, gamma=2.0, reduction="mean"):
    """torchvision.ops.sigmoid_focal_loss (0.28) in torch ops."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean() if reduction == "mean" else loss


def focal_ref(x, t, gamma=2.0):
    lp = torch.log_softmax(x, 1).gather(1, t.unsqueeze(1)).squeeze(1)
    return (-(1 - lp.exp()) ** gamma * lp).mean()


def poly1_ref(x, t, epsilon=1.0):
    lp = torch.log_softmax(x, 1).gather(1, t.unsqueeze(1)).squeeze(1)
    return (-lp + epsilon * (1 - lp.exp())).mean()


def _time(fn, x, args, repeat):
    def once():
        leaf = x.detach().requires_grad_(True)
        y = fn(leaf, *args)
        y.backward(torch.ones_like(y))
    once()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def rows(rows_n, cols, dtype):
    import softmaxkit.torch as smt

    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows_n, cols, generator=g, dtype=dtype)
    t = torch.randint(0, cols, (rows_n,), generator=g)
    tb = (torch.rand(rows_n, cols, generator=g) > 0.5).to(dtype)
    out = [
        ("softplus", smt.softplus, F.softplus, "F.softplus", (x,)),
        ("logsigmoid", smt.logsigmoid, F.logsigmoid, "F.logsigmoid", (x,)),
        ("multi_margin_loss", smt.multi_margin_loss, F.multi_margin_loss, "F.multi_margin_loss", (x, t)),
        ("sigmoid_focal_loss (mean)", lambda z, y: smt.sigmoid_focal_loss(z, y, reduction="mean"),
         sigmoid_focal_ref, "torchvision's formula", (x, tb)),
        ("focal_loss", smt.focal_loss, focal_ref, "formula in torch ops", (x, t)),
        ("poly1_cross_entropy", smt.poly1_cross_entropy, poly1_ref, "formula in torch ops", (x, t)),
        ("gumbel_softmax", smt.gumbel_softmax, F.gumbel_softmax, "F.gumbel_softmax", (x,)),
    ]
    try:
        import entmax
    except ImportError:
        entmax = None
    if entmax is not None:
        out += [
            ("sparsemax", smt.sparsemax, entmax.sparsemax, "entmax.sparsemax", (x,)),
            ("entmax15", smt.entmax15, entmax.entmax15, "entmax.entmax15", (x,)),
            ("entmax_bisect (1.3)", lambda z: smt.entmax_bisect(z, 1.3),
             lambda z: entmax.entmax_bisect(z, 1.3), "entmax.entmax_bisect", (x,)),
        ]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=1000)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="1/8 of the rows, 2 repeats: a check")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="time only the functions whose name starts with one of these")
    args = parser.parse_args(argv)
    import softmaxkit

    torch.set_num_threads(args.threads)
    softmaxkit.set_num_threads(args.threads)
    n, repeat = (max(1, args.rows // 8), 2) if args.quick else (args.rows, args.repeat)
    dtype = getattr(torch, args.dtype)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"({n}, {args.cols}) {args.dtype}, {args.threads} thread(s), best of {repeat}, ms")
    print("| function | softmaxkit.torch | reference | speed-up |")
    print("|---|---|---|---|")
    for name, ours, ref, ref_name, fn_args in rows(n, args.cols, dtype):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        a = _time(ours, fn_args[0], fn_args[1:], repeat)
        b = _time(ref, fn_args[0], fn_args[1:], repeat)
        print(f"| `{name}` | {a:.2f} | {b:.2f} ({ref_name}) | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
