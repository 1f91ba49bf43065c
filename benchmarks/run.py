#!/usr/bin/env python
"""The softmaxkit benchmark suite: ``python benchmarks/run.py [options]`` (or
``softmaxkit bench [options]`` with softmaxkit installed from this checkout).

One run measures every kernel three ways, under the same conditions:

* as a ratio to a **memory pass over the same bytes** measured in the same run:
  ``np.copyto`` for functions that write an array as large as their input, and a
  read pass (``x.sum(axis=-1)``) for reductions and forward-only losses. A kernel
  cannot beat its own memory traffic, so the ratio says how close to the floor it is;
* against **SciPy** (``scipy.special.softmax`` / ``log_softmax`` / ``logsumexp`` /
  ``expit``; SciPy is single-threaded, so it is timed once, at 1 thread);
* against **PyTorch on the CPU** (``torch.softmax``, ``torch.log_softmax``, ...,
  ``F.cross_entropy`` forward and forward + ``backward()``), with
  ``torch.set_num_threads`` equal to softmaxkit's thread count.

Each time is the best of at least ``--repeat`` calls, and of at least 0.25 s of calls,
after one warm-up call (fewer calls when one is slow: a measurement stops after about
a second), and the best over ``--rounds`` rounds of the whole kernel table (default 2),
since a disturbance on a small shared machine can outlast one measurement. Functions that have an
``out=`` (softmaxkit, including the gradient of ``cross_entropy_and_grad``, NumPy,
SciPy's ``expit``, PyTorch's ``softmax`` / ``log_softmax`` / ``sigmoid``) write into a
preallocated array, as the copy does;
the others allocate their result, in every library alike.

Sections (``--sections``, comma separated):

``softmax``
    softmax, log_softmax, logsumexp, sigmoid, softmax_backward, log_softmax_backward on
    float32 and float64 arrays of shape (8192, 1000), (2048, 32000), (256, 256000).
``ce``
    cross-entropy with integer labels, forward and forward + backward, float32, same
    shapes.
``linear-ce``
    fused :func:`softmaxkit.linear_cross_entropy_and_grad` against the unfused path
    (full logits, then :func:`softmaxkit.cross_entropy_and_grad`, then the two
    matrix products) at N=8192, H=1024, V=65536 float32: time and peak extra memory
    (``tracemalloc``, which sees NumPy's array allocations). Heavy: about 4 GiB of
    memory and a few minutes on two cores, so it is not in the default sections.

``regression``
    fit time and test accuracy of :class:`softmaxkit.SoftmaxRegression` (lbfgs, the
    default) and scikit-learn's ``LogisticRegression()`` on the digits data
    (standardised, stratified 75/25 split, seed 0), same thread count. Cheap: in the
    default sections.

``--quick`` uses tiny shapes and one timed call: it checks the plumbing (the test
suite runs it), its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (  # noqa: E402
    KERNEL_HEADER,
    LINEAR_HEADER,
    REGRESSION_HEADER,
    kernel_table,
    linear_table,
    machine_info,
    markdown_report,
    merge_rounds,
    regression_table,
    text_table,
)
from benchmarks.sections import (  # noqa: E402
    DEFAULT_SECTIONS,
    FULL_LINEAR_CE,
    FULL_SHAPES,
    QUICK_LINEAR_CE,
    QUICK_SHAPES,
    SECTIONS,
    run_kernels,
    run_linear_ce,
    run_regression,
)
from softmaxkit._io import atomic_open  # noqa: E402

__all__ = ["main", "build_parser"]

PROG = "softmaxkit bench"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage dump), exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parse_ints(text: str, name: str, count: int | None = None) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values) or (count is not None and len(values) != count):
        want = f"{count} " if count else ""
        raise argparse.ArgumentTypeError(f"{name} must be {want}positive integers, got {text!r}")
    return values


def _positive(name: str):
    def parse(text: str) -> int:
        (value,) = _parse_ints(text, name, 1)
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (``--help`` lists them)."""
    p = _Parser(
        prog=PROG,
        description="Time softmaxkit's kernels against a copy/read pass, SciPy and PyTorch. "
        "The table goes to stdout, progress lines to stderr.",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and one timed call (checks the plumbing; numbers mean nothing)")
    p.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} "
                        f"(default: {','.join(DEFAULT_SECTIONS)})")
    p.add_argument("--linear-ce", action="store_true",
                   help="add the linear-ce section (heavy: ~4 GiB and minutes at full size)")
    p.add_argument("--linear-ce-shape", type=lambda s: _parse_ints(s, "--linear-ce-shape", 3),
                   default=None, metavar="N,H,V", help="shape of the linear-ce section")
    p.add_argument("--threads", type=lambda s: _parse_ints(s, "--threads"), default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--linear-ce-threads", type=lambda s: _parse_ints(s, "--linear-ce-threads"),
                   default=None, metavar="THREADS",
                   help="thread counts for the linear-ce section (default: those of --threads)")
    p.add_argument("--repeat", type=_positive("--repeat"), default=None, metavar="K",
                   help="timed calls per measurement (default 5; 1 with --quick and for linear-ce)")
    p.add_argument("--rounds", type=_positive("--rounds"), default=None, metavar="R",
                   help="repeat the kernel sections this many times and keep each "
                        "measurement's best (default 2; 1 with --quick)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparisons")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status (0; 2 after a one-line error)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.linear_ce and "linear-ce" not in sections:
        sections.append("linear-ce")
    for option, path in (("--markdown", args.markdown), ("--json", args.json)):
        # checked before minutes of measuring, not after
        if path is not None and not Path(path).resolve().parent.is_dir():
            parser.error(f"{option} {path}: folder {Path(path).resolve().parent} does not exist")
    try:
        return _run(args, sections, argv)
    except (OSError, MemoryError) as exc:  # a write that fails, a shape too large
        what = f"{exc.filename}: {exc.strerror}" if getattr(exc, "strerror", None) else (
            str(exc) or type(exc).__name__)
        parser.exit(2, f"{PROG}: error: {what}\n")


