#!/usr/bin/env python
"""Temperature scaling: fit time and NLL of smk.TemperatureScaling against scikit-learn.

    python benchmarks/calibration.py             # digits, over-fitted digits, synthetic
    python benchmarks/calibration.py --quick     # smaller synthetic sets, 3 repeats

Compared on the same logits, each the best of ``--repeat`` runs:

* ``smk``: ``TemperatureScaling().fit(logits, y)`` (safeguarded Newton in 1/T on the
  fused cross-entropy kernel);
* ``sklearn``: scikit-learn's own temperature calibrator, the one
  ``CalibratedClassifierCV(method="temperature")`` fits (Brent's method on log(1/T)
  in [-10, 10], ``xatol = 64 eps``), when the installed scikit-learn has it (1.8+);
* ``scipy``: ``minimize_scalar(method="bounded")`` on the same NLL with
  ``xatol=1e-10``, as a reference everyone has.

and, on the digits, the whole calibration on top of a fitted classifier:
``TemperatureScaling(estimator=clf).fit(X, y)`` against
``CalibratedClassifierCV(FrozenEstimator(clf), method="temperature").fit(X, y)``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import softmaxkit as smk


def best_time(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def nll(z, y, t):
    return float(smk.cross_entropy(z / t, y))


def sklearn_calibrator():
    try:
        from sklearn.calibration import _TemperatureScaling
    except ImportError:
        return None
    return _TemperatureScaling


def compare_logits(name, z, y, repeat):
    from scipy.optimize import minimize_scalar

    rows = []
    t_smk, ts = best_time(lambda: smk.TemperatureScaling().fit(z, y), repeat)
    rows.append(("smk", ts.temperature_, ts.nll_, t_smk, ts.n_iter_))
    cal = sklearn_calibrator()
    if cal is not None:
        t_sk, sk = best_time(lambda: cal().fit(z, y), repeat)
        t = 1.0 / float(sk.beta_)
        rows.append(("sklearn", t, nll(z, y, t), t_sk, None))
    t_sp, sp = best_time(lambda: minimize_scalar(lambda lt: nll(z, y, np.exp(lt)), bounds=(-10, 10),
                                                 method="bounded", options={"xatol": 1e-10}), repeat)
    rows.append(("scipy", float(np.exp(sp.x)), float(sp.fun), t_sp, int(sp.nfev)))
    print(f"\n{name}: {z.shape[0]} samples x {z.shape[1]} classes")
    print(f"  {'method':8} {'T':>12} {'NLL':>20} {'NLL - smk':>11} {'fit ms':>9} {'evals':>6}")
    for method, t, loss, secs, it in rows:
        print(f"  {method:8} {t:12.8f} {loss:20.16f} {loss - ts.nll_:11.2e} {secs * 1e3:9.2f} "
              f"{'' if it is None else it:>6}")


def digits_models():
    from sklearn.model_selection import train_test_split

    X, y = smk.datasets.load_digits()
    X_tr, X_cal, y_tr, y_cal = train_test_split(X, y, train_size=0.5, stratify=y, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regular = smk.SoftmaxRegression(alpha=1.0, standardize=True).fit(X_tr, y_tr)
        overfit = smk.SoftmaxRegression(alpha=1e-6, standardize=True, max_iter=500).fit(
            X_tr[:60], y_tr[:60])
    return X_cal, y_cal, {"digits, SoftmaxRegression(alpha=1)": regular,
                          "digits, over-fitted (60 images, alpha=1e-6)": overfit}


def compare_estimator(name, clf, X, y, repeat):
    try:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator
    except ImportError:
        return
    (opt,) = CalibratedClassifierCV._parameter_constraints["method"]
    if "temperature" not in opt.options:
        return
    from sklearn.metrics import log_loss

    t_smk, ours = best_time(lambda: smk.TemperatureScaling(estimator=clf).fit(X, y), repeat)
    t_sk, theirs = best_time(
        lambda: CalibratedClassifierCV(FrozenEstimator(clf), method="temperature").fit(X, y), repeat)
    print(f"  on top of the classifier (predictions included): smk {t_smk * 1e3:.2f} ms, NLL "
          f"{log_loss(y, ours.predict_proba(X)):.12f}; CalibratedClassifierCV {t_sk * 1e3:.2f} ms, "
          f"NLL {log_loss(y, theirs.predict_proba(X)):.12f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small synthetic sets")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    import sklearn

    print(f"softmaxkit {smk.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}; "
          f"best of {repeat}")
    if sklearn_calibrator() is None:
        print("(this scikit-learn has no temperature calibrator: compared with scipy only)")
    X_cal, y_cal, models = digits_models()
    for name, clf in models.items():
        compare_logits(name, clf.decision_function(X_cal), y_cal, repeat)
        compare_estimator(name, clf, X_cal, y_cal, repeat)
    rng = np.random.default_rng(0)
    sizes = [(10_000, 10), (2_000, 100)] if args.quick else [(100_000, 10), (20_000, 100), (5_000, 1000)]
    for n, k in sizes:
        z = rng.normal(size=(n, k)) * 3
        y = (np.cumsum(smk.softmax(z / 2.0), axis=1) < rng.random((n, 1))).sum(axis=1)
        compare_logits(f"synthetic, true T = 2", z, np.minimum(y, k - 1), repeat)


if __name__ == "__main__":
    main()
