#!/usr/bin/env python
"""Token sampling benchmark: smk.sample against PyTorch's usual CPU paths.

    python benchmarks/sampling.py            # batch 1, 8, 256 x V = 32000, 128256, 262144
    python benchmarks/sampling.py --quick    # batch 1, 8 x V = 32000, 128256, fewer repeats
    python benchmarks/sampling.py --threads 1,2 --markdown out.md

Compared, on the same float32 logits (rows of N(0, 1) * 4: peaked, like a language
model's next-token logits; batch 1 is the decoding call, a 1-D row and an int seed):

* ``read``: ``np.copyto`` of the logits into a buffer of their size, one read (and
  write) of the row: the floor for any sampler, and the issue's yardstick ("single-row
  latency within 1.5x of one read of the row"); ``sum``, ``x.sum(axis=-1)``, the
  other reading of "one read" (slower: NumPy's pairwise float32 sum);
* ``smk top-k/p``: ``smk.sample(x, temperature=0.8, top_k=50, top_p=0.9, seed=...)``
  (the sparse path: column maxima, exps of the candidates), and ``smk min-p``: the
  same with ``min_p=0.05`` alone;
* ``smk top-p``: top-p 0.9 alone (the dense path: every weight is summed);
* ``torch sort``: Hugging Face's logits processors (``TemperatureLogitsWarper``,
  ``TopKLogitsWarper``, ``TopPLogitsWarper``: ``torch.topk`` threshold, a full
  ``torch.sort``, ``softmax().cumsum()``, ``scatter``, ``masked_fill``) then
  ``torch.multinomial`` on the softmax: the sort-based path the issue names;
* ``smk plain`` and ``torch multinomial``: untruncated sampling, ``smk.sample(x)``
  against ``torch.multinomial(torch.softmax(x / T), 1)``.

The ratios: ``/ read`` is a time over the read's (1.0 would be one read of the row);
``sort / smk`` and ``mult / smk`` are torch's time over ours.

Each time is the best of ``--repeat`` calls (and at least 0.2 s of calls) after one
warm-up, smk's before torch's, with a pause after torch's (SETTLE); ``smk.set_num_threads`` and ``torch.set_num_threads`` get the same value
(default 2). Numbers from a shared machine are indicative only.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

import softmaxkit as smk

TEMPERATURE, TOP_K, TOP_P, MIN_P = 0.8, 50, 0.9, 0.05
# Seconds to wait after torch runs (and after importing it) before timing smk: torch's
# worker threads keep spinning for a while after its calls, and on a machine with
# few cores softmaxkit's threads then wait on them (milliseconds a call, measured on
# 2 cores); the wait keeps the numbers about the samplers, not their interference.
SETTLE = 1.0


def best_time(fn, repeat: int, min_total: float = 0.2) -> float:
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_total:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > 3.0 and len(times) >= 2:
            break
    return min(times)


def torch_hf_sample(torch, logits, temperature, top_k, top_p):
    """Hugging Face's TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper
    (transformers/generation/logits_process.py), then multinomial."""
    scores = logits / temperature
    top_k = min(top_k, scores.size(-1))
    indices_to_remove = scores < torch.topk(scores, top_k)[0][..., -1, None]
    scores = scores.masked_fill(indices_to_remove, -float("inf"))
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_indices_to_remove = cumulative_probs <= (1 - top_p)
    sorted_indices_to_remove[..., -1:] = 0
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    scores = scores.masked_fill(indices_to_remove, -float("inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, num_samples=1).squeeze(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 1 and 8, V up to 128256, 3 repeats")
    ap.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    ap.add_argument("--repeat", type=int, default=None, help="calls per measurement (default 7, quick 3)")
    ap.add_argument("--markdown", default=None, metavar="FILE", help="also write the table to FILE")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    else:
        time.sleep(SETTLE)
    batches = [1, 8] if args.quick else [1, 8, 256]
    vocabs = [32000, 128256] if args.quick else [32000, 128256, 262144]
    repeat = args.repeat or (3 if args.quick else 7)
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)

    header = ("| threads | batch | V | read | sum | smk top-k/p | / read | smk min-p | / read | smk top-p | "
              "torch sort (HF) | sort / smk | smk plain | / read | torch multinomial | mult / smk |")
    lines = [header, "|" + " --- |" * 16]
    print(header)
    print(lines[1])
    old = smk.get_num_threads()
    try:
        for nt in threads:
            smk.set_num_threads(nt)
            if torch is not None:
                torch.set_num_threads(nt)
            for b in batches:
                for v in vocabs:
                    x = (rng.standard_normal((b, v), dtype=np.float32) * 4).astype(np.float32)
                    # batch 1: the decoding call, one 1-D row and an int seed
                    xs, seeds = (x[0], 1) if b == 1 else (x, np.arange(b))
                    buf = np.empty_like(x)
                    t_read = best_time(lambda: np.copyto(buf, x), repeat)
                    t_sum = best_time(lambda: x.sum(axis=-1), repeat)
                    t_kp = best_time(lambda: smk.sample(xs, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P,
                                                        seed=seeds), repeat)
                    t_mp = best_time(lambda: smk.sample(xs, temperature=TEMPERATURE, min_p=MIN_P, seed=seeds), repeat)
                    t_p = best_time(lambda: smk.sample(xs, temperature=TEMPERATURE, top_p=TOP_P, seed=seeds), repeat)
                    t_plain = best_time(lambda: smk.sample(xs, temperature=TEMPERATURE, seed=seeds), repeat)
                    if torch is not None:
                        xt = torch.from_numpy(x)
                        t_sort = best_time(lambda: torch_hf_sample(torch, xt, TEMPERATURE, TOP_K, TOP_P), repeat)
                        t_mult = best_time(
                            lambda: torch.multinomial(torch.softmax(xt / TEMPERATURE, dim=-1), 1), repeat)
                        time.sleep(SETTLE)
                    else:
                        t_sort = t_mult = float("nan")
                    us = lambda t: f"{t * 1e6:.0f} us"  # noqa: E731
                    row = (f"| {nt} | {b} | {v} | {us(t_read)} | {us(t_sum)} | {us(t_kp)} | {t_kp / t_read:.1f} | "
                           f"{us(t_mp)} | {t_mp / t_read:.1f} | {us(t_p)} | {us(t_sort)} | {t_sort / t_kp:.1f}x | "
                           f"{us(t_plain)} | {t_plain / t_read:.1f} | {us(t_mult)} | {t_mult / t_plain:.1f}x |")
                    print(row, flush=True)
                    lines.append(row)
    finally:
        smk.set_num_threads(old)
        if torch is not None:
            torch.set_num_threads(max(1, os.cpu_count() or 1))
    info = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}"
            + (f", torch {torch.__version__}" if torch is not None else ""))
    print(info)
    if args.markdown:
        with open(args.markdown + ".tmp", "w") as fh:
            fh.write("\n".join(lines) + "\n\n" + info + "\n")
        os.replace(args.markdown + ".tmp", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