def _run(args: argparse.Namespace, sections: list[str], argv: list[str]) -> int:
    repeat = args.repeat or (1 if args.quick else 5)
    budget = 0.0 if args.quick else 1.0

    torch = None
    notes: list[str] = []
    if not args.no_torch:
        try:
            import torch  # noqa: F811  (optional dependency, imported only here)
        except ImportError:
            notes.append("PyTorch is not installed; its columns are empty.")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    rounds = args.rounds or (1 if args.quick else 2)
    kernels = merge_rounds([run_kernels(sections, shapes, args.threads, repeat, budget, torch, log)
                            for _ in range(rounds)])
    regression = run_regression(args.threads, repeat, budget, log) if "regression" in sections else []
    linear = []
    linear_repeat = args.repeat or 1  # each call is long: one timed call by default
    if "linear-ce" in sections:
        lshape = args.linear_ce_shape or (QUICK_LINEAR_CE if args.quick else FULL_LINEAR_CE)
        linear = run_linear_ce(tuple(lshape), args.linear_ce_threads or args.threads,
                               linear_repeat, torch, log)

    report = {
        "machine": machine_info(torch),
        "command": "python benchmarks/run.py " + " ".join(argv),
        "config": {"sections": sections, "threads": args.threads, "repeat": repeat, "rounds": rounds,
                   "linear_ce_repeat": linear_repeat, "quick": args.quick},
        "kernels": kernels,
        "regression": regression,
        "linear_ce": linear,
        "notes": notes,
    }
    tables = [(KERNEL_HEADER, kernel_table(kernels)), (REGRESSION_HEADER, regression_table(regression)),
              (LINEAR_HEADER, linear_table(linear))]
    print("\n\n".join(text_table(h, rows, align="left") for h, rows in tables if rows))
    for note in notes:
        print(f"note: {note}")
    if args.markdown:
        with atomic_open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown_report(report))
    if args.json:
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
