"""``softmaxkit calibrate``: fit a temperature on held-out data and store it in the model.

Register with ``add_parser(subparsers)``; the command is ``run(args) -> int``
(0 on success, 2 on a user error, reported as one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .._io import atomic_path, refuse_overwrite

__all__ = ["add_parser", "run"]

_EPILOG = """\
examples:
  softmaxkit calibrate --model model.npz --data val.csv --out model-cal.npz
  softmaxkit calibrate --model model.npz --data digits --method vector --out model-vec.npz

Fits one temperature T (or, with --method vector, a scale and bias per class) on
the labelled data by minimising the negative log-likelihood of softmax(z / T),
where z are the model's logits. The output model file is the input model with the
calibration stored in its metadata ("calibration": method, temperature, scale,
bias, NLL and ECE before and after). Use held-out data, not the training data.
The input model file is never overwritten.
"""


class _Fail(Exception):
    """A user error: one line on stderr, exit status 2."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``calibrate`` command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "calibrate", help="fit a temperature (temperature scaling) on held-out data",
        description="Temperature scaling: fit T > 0 minimising the NLL of softmax(z / T) on "
        "labelled held-out data, and write the model with T stored in it.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="PATH", help="a model written by 'softmaxkit train'")
    p.add_argument("--data", required=True, metavar="digits|PATH",
                   help="labelled held-out data: 'digits', .npz, .csv or IDX")
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="CSV: the label column (default: the model's, else the last column)")
    p.add_argument("--labels", metavar="PATH", default=None, help="IDX: the labels file")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the calibrated model")
    p.add_argument("--method", choices=("temperature", "vector"), default="temperature",
                   help="one temperature (default), or a scale and bias per class")
    p.add_argument("--bins", type=int, default=15, metavar="N", help="bins of the ECE (default 15)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``softmaxkit calibrate`` with parsed ``args``; returns the exit status."""
    try:
        return _run(args)
    except _Fail as exc:
        print(f"softmaxkit: error: {exc}", file=sys.stderr)
        return 2


def _load_model(path: Path):
    from softmaxkit import SoftmaxRegression

    if not path.exists():
        raise _Fail(f"--model {path}: no such file")
    try:
        return SoftmaxRegression.load(path)
    except (ValueError, OSError) as exc:
        raise _Fail(f"--model {exc}") from None


def _load_data(args, model):
    from softmaxkit import datasets

    meta = getattr(model, "metadata_", {}) or {}
    src = args.data
    label = args.label_column
    try:
        if src != "digits" and str(src).lower().endswith((".csv", ".csv.gz")) and Path(src).exists():
            header = datasets.csv_header(src)
            names = meta.get("feature_names")
            label = label or (meta.get("label_column") if meta.get("label_column") in header else None)
            if names and all(n in header for n in names) and label is not None:
                return datasets.load_csv(src, label, feature_columns=names)
            return datasets.load_csv(src, label)
        return datasets.load(src, label_column=label, labels=args.labels)
    except FileNotFoundError as exc:
        raise _Fail(f"--data: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise _Fail(f"--data: {exc}") from None


def _run(args) -> int:
    import numpy as np

    from softmaxkit import cross_entropy, expected_calibration_error
    from softmaxkit._calibration import TemperatureScaling

    if args.bins < 1:
        raise _Fail(f"--bins must be >= 1, got {args.bins}")
    model_path, out = Path(args.model), Path(args.out)
    try:
        refuse_overwrite({"--out": out}, {"--model": model_path, "--data": args.data,
                                          "--labels": args.labels})
    except ValueError as exc:
        raise _Fail(str(exc)) from None
    if not out.resolve().parent.is_dir():
        raise _Fail(f"--out {out}: folder {out.resolve().parent} does not exist")
    model = _load_model(model_path)
    data = _load_data(args, model)
    if data.y is None:
        raise _Fail(f"{data.name}: has no labels; calibration needs labelled held-out data")
    if data.X.shape[1] != model.n_features_in_:
        raise _Fail(f"{data.name}: has {data.X.shape[1]} features, the model expects "
                    f"{model.n_features_in_}")
    classes = np.asarray(model.classes_)
    y = np.asarray(data.y)
    if classes.dtype.kind in "USO" and y.dtype.kind not in "USO":
        y = y.astype(str)
    known = np.isin(y, classes)
    if not known.all():
        raise _Fail(f"{data.name}: label {y[~known][0]!r} is not one of the model's classes "
                    f"{classes.tolist()}")
    idx = np.searchsorted(classes, y)
    # log-probabilities are the logits up to a per-row constant: the same softmax for every T
    z = model.predict_log_proba(data.X)
    t0 = time.perf_counter()
    try:
        ts = TemperatureScaling(method=args.method).fit(z, idx)
    except ValueError as exc:
        raise _Fail(f"{data.name}: {exc}") from None
    fit_s = time.perf_counter() - t0
    z_cal = ts.transform(z)
    nll_before, nll_after = float(cross_entropy(z, idx)), float(cross_entropy(z_cal, idx))
    ece_before = expected_calibration_error(z, idx, n_bins=args.bins, from_logits=True)
    ece_after = expected_calibration_error(z_cal, idx, n_bins=args.bins, from_logits=True)
    cal = {
        "method": args.method, "data": data.name, "n_samples": int(len(idx)),
        "scale": ts.coef_.tolist(), "bias": ts.intercept_.tolist(),
        "nll_before": nll_before, "nll_after": nll_after,
        "ece_before": ece_before, "ece_after": ece_after, "n_bins": args.bins,
        "fit_seconds": round(fit_s, 6), "n_iter": int(ts.n_iter_),
    }
    if args.method == "temperature":
        cal["temperature"] = float(ts.temperature_)
        print(f"temperature T = {ts.temperature_:.6g} ({ts.n_iter_} Newton steps, {fit_s * 1e3:.1f} ms) "
              f"on {len(idx)} samples of {data.name}")
    else:
        print(f"vector scaling: {classes.size} scales and biases ({ts.n_iter_} Newton steps, "
              f"{fit_s * 1e3:.1f} ms) on {len(idx)} samples of {data.name}")
    print(f"NLL {nll_before:.4f} -> {nll_after:.4f}; ECE ({args.bins} bins) {ece_before:.4f} -> {ece_after:.4f}")
    meta = dict(getattr(model, "metadata_", {}) or {})
    meta["calibration"] = cal
    # Written under a temporary name in the same folder, then renamed: never a half file.
    with atomic_path(out) as tmp:
        model.save(tmp, metadata=meta)
    print(f"calibrated model written to {out} (metadata 'calibration': {json.dumps({k: cal[k] for k in ('method',) + (('temperature',) if 'temperature' in cal else ())})})")
    return 0
