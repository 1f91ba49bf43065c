"""The ``softmaxkit`` command line: explain, train, predict, bench.

Run ``softmaxkit --help`` or ``softmaxkit COMMAND --help``. ``main(argv)`` returns the
exit status: 0 on success, 2 on a user error (bad option or number, missing or
malformed file, a file that would overwrite an input), which is reported as one line
on stderr without a traceback. Set ``SOFTMAXKIT_DEBUG=1`` to get the traceback
instead. The work itself is done by plain functions (:func:`softmaxkit.app.train.train`,
:func:`softmaxkit.app.predict.predict`, :func:`softmaxkit.explain`); this module
parses, checks the options' ranges, and reports.
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

__all__ = ["main", "build_parser", "UserError"]

PROG = "softmaxkit"
# Integer options go through C (NumPy, SciPy, the kernels): larger values overflow.
_INT_MAX = 2**31 - 1


class UserError(Exception):
    """A mistake in the command line or its files: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), a --help hint, and a
    "did you mean" for a mistyped choice."""

    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse API
        # "argument --epochs: must be ..." -> "--epochs must be ...", as the other messages
        message = re.sub(r"^argument (-[^:]*): must be", r"\1 must be", message)
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
            message += _did_you_mean(m.group(1), choices)
        raise UserError(f"{message} (see '{self.prog} --help')")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


_EXPLAIN_EPILOG = """\
examples:
  softmaxkit explain 1.5 0.8 -0.2                  the articles' step-by-step table
  softmaxkit explain 1.5 0.8 -0.2 --label 0        plus cross-entropy and gradient p - y
  softmaxkit explain 123 456 789                   naive exp overflows: [0, 0, nan]
  softmaxkit explain -1000 -1000 -1000             naive exp underflows: 0/0
  softmaxkit explain 50 89 --float32               exp(89) overflows float32
  softmaxkit explain 2 1 0.5 --temperature 2       a higher temperature flattens p
  softmaxkit explain 0.34 0.46 0.20 --probabilities --label 0
                                                   gradient at given probabilities
  softmaxkit explain 2 3 5 6 --sigmoid             elementwise sigmoid instead
  softmaxkit explain 1.5 0.8 -0.2 --plot bars.png  bar chart of logits beside p
  softmaxkit explain 1 2 3 --sample 1000           sample actions from softmax

Class indices are 0-based. Negative numbers need no quoting. Pictures: .png, .svg,
.pdf or .jpg, chosen by the suffix.
"""

_TRAIN_EPILOG = """\
examples:
  softmaxkit train --out model.npz                          digits, L-BFGS
  softmaxkit train --data digits --solver adam --epochs 30 --out model.npz --report report/
  softmaxkit train --data iris.csv --label-column species --out iris.npz
  softmaxkit train --data train-images-idx3-ubyte.gz --solver sgd --epochs 5 --out mnist.npz
  softmaxkit train --data big.npy --labels y.npy --batch-size 4096 --out big-model.npz

Data: 'digits' (bundled with scikit-learn), .npz with arrays X and y, .csv with a
header row (label column by name, default the last), or MNIST/Fashion-MNIST IDX
files (raw or .gz; the labels file is found beside the images file, or pass
--labels), or a 2-D .npy file with --labels y.npy (1-D), trained on out of core:
read in blocks of --batch-size rows (lbfgs) or about 16 MiB (sgd, adam), never
loaded whole. Features must be finite numbers; they are standardised, and the mean
and scale are stored in the model. A stratified share (--test-size; for .npy,
evenly spaced rows) is held out, measured after every iteration or epoch and
reported. Output files are written atomically and never over an input file.
"""

_PREDICT_EPILOG = """\
examples:
  softmaxkit predict --model model.npz --data digits
  softmaxkit predict --model iris.npz --data new-flowers.csv --output predictions.csv

