"""Fused linear + cross-entropy at every size: time against the three GEMMs alone and
the unfused path, extra memory against the (N, V) logits, and torch's
``F.linear_cross_entropy`` as a column when the installed torch has it.

    python benchmarks/linear_ce.py --quick            # two small points (a minute)
    python benchmarks/linear_ce.py                    # the issue's grid (hours, quiet machine)
    python benchmarks/linear_ce.py --n 1024,4096 --h 512 --v 32000,65536 --rounds 2
    python benchmarks/linear_ce.py --budget 600       # the grid's cheapest points, ~10 min
    python benchmarks/linear_ce.py --points 4096,1024,32768 --curve   # + chunk trade-off

``--n``, ``--h`` and ``--v`` (comma-separated) pick any sub-grid of the issue's grid
(N in 1024, 4096, 8192; H in 512, 1024, 2048; V in 32000, 65536, 131072, 262144) or
other values; ``--points`` gives explicit N,H,V triples. ``--budget SECONDS`` runs
the points cheapest first and leaves out those its estimate says would not finish
within the budget (the estimate scales the first point's measured time by N x H x V);
the table lists every point left out and why, so a run says which points it covers.

Every time is the best over ``--rounds`` rounds, the variants interleaved within a
round so a burst of load hits them alike. "GEMMs" is the three products the
gradient needs (``hidden @ W.T``, ``dz @ W``, ``dz.T @ hidden``) with preallocated
outputs, the faster of NumPy's and SciPy's BLAS; the fused path runs on SciPy's,
and so does the unfused one here (``hidden @ W.T``, the cross-entropy kernel, the
two gradient products: the same BLAS, as the issue asks). "torch" is torch's
``F.linear_cross_entropy`` forward and backward (when the installed torch has it).
"extra" is the tracemalloc peak beyond the inputs and the gradients (a separate,
untimed call), also as a share of the (N, V) logits; the bound is
``max(32 MiB, 3% of the N x V logits)`` (``--traced-last``: measured in the last timed
round instead). Where the logits would not fit in memory twice (the unfused path holds
them and their gradient, torch about as much) the point runs without the unfused and
torch columns, and the GEMMs alone run over blocks of 2048 rows (the same products,
``grad_weight`` accumulated with beta = 1 as in the fused path), so the logits are
never whole; points that do not fit even so are skipped and listed.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

GRID_N = (1024, 4096, 8192)
GRID_H = (512, 1024, 2048)
GRID_V = (32000, 65536, 131072, 262144)
QUICK = ((1024, 512, 32000), (2048, 512, 32768))
MiB = 2**20


def _avail_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def _problem(n, h, v, dtype, seed=0):
    rng = np.random.default_rng(seed)
    hidden = (rng.standard_normal((n, h), dtype=np.float32) * 0.5).astype(dtype)
    weight = (rng.standard_normal((v, h), dtype=np.float32) / np.sqrt(h)).astype(dtype)
    target = rng.integers(0, v, size=n)
    return hidden, weight, target


BLOCK_ROWS = 2048  # row blocks of the GEMMs alone where the logits do not fit twice


def _variants(hidden, weight, target, smk, torch, chunk=None, blocked=False):
    from scipy.linalg.blas import dgemm, sgemm

    n, h = hidden.shape
    v = weight.shape[0]
    gemm = sgemm if hidden.dtype == np.float32 else dgemm
    z = np.empty((min(n, BLOCK_ROWS) if blocked else n, v), hidden.dtype)
    gh = np.empty((n, h), hidden.dtype)
    gw = np.empty((v, h), hidden.dtype)

    def gemms_numpy():
        np.matmul(hidden, weight.T, out=z)
        np.matmul(z, weight, out=gh)
        np.matmul(z.T, hidden, out=gw)

    def gemms_scipy():
        gemm(1.0, weight.T, hidden.T, c=z.T, trans_a=1, overwrite_c=1)
        gemm(1.0, z.T, weight.T, trans_a=1, trans_b=1)
        gemm(1.0, hidden.T, z.T, c=gw.T, trans_b=1, overwrite_c=1)

    def gemms_blocked():
        # the same three products over row blocks (the logits of a large point do not
        # fit twice in memory): grad_weight accumulates with beta = 1, as the fused
        # path's does; 2048-row blocks keep the products at full speed
        for b in range(0, n, BLOCK_ROWS):
            hb = hidden[b:b + BLOCK_ROWS]
            zb = z[:hb.shape[0]]
            gemm(1.0, weight.T, hb.T, c=zb.T, trans_a=1, overwrite_c=1)
            gh[b:b + BLOCK_ROWS] = gemm(1.0, zb.T, weight.T, trans_a=1, trans_b=1)
            gemm(1.0, hb.T, zb.T, beta=1.0 if b else 0.0, c=gw.T, trans_b=1, overwrite_c=1)

    def fused():
        smk.linear_cross_entropy_and_grad(hidden, weight, target, chunk_size=chunk)

    def unfused():
        logits = np.empty((n, v), hidden.dtype)
        gemm(1.0, weight.T, hidden.T, c=logits.T, trans_a=1, overwrite_c=1)
        _, g = smk.cross_entropy_and_grad(logits, target)
        del logits
        grad_h = gemm(1.0, weight.T, g.T).T  # (H, N) Fortran = (N, H) C
        grad_w = gemm(1.0, hidden.T, g.T, trans_b=1).T
        return grad_h, grad_w

    if blocked:
        out = {"gemms_scipy": gemms_blocked, "fused": fused}
    else:
        out = {"gemms_scipy": gemms_scipy, "fused": fused, "unfused": unfused,
               "gemms_numpy": gemms_numpy}
    F = getattr(getattr(torch, "nn", None), "functional", None) if torch and not blocked else None
    if F is not None and hasattr(F, "linear_cross_entropy"):
        th, tw, tt = torch.from_numpy(hidden), torch.from_numpy(weight), torch.from_numpy(target)

        def torch_lce():
            x = th.detach().requires_grad_(True)
            w = tw.detach().requires_grad_(True)
            F.linear_cross_entropy(x, w, tt).backward()

        out["torch"] = torch_lce
    return out, (z, gh, gw)


def _extra_memory(fn, grads_bytes: int) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return max(0, peak - grads_bytes)


def measure(n, h, v, *, rounds, dtype, smk, torch, chunk=None, log=print,
            skip=(), traced_last=False, blocked=False) -> dict:
    """Best-of-``rounds`` times of every variant not in ``skip``, and the extra memory of
    the fused and unfused paths: measured in separate untimed calls, or, with
    ``traced_last``, under tracemalloc in the last timed round (its hooks cost
    microseconds per allocation, nothing next to seconds of GEMMs; it saves two calls a
    point on the grid's large points)."""
    hidden, weight, target = _problem(n, h, v, dtype)
    fns, scratch = _variants(hidden, weight, target, smk, torch, chunk, blocked)
    fns = {k: f for k, f in fns.items() if k not in skip}
    itemsize = np.dtype(dtype).itemsize
    grads = (n * h + v * h) * itemsize
    logits = n * v * itemsize
    best = {k: float("inf") for k in fns}
    extra: dict[str, float] = {}
    for r in range(rounds):
        for k, f in fns.items():
            traced = traced_last and r == rounds - 1 and k in ("fused", "unfused")
            if traced:
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
            t0 = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t0)
            if traced:
                extra[k] = max(0, tracemalloc.get_traced_memory()[1] - before - grads) / MiB
                tracemalloc.stop()
    del scratch
    for k in ("fused", "unfused"):
        if k in fns and k not in extra:
            extra[k] = _extra_memory(fns[k], grads) / MiB
    gemms = [best[k] for k in ("gemms_numpy", "gemms_scipy") if k in best]
    row = {"N": n, "H": h, "V": v, "chunk": chunk, **best, "skipped": tuple(skip), "blocked": blocked,
           "gemms": min(gemms),
           "logits_MiB": logits / MiB,
           "fused_extra_MiB": extra["fused"],
           "unfused_extra_MiB": extra.get("unfused", float("nan")),
           "bound_MiB": max(32 * MiB, 0.03 * logits) / MiB}
    log(_fmt_row(row), flush=True)
    return row


