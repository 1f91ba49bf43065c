"""``softmaxkit sample``: draw tokens from the softmax of some logits, as a decoder
does, and show the processed distribution next to the empirical frequencies.

    softmaxkit sample 2.0 1.0 0.5 --temperature 0.7 --top-p 0.9 -n 1000

Register it in the command line's parser with ``add_sample_parser(subparsers)``; the
parsed arguments' ``func`` is :func:`run_sample`. Mistakes raise ``ValueError`` with
a one-line message in the command line's option names (``--top-p must be ...``),
which the command line prints on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Any

__all__ = ["add_sample_parser", "run_sample", "format_sample_table"]

_EPILOG = """\
examples:
  softmaxkit sample 2.0 1.0 0.5 --temperature 0.7 --top-p 0.9 -n 1000
  softmaxkit sample 3 2 1 0 --top-k 2 -n 10000 --seed 7
  softmaxkit sample 1 1 0.5 --temperature 0                 greedy: the first maximum

Truncation order (Hugging Face's and vLLM's): temperature, top-k, top-p on what top-k
left, min-p. Ties at a threshold are kept. The draws are reproducible: the same
--seed gives the same draws on any machine and thread count.
"""

# The library's argument names, as the command line spells them.
_OPTION_NAMES = {"temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p",
                 "min_p": "--min-p", "size": "-n", "seed": "--seed", "logits": "VALUES"}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text.strip()!r}") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text.strip()!r}") from None
    if not 1 <= value <= 10**8:
        raise argparse.ArgumentTypeError(f"must be an int in the range [1, 100000000], got {value}")
    return value


def add_sample_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sample`` command to an ``add_subparsers()`` object; returns its parser."""
    p = subparsers.add_parser(
        "sample", help="draw tokens from softmax(logits) with temperature, top-k, top-p, min-p",
        description="Draw N tokens from the processed softmax of VALUES and print the "
        "processed distribution beside the empirical frequencies.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("values", nargs="+", type=_number, metavar="VALUE", help="logits (numbers; -inf allowed)")
    p.add_argument("--temperature", type=_number, default=1.0, metavar="T",
                   help="divide the logits by T >= 0 (0: greedy; default 1)")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="keep the K most likely tokens")
    p.add_argument("--top-p", type=_number, default=None, metavar="P",
                   help="keep the smallest set of most likely tokens with probability >= P, in (0, 1]")
    p.add_argument("--min-p", type=_number, default=None, metavar="P",
                   help="keep tokens at least P times as likely as the most likely one, in [0, 1]")
    p.add_argument("-n", "--draws", type=_count, default=1000, metavar="N",
                   help="number of draws (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the counter-based generator, in [0, 2**64) (default 0)")
    p.set_defaults(func=run_sample)
    return p


def _cli_message(exc: Exception) -> str:
    msg = str(exc)
    for name, option in _OPTION_NAMES.items():
        msg = re.sub(rf"\b{name}\b", option, msg)
    return msg


def format_sample_table(values, probs, counts, n: int) -> str:
    """The table the command prints: index, logit, processed probability, empirical
    frequency and count, one row per token."""
    lines = [f"{'token':>5}  {'logit':>10}  {'processed p':>12}  {'empirical':>9}  {'count':>9}"]
    for i, (v, p, c) in enumerate(zip(values, probs, counts)):
        lines.append(f"{i:>5}  {v:>10.4g}  {p:>12.6f}  {c / n:>9.4f}  {c:>9d}")
    return "\n".join(lines)


def run_sample(args: argparse.Namespace) -> int:
    """Run ``softmaxkit sample`` on parsed arguments; prints the table, returns 0."""
    import numpy as np

    from .._sampling import sample, sampling_probs

    values = np.array(args.values, dtype=np.float64)
    opts = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p)
    if not math.isfinite(args.temperature):
        raise ValueError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    try:
        probs = sampling_probs(values, **opts)
        draws = sample(values, size=args.draws, seed=args.seed, **opts)
    except (ValueError, TypeError) as exc:
        raise ValueError(_cli_message(exc)) from None
    counts = np.bincount(draws, minlength=values.size)
    print(format_sample_table(values, probs, counts, args.draws))
    used = [f"temperature {args.temperature:g}"]
    for label, value in (("top-k", args.top_k), ("top-p", args.top_p), ("min-p", args.min_p)):
        if value is not None:
            used.append(f"{label} {value:g}")
    note = ""
    support = probs > 0
    if support.sum() > 1:
        from scipy import stats

        pvalue = stats.chisquare(counts[support], probs[support] * args.draws).pvalue
        note = f"; chi-square p-value {pvalue:.3g} (the draws against the processed distribution)"
    print(f"\n{', '.join(used)}; {args.draws} draws, seed {args.seed}{note}")
    return 0