Writes one CSV row per sample: the predicted class, then one probability column per
class (p_<class>). A CSV file is matched to the model's feature columns by name
when the model has them (any order, extra columns ignored), else by position. A
label column (by the training name, or --label-column) is used only to report
accuracy on stderr, saying which rows were measured.
"""


def _add_data_args(p: argparse.ArgumentParser, *, default: str | None = None) -> None:
    p.add_argument("--data", default=default, metavar="digits|PATH",
                   help="'digits' or a .npz, .csv or IDX file (train: also .npy)"
                   + (f" (default: {default})" if default else ""))
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="CSV: name of the label column (default: the last column)")
    p.add_argument("--labels", metavar="PATH", default=None,
                   help="IDX: the labels file (default: found beside the images file); "
                   ".npy data: a 1-D .npy file of labels")


def _int_arg(lo: int, hi: int = _INT_MAX, *, check_lo: bool = True) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (``check_lo=False``: the estimator
    checks the lower bound, in its own words)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text.strip()!r}") from None
        if (check_lo and value < lo) or value > hi:
            raise argparse.ArgumentTypeError(f"must be an int in the range [{lo}, {hi}], got {value}")
        return value

    return parse


def _float_arg(text: str) -> float:
    """A number, infinities included (logits may be -inf)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text.strip()!r}") from None


