#!/usr/bin/env python
"""softmaxkit.torch benchmark: 16-bit CPU paths, and a model trained under torch.compile.

    python benchmarks/torch_bench.py             # issue 10's shapes, 2 threads
    python benchmarks/torch_bench.py --quick     # the same at 1/8 of the rows (a check, not numbers)
    python benchmarks/torch_bench.py --sections train --steps 20

Sections:

* ``bf16``: softmax and cross-entropy forward+backward on bfloat16 (and float16) CPU
  tensors of shapes (8192, 1000), (2048, 32000), (256, 256000), through the public
  API: softmaxkit.torch (its 16-bit kernels), torch's own 16-bit path, and two 16-bit
  copies of the same bytes: into a preallocated tensor (``out.copy_(x)``: one read and
  one write, the memory floor of a function that reads x and writes a result of x's
  size) and into a new array (the faster of ``x.clone()`` and NumPy's copy: the same
  plus the page faults of a fresh allocation, which the public API pays for its
  result, and which cost more than the copy itself on some virtual machines). Also the
  same work on the C entry points into preallocated outputs, the cross-entropy with a
  backward from 2 (computed from the forward's logsumexp, not written by the
  forward), and the cross-entropy's forward and backward in one call
  (``smk.cross_entropy_and_grad``; bfloat16 needs ``ml_dtypes``). Prints milliseconds
  (best of ``--repeat``) and the ratios issue 10 sets targets for: ours / copy
  (target <= 1.15; the public API against the allocating copy, the kernels against
  the preallocated one) and torch / ours (target >= 3).
* ``train``: a small MLP classifier trained with ``torch.compile(fullgraph=True)``,
  once with softmaxkit's loss modules and once with torch's, same seed and data;
  prints the loss at every step and the largest relative difference (float64 and
  float32). ``tests/test_torch_compile.py`` runs :func:`train_compiled` too.

Numbers depend on the machine and its load; take them on a quiet machine.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

SHAPES = [(8192, 1000), (2048, 32000), (256, 256000)]


# ------------------------------------------------------------------ training


class Classifier(torch.nn.Module):
    """An MLP whose loss is a weighted sum of the four loss modules (so each is traced)."""

    def __init__(self, losses, n_in=12, n_hidden=32, n_classes=5):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(n_in, n_hidden), torch.nn.Tanh(),
                                        torch.nn.Linear(n_hidden, n_classes))
        self.ce = losses.CrossEntropyLoss(label_smoothing=0.05)
        self.nll = losses.NLLLoss()
        self.bce = losses.BCEWithLogitsLoss()
        self.kl = losses.KLDivLoss(reduction="batchmean")

    def forward(self, x, y, y_multi, p):
        z = self.body(x)
        log_p = torch.nn.functional.log_softmax(z, 1)
        return (self.ce(z, y) + 0.5 * self.nll(log_p, y) + 0.25 * self.bce(z, y_multi)
                + 0.25 * self.kl(log_p, p))


def train_compiled(which: str, dtype=torch.float64, steps=10, backend="inductor", seed=0):
    """Losses per step of :class:`Classifier` trained with SGD under
    ``torch.compile(fullgraph=True)``, with ``which`` = "softmaxkit" or "torch" modules."""
    import softmaxkit.torch as smt

    losses = smt if which == "softmaxkit" else torch.nn
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(64, 12, generator=gen, dtype=dtype)
    y = (x[:, :3].argmax(1) + 2 * (x[:, 3] > 0)).long()  # 5 learnable classes
    y_multi = (x[:, 5:10] > 0).to(dtype)
    p = torch.softmax(torch.randn(64, 5, generator=gen, dtype=dtype), 1)
    torch.manual_seed(seed)
    model = Classifier(losses).to(dtype)
    step_fn = torch.compile(model, fullgraph=True, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = step_fn(x, y, y_multi, p)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def bench_train(args):
    print(f"\n## torch.compile(fullgraph=True, backend={args.backend!r}) training, {args.steps} steps")
    for dtype in (torch.float64, torch.float32):
        torch._dynamo.reset()
        t0 = time.perf_counter()
        ours = train_compiled("softmaxkit", dtype, args.steps, args.backend)
        t1 = time.perf_counter()
        ref = train_compiled("torch", dtype, args.steps, args.backend)
        t2 = time.perf_counter()
        worst = max(abs(a - b) / abs(b) for a, b in zip(ours, ref))
        print(f"{str(dtype):14s} compile+train: softmaxkit {t1 - t0:.1f} s, torch {t2 - t1:.1f} s; "
              f"largest relative loss difference {worst:.2e}")
        for i, (a, b) in enumerate(zip(ours, ref)):
            print(f"  step {i:3d}  softmaxkit {a:.17g}  torch {b:.17g}")


# ------------------------------------------------------------------ 16-bit


def best_ms(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def bench_16bit(args):
    import numpy as np

    import softmaxkit as smk
    import softmaxkit.torch as smt
    from softmaxkit._kernels import _losses as L
    from softmaxkit._kernels import _softmax as S

    try:
        import ml_dtypes
    except ImportError:  # the one-call row needs NumPy bfloat16 arrays
        ml_dtypes = None

    F = torch.nn.functional
    torch.set_num_threads(args.threads)
    smk.set_num_threads(args.threads)
    div = 8 if args.quick else 1

    print(f"\n## 16-bit CPU, {args.threads} threads, best of {args.repeat} (ms); targets: ours/clone <= 1.15, "
          f"torch/ours >= 3")
    print("(copy: out.copy_(x) into a preallocated tensor; clone: a copy into a new array, the faster of "
          "x.clone() and NumPy's copy; softmaxkit and torch: the public API, which allocates its result "
          "(softmaxkit.torch vs torch.nn.functional; the one-call row is smk.cross_entropy_and_grad on the "
          "NumPy array; 'backward from lse' is 2 * loss, whose backward starts from 2, so the forward "
          "keeps each row's logsumexp and the backward reads the logits again); kernels: the same work on "
          "softmaxkit's C entry points into preallocated outputs)")
    print("| dtype | shape | op | copy | clone | softmaxkit | torch | ours/clone | torch/ours | kernels "
          "| kernels/copy |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dtype in (torch.bfloat16, torch.float16):
        for n, c in SHAPES:
            n = max(1, n // div)
            gen = torch.Generator().manual_seed(0)
            x = (3 * torch.randn(n, c, generator=gen)).to(dtype)
            t = torch.randint(0, c, (n,), generator=gen)
            out = torch.empty_like(x)
            xb = x.view(torch.int16).numpy().view(np.uint16) if dtype == torch.bfloat16 else x.numpy()
            copy = best_ms(lambda: out.copy_(x), args.repeat)
            clone = min(best_ms(lambda: x.clone(), args.repeat), best_ms(lambda: xb.copy(), args.repeat))

            def ce(fn):
                def run():
                    xr = x.detach().requires_grad_(True)
                    fn(xr, t).backward()
                return run

            yb = np.empty_like(xb)
            work = np.empty(args.threads * c, np.float32)
            t64 = t.numpy().astype(np.int64)
            loss, roww, lse = np.empty(n), np.empty(n), np.empty(n)

            def k_softmax():
                S.softmax(xb, yb, n, c, 1.0, args.threads, work)

            def k_ce():  # as the autograd path of a reduced loss: the forward writes the gradient
                L.ce_hard(xb, t64, None, 0, False, 0.0, loss, roww, None, 1.0 / n, yb, n, c, args.threads,
                          work, lse)

            def k_ce_two_passes():  # the forward's lse, then the gradient from it (any other backward)
                L.ce_hard(xb, t64, None, 0, False, 0.0, loss, roww, None, 1.0, None, n, c, args.threads,
                          None, lse)
                L.ce_hard_grad_lse(xb, t64, None, 0, False, 0.0, lse, None, 1.0 / n, yb, n, c, args.threads)

            x_np = None
            if dtype == torch.float16:
                x_np = x.numpy()
            elif ml_dtypes is not None:
                x_np = xb.view(ml_dtypes.bfloat16)
            theirs_ce = best_ms(ce(F.cross_entropy), args.repeat)
            rows = [
                ("softmax", lambda: smt.softmax(x, 1), best_ms(lambda: F.softmax(x, 1), args.repeat), k_softmax),
                ("CE fwd+bwd", ce(smt.cross_entropy), theirs_ce, k_ce),
                ("CE fwd+bwd, backward from lse", ce(lambda a, b: 2 * smt.cross_entropy(a, b)), theirs_ce,
                 k_ce_two_passes),
            ]
            if x_np is not None:
                rows.append(("CE fwd+bwd, one call", lambda: smk.cross_entropy_and_grad(x_np, t64), theirs_ce,
                             k_ce))
            for name, ours, theirs, kernels in rows:
                b = best_ms(ours, args.repeat)
                k = best_ms(kernels, args.repeat)
                print(f"| {str(dtype)[6:]} | ({n}, {c}) | {name} | {copy:.2f} | {clone:.2f} | {b:.2f} | "
                      f"{theirs:.2f} | {b / clone:.2f} | {theirs / b:.2f} | {k:.2f} | {k / copy:.2f} |",
                      flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/8 of the rows, 2 training steps")
    parser.add_argument("--sections", default="bf16,train", help="comma-separated: bf16, train")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and softmaxkit")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed repetitions, the best is kept (default 5, 2 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 20, 3 with --quick)")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    if args.steps is None:
        args.steps = 3 if args.quick else 20
    print(f"# softmaxkit.torch benchmark: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    sections = {s.strip() for s in args.sections.split(",")}
    if "bf16" in sections:
        bench_16bit(args)
    if "train" in sections:
        bench_train(args)


if __name__ == "__main__":
    main()