HEADER = ("| N, H, V | GEMMs alone | fused | unfused | torch | fused extra memory (bound) | "
          "unfused extra memory |\n| --- | --- | --- | --- | --- | --- | --- |")


def _fmt_row(r: dict) -> str:
    """One row in the README's (and the issue's) format: times as ratios to the GEMMs."""
    g = r["gemms"]
    def col(k: str) -> str:
        if k in r:
            return f"{r[k] / g:.2f}x"
        if k in r.get("skipped", ()):
            return "does not fit" if r.get("blocked") else "not run"
        return "n/a"

    tor, unf = col("torch"), col("unfused")
    unf_mem = (f"{r['unfused_extra_MiB']:.0f} MiB" if "unfused" in r else "")
    share = 100 * r["fused_extra_MiB"] / r["logits_MiB"]
    blk = f", {BLOCK_ROWS}-row blocks" if r.get("blocked") else ""
    return (f"| {r['N']}, {r['H']}, {r['V']} | 1.00x ({g:.3f} s{blk}) | {r['fused'] / g:.2f}x | "
            f"{unf} | {tor} | {r['fused_extra_MiB']:.0f} MiB = {share:.0f}% "
            f"of the logits ({r['bound_MiB']:.0f}) | {unf_mem} |")


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        vals = ()
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{name} takes positive integers separated by commas, got {text!r}")
    return vals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small points only")
    ap.add_argument("--points", nargs="*", default=None, metavar="N,H,V",
                    help="explicit points instead of the grid")
    ap.add_argument("--n", type=lambda t: _ints(t, "--n"), default=GRID_N, metavar="N,...",
                    help="batch sizes of the grid (default 1024,4096,8192)")
    ap.add_argument("--h", type=lambda t: _ints(t, "--h"), default=GRID_H, metavar="H,...",
                    help="hidden sizes of the grid (default 512,1024,2048)")
    ap.add_argument("--v", type=lambda t: _ints(t, "--v"), default=GRID_V, metavar="V,...",
                    help="vocabulary sizes of the grid (default 32000,65536,131072,262144)")
    ap.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                    help="run the points cheapest first; leave out those that would not "
                         "finish within this many seconds (estimated)")
    ap.add_argument("--rounds", type=int, default=3, help="best of this many rounds (3)")
    ap.add_argument("--threads", type=int, default=2, help="BLAS and kernel threads (2)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--curve", action="store_true",
                    help="also time chunk sizes 64..2048 at each point (the trade-off curve)")
    ap.add_argument("--no-torch", action="store_true", help="leave out torch's column")
    ap.add_argument("--no-unfused", action="store_true", help="leave out the unfused column")
    ap.add_argument("--gemms", choices=["both", "scipy"], default="both",
                    help="time the GEMMs with NumPy's and SciPy's BLAS and keep the faster "
                         "(both), or with SciPy's alone, the BLAS the fused path runs on")
    ap.add_argument("--traced-last", action="store_true",
                    help="measure memory in the last timed round instead of two extra calls")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        ap.error("--rounds and --threads must be >= 1")
    if args.budget is not None and args.budget <= 0:
        ap.error("--budget must be > 0 seconds")

    from threadpoolctl import threadpool_limits

    import softmaxkit as smk

    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811

            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    smk.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    dtype = np.dtype(args.dtype)
    if args.points:
        try:
            points = [tuple(int(x) for x in p.split(",")) for p in args.points]
            if not all(len(p) == 3 and min(p) >= 1 for p in points):
                raise ValueError
        except ValueError:
            ap.error("--points takes N,H,V triples of positive ints, e.g. 4096,1024,32768")
    elif args.quick:
        points = list(QUICK)
    else:
        points = [(n, h, v) for n in args.n for h in args.h for v in args.v]
    if args.budget is not None:
        points.sort(key=lambda p: p[0] * p[1] * p[2])
    print(f"# linear CE, {dtype}, {args.threads} threads, best of {args.rounds}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print("# times are ratios to the three GEMMs alone; torch = F.linear_cross_entropy + backward")
    print(HEADER)
    skipped = []
    start = time.perf_counter()
    per_unit = None  # seconds per N*H*V unit of a whole point, from the first one run
    for n, h, v in points:
        # the unfused path holds the logits and their gradient while the GEMMs' own
        # (N, V) scratch is alive (three times the logits; the 8192 x 512 x 262144
        # point, estimated at two, was OOM-killed at 24 GB); torch about as much
        skip = set() if args.gemms == "both" else {"gemms_numpy"}
        if args.no_unfused:
            skip.add("unfused")
        blocked = False  # the logits do not fit twice: GEMMs alone in row blocks
        need = (3 * n * v + 3 * (n * h + v * h)) * dtype.itemsize
        if need > 0.8 * _avail_bytes():
            skip |= {"unfused", "torch", "gemms_numpy"}
            blocked = True
            need = (min(n, BLOCK_ROWS) * v + 3 * (n * h + v * h)) * dtype.itemsize
            if need > 0.8 * _avail_bytes():
                skipped.append((n, h, v, f"needs ~{need / 2**30:.1f} GiB, more than 80% of "
                                         f"free memory"))
                continue
        if args.budget is not None and per_unit is not None:
            left = args.budget - (time.perf_counter() - start)
            estimate = per_unit * n * h * v
            if estimate > left:
                skipped.append((n, h, v, f"~{estimate:.0f} s estimated, {max(left, 0):.0f} s of "
                                         f"the budget left"))
                continue
        t0 = time.perf_counter()
        measure(n, h, v, rounds=args.rounds, dtype=dtype, smk=smk, torch=torch, skip=skip,
                traced_last=args.traced_last, blocked=blocked)
        if args.curve:
            for c in (64, 128, 256, 512, 1024, 2048):
                if c < n:
                    r = measure(n, h, v, rounds=args.rounds, dtype=dtype, smk=smk, torch=None,
                                chunk=c, log=lambda *a, **k: None)
                    print(f"|   chunk {c} | | {r['fused'] / r['gemms']:.2f}x | | | "
                          f"{r['fused_extra_MiB']:.0f} MiB | |", flush=True)
        if per_unit is None:
            per_unit = (time.perf_counter() - t0) / (n * h * v)
    for n, h, v, why in skipped:
        print(f"# not run: N={n} H={h} V={v}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