def _finite_arg(text: str) -> float:
    """A finite number (every float option)."""
    value = _float_arg(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text.strip()!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``softmaxkit`` command."""
    parser = _Parser(
        prog=PROG,
        description="softmax, sigmoid and cross-entropy done exactly right: explain the "
        "numbers, train a softmax-regression classifier, predict, benchmark.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  softmaxkit explain 1.5 0.8 -0.2 --label 0\n"
        "  softmaxkit train --data digits --out model.npz --report report/\n"
        "  softmaxkit predict --model model.npz --data digits --output predictions.csv\n"
        "  softmaxkit bench --quick\n\n'softmaxkit COMMAND --help' for each command's options.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"softmaxkit {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    e = sub.add_parser("explain", help="step-by-step softmax (or sigmoid) of some numbers",
                       description="Show every step of the stable softmax of VALUES next to the "
                       "naive formula exp(z)/sum(exp(z)).",
                       epilog=_EXPLAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("values", nargs="+", type=_float_arg, metavar="VALUE", help="logits z (numbers)")
    e.add_argument("--label", type=_int_arg(0, check_lo=False), default=None, metavar="K",
                   help="true class index (0-based): adds the cross-entropy and the gradient p - y")
    e.add_argument("--temperature", type=_finite_arg, default=1.0, metavar="T",
                   help="divide the logits by T > 0 first (default 1)")
    e.add_argument("--probabilities", action="store_true",
                   help="VALUES are probabilities (summing to 1): use log(p) as the logits")
    e.add_argument("--float32", action="store_true",
                   help="compute in float32 (exp overflows above about 88.7 instead of 709.8)")
    e.add_argument("--sigmoid", action="store_true", help="explain the elementwise sigmoid instead")
    e.add_argument("--sample", type=_int_arg(1, 10**8), default=None, metavar="N",
                   help="also draw N classes from the softmax (as a policy samples actions) "
                   "and compare their frequencies with p")
    e.add_argument("--seed", type=_int_arg(0, 2**32 - 1), default=0, metavar="S",
                   help="random seed for --sample (default 0)")
    e.add_argument("--plot", metavar="FILE", default=None,
                   help="write a bar chart of the values beside their probabilities "
                   "(.png, .svg, .pdf or .jpg)")
    e.set_defaults(func=_cmd_explain)

    t = sub.add_parser("train", help="train a softmax-regression classifier",
                       description="Train SoftmaxRegression on a data set, hold out a test share, "
                       "save the model (.npz) and optionally a report folder.",
                       epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(t, default="digits")
    t.add_argument("--solver", choices=["lbfgs", "sgd", "adam"], default="lbfgs",
                   help="optimiser (default lbfgs)")
    t.add_argument("--epochs", type=_int_arg(1, check_lo=False), default=None, metavar="N",
                   help="max iterations (lbfgs) or epochs (sgd, adam); default 100")
    t.add_argument("--alpha", type=_finite_arg, default=1.0, metavar="A",
                   help="L2 strength, scaled like 1/C of LogisticRegression (default 1)")
    t.add_argument("--batch-size", type=_int_arg(1, check_lo=False), default=None, metavar="B",
                   help="minibatch size (sgd, adam; default 64); with .npy data and lbfgs, "
                   "rows per block read from the file (default: about 16 MiB)")
    t.add_argument("--learning-rate", type=_finite_arg, default=None, metavar="LR",
                   help="step size (sgd, adam); default: the solver's")
    t.add_argument("--label-smoothing", type=_finite_arg, default=0.0, metavar="EPS",
                   help="train on (1 - EPS) * one-hot + EPS / K instead of the one-hot labels "
                   "(0 <= EPS < 1; default 0)")
    t.add_argument("--early-stopping", action="store_true",
                   help="sgd/adam: stop when the validation loss stops improving")
    t.add_argument("--test-size", type=_finite_arg, default=0.25, metavar="FRACTION",
                   help="held-out share, stratified (default 0.25)")
    t.add_argument("--seed", type=_int_arg(0, 2**32 - 1), default=0, metavar="S",
                   help="random seed for the split and the solver (default 0)")
    t.add_argument("--no-standardize", action="store_true",
                   help="do not standardise the features")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--out", required=True, metavar="MODEL.npz", help="where to save the model")
    t.add_argument("--report", metavar="DIR", default=None,
                   help="write training_curves.png, confusion_matrix.png and metrics.json here")
    t.set_defaults(func=_cmd_train)

    pr = sub.add_parser("predict", help="predict with a saved model",
                        description="Predict classes and probabilities with a model saved by "
                        "'softmaxkit train'.",
                        epilog=_PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("--model", required=True, metavar="MODEL.npz",
                    help="a model file written by 'softmaxkit train --out'")
    _add_data_args(pr)
    pr.add_argument("--output", metavar="FILE.csv", default=None,
                    help="write the CSV here instead of stdout")
    pr.set_defaults(func=_cmd_predict)

    b = sub.add_parser("bench", help="benchmark the kernels and print the ratio table",
                       description="Run softmaxkit's benchmark (benchmarks/run.py of a source "
                       "checkout); every argument after 'bench' goes to it: 'softmaxkit bench "
                       "--help' lists them.",
                       add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="the benchmark's options")
    b.set_defaults(func=_cmd_bench)

    from . import calibrate_cmd, explore_cmd
    from .sample_cmd import add_sample_parser

    add_sample_parser(sub)  # softmaxkit sample: its func is app.sample_cmd.run_sample
    calibrate_cmd.add_parser(sub)  # softmaxkit calibrate: app.calibrate_cmd.run
    explore_cmd.add_parser(sub)  # softmaxkit explore: app.explore_cmd.run
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _protect_negative_numbers(argv: list[str]) -> list[str]:
    """Let ``explain -1e3 -inf`` through argparse.

    argparse takes '-1000' and '-0.2' as numbers but '-1e3' or '-inf' as options.
    A leading space makes any token a positional for argparse, and float() and int()
    ignore it, so numeric tokens starting with '-' get one.
    """
    out = []
    for tok in argv:
        if tok.startswith("-") and tok not in ("-", "--") and not tok.startswith("--"):
            try:
                float(tok)
            except ValueError:
                pass
            else:
                tok = " " + tok
        out.append(tok)
    return out


# ---------------------------------------------------------------------------- commands


def _cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from .explain import explain, explain_sigmoid

    values = np.array(args.values, dtype=np.float64)
    if args.plot:
        _check_image_path(args.plot, "--plot")
    if args.sigmoid:
        if args.label is not None or args.probabilities or args.temperature != 1.0 or args.float32:
            raise UserError("--sigmoid takes no --label, --temperature, --probabilities or --float32")
        if args.sample is not None:
            raise UserError("--sample draws from a softmax: it does not go with --sigmoid")
        result = explain_sigmoid(values)
    else:
        if args.probabilities:
            from .._validation import check_prob_rows

            try:
                check_prob_rows(values.reshape(1, -1), "VALUES")
            except ValueError as exc:
                why = str(exc).split(" but ", 1)[-1].split("; ")[0].replace("row 0, class", "value")
                raise UserError(f"--probabilities needs values in [0, 1] summing to 1, got "
                                f"{values.tolist()}: {why.replace('row 0 sums', 'they sum')}") from None
            with np.errstate(divide="ignore"):
                values = np.log(values)  # log 0 = -inf: a class with probability 0
        if args.label is not None and not 0 <= args.label < values.size:
            raise UserError(f"--label must be a class index in 0..{values.size - 1}, got {args.label}")
        try:
            result = explain(values, label=args.label, temperature=args.temperature,
                             dtype=np.float32 if args.float32 else np.float64)
        except ValueError as exc:  # in the options' names
            raise UserError(str(exc).replace("temperature must", "--temperature must")) from None
    print(result)
    if args.sample:
        from .._sampling import sample

        draws = sample(values, temperature=args.temperature, size=args.sample, rng=args.seed)
        counts = np.bincount(draws, minlength=values.size)
        freq = ", ".join(f"{c / args.sample:.4f}" for c in counts)
        print(f"\nsampled {args.sample} classes from softmax (seed {args.seed}): counts "
              f"{counts.tolist()}, frequencies [{freq}]")
    if args.plot:
        result.plot(args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


def _check_image_path(path: str, option: str) -> None:
    from .plots import image_format

    try:
        image_format(path)
    except ValueError as exc:
        raise UserError(f"{option} {exc}") from None
    _check_folder(path, option)


def _check_folder(path: str, option: str) -> None:
    from pathlib import Path

    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: folder {parent} does not exist")
    if Path(path).is_dir():
        raise UserError(f"{option} {path}: is a folder, expected a file name")


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    _check_folder(args.out, "--out")
    result = train(
        args.data, out=args.out, report=args.report, label_column=args.label_column,
        labels=args.labels, solver=args.solver, epochs=args.epochs, alpha=args.alpha,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        label_smoothing=args.label_smoothing, early_stopping=args.early_stopping,
        test_size=args.test_size, seed=args.seed, standardize=not args.no_standardize,
        verbose=not args.quiet,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict

    if args.data is None:
        raise UserError("--data is required (digits or a .npz, .csv or IDX file)")
    if args.output:
        _check_folder(args.output, "--output")
    predict(args.model, args.data, label_column=args.label_column, labels=args.labels,
            output=args.output)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.run(list(args.bench_args))


# ---------------------------------------------------------------------------- main


def _option_hints(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """" (did you mean --epochs?)" for the unknown ``--options`` in argv, or ""."""
    command = _subparsers(parser).get(argv[0] if argv else "", parser)
    known = {s for a in command._actions for s in a.option_strings}
    options = sorted(s for s in known if s.startswith("--"))
    hints = []
    for tok in argv[1:]:
        name = tok.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            if close and close[0] not in hints:
                hints.append(close[0])
    return f" (did you mean {' and '.join(hints)}?)" if hints else ""


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, with unknown options named and a close option suggested."""
    try:
        args, extras = parser.parse_known_args(argv)
    except UserError as exc:
        if "arguments are required" in str(exc):  # often because an option was mistyped
            raise UserError(str(exc).replace(" (see '", _option_hints(parser, argv) + " (see '", 1)) from None
        raise
    if extras:
        command = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        raise UserError(f"unrecognized arguments: {' '.join(extras)}{_option_hints(parser, argv)} "
                        f"(see '{command.prog} --help')")
    return args


def _one_line(exc: BaseException) -> str:
    """An exception as one line: the file and the reason for an OSError."""
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc})" if str(exc) else "out of memory"
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# A user's mistake surfaces as one of these: bad values, files that cannot be read
# or written, numbers out of range, data too large for memory.
_USER_ERRORS = (UserError, ValueError, TypeError, OSError, OverflowError, FloatingPointError,
                MemoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``softmaxkit`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 2 user error (one line on stderr), 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("explain", "sample"):
        argv = argv[:1] + _protect_negative_numbers(argv[1:])
    debug = os.environ.get("SOFTMAXKIT_DEBUG", "") not in ("", "0")
    try:
        if argv and argv[0] == "bench":
            # everything after 'bench' belongs to the benchmark, --help included
            args: Any = argparse.Namespace(func=_cmd_bench, bench_args=argv[1:])
        else:
            parser = build_parser()
            args = _parse(parser, argv)
            if getattr(args, "func", None) is None:
                parser.print_help(sys.stderr)
                return 2
        return int(args.func(args))
    except SystemExit as exc:  # --help, --version, or the benchmark's own exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BrokenPipeError:  # e.g. `softmaxkit predict ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except _USER_ERRORS as exc:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
