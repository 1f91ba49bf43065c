"""The ``softmaxkit`` command line: explain, train, predict, bench.

Run ``softmaxkit --help`` or ``softmaxkit COMMAND --help``. ``main(argv)`` returns the
exit status: 0 on success, 2 on a user error (bad option or number, missing or
malformed file), which is reported as one line on stderr without a traceback. Set
``SOFTMAXKIT_DEBUG=1`` to get the traceback instead.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]

PROG = "softmaxkit"


class UserError(Exception):
    """A mistake in the command line or its files: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and a --help hint."""

    def error(self, message):  # noqa: D401 - argparse API
        raise UserError(f"{message} (see '{self.prog} --help')")


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

Class indices are 0-based. Negative numbers need no quoting.
"""

_TRAIN_EPILOG = """\
examples:
  softmaxkit train --out model.npz                          digits, L-BFGS
  softmaxkit train --data digits --solver adam --epochs 30 --out model.npz --report report/
  softmaxkit train --data iris.csv --label-column species --out iris.npz
  softmaxkit train --data train-images-idx3-ubyte.gz --solver sgd --epochs 5 --out mnist.npz

Data: 'digits' (bundled with scikit-learn), .npz with arrays X and y, .csv with a
header row (label column by name, default the last), or MNIST/Fashion-MNIST IDX
files (raw or .gz; the labels file is found beside the images file, or pass
--labels). Features are standardised; the mean and scale are stored in the model.
A stratified share (--test-size) is held out and reported.
"""

_PREDICT_EPILOG = """\
examples:
  softmaxkit predict --model model.npz --data digits
  softmaxkit predict --model iris.npz --data new-flowers.csv --output predictions.csv

Writes one CSV row per sample: the predicted class, then one probability column per
class (p_<class>). The data file normally holds exactly the model's feature
columns; a label column (by the training name, or --label-column) is used only to
report accuracy on stderr.
"""


def _add_data_args(p, *, default=None):
    p.add_argument("--data", default=default, metavar="digits|PATH",
                   help="'digits' or a .npz, .csv or IDX file"
                   + (f" (default: {default})" if default else ""))
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="CSV: name of the label column (default: the last column)")
    p.add_argument("--labels", metavar="PATH", default=None,
                   help="IDX: the labels file (default: found beside the images file)")


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
    from . import __version__

    parser.add_argument("--version", action="version", version=f"softmaxkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    e = sub.add_parser("explain", help="step-by-step softmax (or sigmoid) of some numbers",
                       description="Show every step of the stable softmax of VALUES next to the "
                       "naive formula exp(z)/sum(exp(z)).",
                       epilog=_EXPLAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("values", nargs="+", type=_float_arg, metavar="VALUE", help="logits z (numbers)")
    e.add_argument("--label", type=int, default=None, metavar="K",
                   help="true class index (0-based): adds the cross-entropy and the gradient p - y")
    e.add_argument("--temperature", type=_float_arg, default=1.0, metavar="T",
                   help="divide the logits by T > 0 first (default 1)")
    e.add_argument("--probabilities", action="store_true",
                   help="VALUES are probabilities (summing to 1): use log(p) as the logits")
    e.add_argument("--float32", action="store_true",
                   help="compute in float32 (exp overflows above about 88.7 instead of 709.8)")
    e.add_argument("--sigmoid", action="store_true", help="explain the elementwise sigmoid instead")
    e.add_argument("--sample", type=int, default=None, metavar="N",
                   help="also draw N classes from the softmax (as a policy samples actions) "
                   "and compare their frequencies with p")
    e.add_argument("--seed", type=int, default=0, help="random seed for --sample (default 0)")
    e.add_argument("--plot", metavar="FILE.png", default=None,
                   help="write a bar chart of the values beside their probabilities (PNG)")
    e.set_defaults(func=_cmd_explain)

    t = sub.add_parser("train", help="train a softmax-regression classifier",
                       description="Train SoftmaxRegression on a data set, hold out a test share, "
                       "save the model (.npz) and optionally a report folder.",
                       epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(t, default="digits")
    t.add_argument("--solver", choices=["lbfgs", "sgd", "adam"], default="lbfgs",
                   help="optimiser (default lbfgs)")
    t.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="max iterations (lbfgs) or epochs (sgd, adam); default 100")
    t.add_argument("--alpha", type=_float_arg, default=1.0,
                   help="L2 strength, scaled like 1/C of LogisticRegression (default 1)")
    t.add_argument("--batch-size", type=int, default=64, metavar="B", help="minibatch size (sgd, adam)")
    t.add_argument("--learning-rate", type=_float_arg, default=None, metavar="LR",
                   help="step size (sgd, adam); default: the solver's")
    t.add_argument("--label-smoothing", type=_float_arg, default=0.0, metavar="EPS")
    t.add_argument("--early-stopping", action="store_true",
                   help="sgd/adam: stop when the validation loss stops improving")
    t.add_argument("--test-size", type=_float_arg, default=0.25, metavar="FRACTION",
                   help="held-out share, stratified (default 0.25)")
    t.add_argument("--seed", type=int, default=0, help="random seed for the split and the solver")
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
    pr.add_argument("--model", required=True, metavar="MODEL.npz")
    _add_data_args(pr)
    pr.add_argument("--output", metavar="FILE.csv", default=None,
                    help="write the CSV here instead of stdout")
    pr.set_defaults(func=_cmd_predict)

    b = sub.add_parser("bench", help="benchmark the kernels and print the ratio table",
                       description="Run softmaxkit's benchmark (softmaxkit.bench); every argument "
                       "after 'bench' goes to it: 'softmaxkit bench --help' lists them.",
                       add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=_cmd_bench)
    return parser


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text.strip()!r}") from None


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


# ---------------------------------------------------------------------------- explain


def _cmd_explain(args) -> int:
    import numpy as np

    from ._explain import explain, explain_sigmoid

    values = np.array(args.values, dtype=np.float64)
    if args.sigmoid:
        if args.label is not None or args.probabilities or args.temperature != 1.0 or args.float32:
            raise UserError("--sigmoid takes no --label, --temperature, --probabilities or --float32")
        result = explain_sigmoid(values)
    else:
        if args.probabilities:
            if (values < 0).any() or (values > 1).any() or abs(values.sum() - 1) > 1e-6:
                raise UserError(
                    f"--probabilities needs values in [0, 1] summing to 1, got {values.tolist()} "
                    f"(sum {values.sum():.6g})"
                )
            with np.errstate(divide="ignore"):
                values = np.log(values)  # log 0 = -inf: a class with probability 0
        if args.label is not None and not 0 <= args.label < values.size:
            raise UserError(f"--label must be a class index in 0..{values.size - 1}, got {args.label}")
        result = explain(values, label=args.label, temperature=args.temperature,
                         dtype=np.float32 if args.float32 else np.float64)
    if args.plot:
        _check_writable(args.plot, "--plot")
    if args.sample is not None and (args.sample < 1 or args.sigmoid):
        raise UserError(f"--sample needs N >= 1 and softmax (not --sigmoid), got {args.sample}")
    print(result)
    if args.sample:
        from ._sampling import sample

        draws = sample(values, temperature=args.temperature, size=args.sample, rng=args.seed)
        counts = np.bincount(draws, minlength=values.size)
        freq = ", ".join(f"{c / args.sample:.4f}" for c in counts)
        print(f"\nsampled {args.sample} classes from softmax (seed {args.seed}): counts "
              f"{counts.tolist()}, frequencies [{freq}]")
    if args.plot:
        result.plot(args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


def _check_writable(path: str, option: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: folder {parent} does not exist")


# ---------------------------------------------------------------------------- train


def _load_data(args, *, require_labels=True):
    from . import datasets

    if args.data is None:
        raise UserError("--data is required")
    try:
        return datasets.load(args.data, label_column=args.label_column, labels=args.labels,
                             require_labels=require_labels)
    except FileNotFoundError as exc:
        raise UserError(f"--data: {exc}") from None


def _cmd_train(args) -> int:
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils._param_validation import InvalidParameterError
    from sklearn.utils.multiclass import type_of_target

    from ._regression import SoftmaxRegression

    if not 0.0 <= args.test_size < 1.0:
        raise UserError(f"--test-size must be in [0, 1), got {args.test_size}")
    _check_writable(args.out, "--out")
    model = SoftmaxRegression(
        alpha=args.alpha, solver=args.solver, max_iter=100 if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        learning_rate="auto" if args.learning_rate is None else args.learning_rate,
        label_smoothing=args.label_smoothing, early_stopping=args.early_stopping,
        standardize=not args.no_standardize, random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    try:  # before loading anything, in the options' own names
        model._validate_params()
    except InvalidParameterError as exc:
        msg = str(exc)
        for param, option in _TRAIN_OPTIONS.items():
            if f"'{param}' parameter" in msg:
                value = msg.rsplit("Got ", 1)[-1].removesuffix(" instead.")
                expected = msg.split(" must be ", 1)[-1].split(". Got ")[0]
                raise UserError(f"{option} must be {expected}, got {value}") from None
        raise UserError(msg) from None
    report = None
    if args.report:
        report = Path(args.report)
        if report.exists() and not report.is_dir():
            raise UserError(f"--report {report}: exists and is not a folder")
    data = _load_data(args)
    X, y = data.X, data.y
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise UserError(
            f"{data.name}: the labels must be classes, got {kind} values (e.g. {y[:3].tolist()})"
        )
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise UserError(f"{data.name}: needs at least two classes, found {classes.tolist()}")
    n_test = int(np.ceil(args.test_size * len(y))) if args.test_size > 0 else 0
    if n_test:
        stratify = y if counts.min() >= 2 and n_test >= classes.size else None
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=args.test_size,
                                                  random_state=args.seed, stratify=stratify)
    else:
        X_tr, y_tr, X_te, y_te = X, y, X[:0], y[:0]
    print(f"data: {data.name}: {X.shape[0]} samples, {X.shape[1]} features, {classes.size} classes; "
          f"train {len(y_tr)}, test {len(y_te)}" + (" (stratified)" if n_test and stratify is not None else ""))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    for w in caught:  # one line each, without the warnings module's source excerpt
        print(f"note: {w.message}", file=sys.stderr)
    unit = "iterations" if args.solver == "lbfgs" else "epochs"
    print(f"fit: {args.solver}, {model.n_iter_} {unit}, {fit_s:.2f} s")
    metrics = {
        "data": data.name, "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
        "n_classes": int(classes.size), "n_train": int(len(y_tr)), "n_test": int(len(y_te)),
        "solver": args.solver, "n_iter": int(model.n_iter_), "fit_seconds": round(fit_s, 4),
        "params": {k: v for k, v in model.get_params().items() if _jsonable(v)},
        "train_accuracy": float(model.score(X_tr, y_tr)),
        "final_loss": float(model.history_["loss"][-1]) if model.history_["loss"] else None,
    }
    line = f"train accuracy {metrics['train_accuracy']:.4f}"
    cm = None
    if len(y_te):
        from sklearn.metrics import confusion_matrix, log_loss

        proba = model.predict_proba(X_te)
        pred = model.classes_[np.argmax(proba, axis=1)]
        metrics["test_accuracy"] = float(np.mean(pred == y_te))
        metrics["test_log_loss"] = float(log_loss(y_te, proba, labels=model.classes_))
        cm = confusion_matrix(y_te, pred, labels=model.classes_)
        metrics["confusion_matrix"] = cm.tolist()
        metrics["classes"] = [_py(c) for c in model.classes_]
        line += f", test accuracy {metrics['test_accuracy']:.4f}, test log-loss {metrics['test_log_loss']:.4f}"
    print(line)
    model.save(args.out, metadata={
        "data": data.name, "feature_names": data.feature_names, "label_column": data.target_name,
        "test_accuracy": metrics.get("test_accuracy"),
    })
    print(f"model written to {args.out}")
    if report is not None:
        from ._plots import plot_confusion_matrix, plot_training_curves

        out = report
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--report {out}: cannot create the folder ({exc.strerror})") from None
        plot_training_curves(model.history_, out / "training_curves.png",
                             title=f"SoftmaxRegression ({args.solver}) on {Path(data.name).name}")
        written = ["training_curves.png"]
        if cm is not None:
            plot_confusion_matrix(cm, model.classes_, out / "confusion_matrix.png",
                                  title=f"test confusion matrix (accuracy {metrics['test_accuracy']:.4f})")
            written.append("confusion_matrix.png")
        metrics["history"] = {k: [float(v) for v in vals] for k, vals in model.history_.items()}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        written.append("metrics.json")
        print(f"report written to {out}/: {', '.join(written)}")
    return 0


_TRAIN_OPTIONS = {
    "alpha": "--alpha", "max_iter": "--epochs", "batch_size": "--batch-size",
    "learning_rate": "--learning-rate", "label_smoothing": "--label-smoothing",
}


def _jsonable(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _py(v):
    return v.item() if hasattr(v, "item") else v


# ---------------------------------------------------------------------------- predict


def _cmd_predict(args) -> int:
    import numpy as np

    from . import datasets
    from ._regression import SoftmaxRegression

    mpath = Path(args.model)
    if not mpath.exists():
        raise UserError(f"--model {mpath}: no such file")
    model = SoftmaxRegression.load(mpath)
    meta = getattr(model, "metadata_", {}) or {}
    n_features = model.n_features_in_
    src = args.data
    if src is None:
        raise UserError("--data is required")
    if src != "digits" and Path(src).exists() and Path(src).name.lower().endswith((".csv", ".csv.gz")):
        header = datasets.csv_header(src)
        names = meta.get("feature_names")
        label = args.label_column or meta.get("label_column")
        if names and all(n in header for n in names):
            data = datasets.load_csv(src, label if label in header else None,
                                     feature_columns=names, require_labels=False)
        elif len(header) == n_features:
            data = datasets.load_csv(src, None, feature_columns=header, require_labels=False)
        elif len(header) == n_features + 1:
            lab = label if label in header else header[-1]
            data = datasets.load_csv(src, lab, require_labels=True)
        else:
            raise UserError(
                f"{src}: has {len(header)} columns, the model expects {n_features} feature columns"
                + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else "")
            )
    else:
        data = _load_data(args, require_labels=False)
    if data.X.shape[1] != n_features:
        raise UserError(f"{data.name}: has {data.X.shape[1]} features, the model expects {n_features}")
    proba = model.predict_proba(data.X)
    pred = model.classes_[np.argmax(proba, axis=1)]
    if args.output:
        _check_writable(args.output, "--output")
        fh = open(args.output, "w", newline="")
    else:
        fh = sys.stdout
    try:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["prediction"] + [f"p_{c}" for c in model.classes_])
        for c, row in zip(pred, proba):
            w.writerow([c] + [f"{v:.6g}" for v in row])
    finally:
        if args.output:
            fh.close()
    if args.output:
        print(f"{len(pred)} predictions written to {args.output}", file=sys.stderr)
    if data.y is not None:
        y = np.asarray(data.y)
        if y.dtype.kind != model.classes_.dtype.kind and model.classes_.dtype.kind in "USO":
            y = y.astype(str)
        acc = float(np.mean(pred == y))
        print(f"accuracy {acc:.4f} on {len(y)} labelled rows", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------- bench


def _cmd_bench(args) -> int:
    try:
        from . import bench
    except ImportError as exc:
        raise UserError(f"the benchmark is not available in this installation ({exc})") from None
    return int(bench.main(list(args.bench_args)) or 0)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    """Run the ``softmaxkit`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 2 user error (one line on stderr), else the
        benchmark's status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "explain":
        argv = argv[:1] + _protect_negative_numbers(argv[1:])
    parser = build_parser()
    debug = os.environ.get("SOFTMAXKIT_DEBUG", "") not in ("", "0")
    try:
        if argv and argv[0] == "bench":
            # everything after 'bench' belongs to the benchmark, --help included
            args = argparse.Namespace(func=_cmd_bench, bench_args=argv[1:])
        else:
            args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except SystemExit as exc:  # --help, --version, or the benchmark's own exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except UserError as exc:
        if debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError, ValueError, TypeError) as exc:
        if debug:
            raise
        msg = str(exc).replace("\n", " ")
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `softmaxkit predict ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
