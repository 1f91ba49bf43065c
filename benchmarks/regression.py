"""SoftmaxRegression against scikit-learn's LogisticRegression (issues 8 and 14).

    python benchmarks/regression.py --quick            # reduced sizes, a minute or so
    python benchmarks/regression.py --threads 2        # the issue's sizes (minutes)
    python benchmarks/regression.py --cases digits,mnist --repeat 3

Each case fits the same objective (``alpha = 1/C``, the same ``tol``, BLAS threads
matched with threadpoolctl and softmaxkit's thread count set to ``--threads``) and
reports the fit time (best of ``--repeat``), iterations, the final objective of each
model evaluated by one function (relative gap to the best of the row), the test
log-loss and the accuracy. A last section times one minibatch step on a 64 x 10
digits batch against the bare cross-entropy kernel call (issue 8's per-step
overhead). Numbers depend on the machine and its load: report them with both.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

CASES = ("iris", "wine", "breast_cancer", "digits", "mnist", "manyclass", "sparse")


def _split(X, y, seed=0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def make_case(name: str, quick: bool):
    """(X_train, X_test, y_train, y_test, description), standardised where dense."""
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    if name in ("iris", "wine", "breast_cancer", "digits"):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        desc = f"{X.shape[0]}x{X.shape[1]}, {np.unique(y).size} classes"
    elif name in ("mnist", "manyclass"):
        n, d, k = (200_000, 784, 10) if name == "mnist" else (50_000, 256, 1000)
        if quick:
            n, k = (20_000, k) if name == "mnist" else (10_000, 100)
        # class centres a little apart, unit noise: overlapping classes, so the fit
        # is not trivially separable (test accuracy well below 1)
        centres = rng.normal(scale=0.08 if name == "mnist" else 0.25, size=(k, d))
        y = rng.integers(0, k, n)
        X = centres[y] + rng.normal(size=(n, d))
        desc = f"{n}x{d}, {k} classes, synthetic"
    elif name == "sparse":
        n, d, k, density = (100_000, 2**18, 20, 1e-3) if not quick else (20_000, 2**16, 20, 1e-3)
        y = rng.integers(0, k, n)
        # background "words": density * d per row at random columns (sp.random would
        # draw from all n*d cells at once, gigabytes at this size)
        per_row = int(density * d)
        rows = np.repeat(np.arange(n), per_row)
        cols = rng.integers(0, d, rows.size)
        # each class raises 200 "words" of its own, 5 occurrences per row
        words = rng.integers(0, d, size=(k, 200))
        rows2 = np.repeat(np.arange(n), 5)
        cols2 = words[y[rows2], rng.integers(0, 200, rows2.size)]
        vals = np.concatenate([1.0 + rng.exponential(size=rows.size), np.ones(rows2.size)])
        X = sp.csr_matrix((vals, (np.concatenate([rows, rows2]), np.concatenate([cols, cols2]))),
                          shape=(n, d))
        desc = f"{n}x{d} sparse ({X.nnz / (n * d):.2%}), {k} classes"
        return (*_split(X, y), desc)
    else:
        raise ValueError(name)
    X_tr, X_te, y_tr, y_te = _split(X, y)
    sc = StandardScaler().fit(X_tr)
    return sc.transform(X_tr), sc.transform(X_te), y_tr, y_te, desc


def objective(X, y, coef, intercept, alpha=1.0):
    """Our J at a model given as (coef, intercept) of either library (one function for both)."""
    from softmaxkit.linear_model._objective import SoftmaxObjective

    classes, yi = np.unique(y, return_inverse=True)
    k = classes.size
    if coef.shape[0] == 1 and k == 2:  # binomial: v -> rows (-v/2, v/2)
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    obj = SoftmaxObjective(k, X.shape[1], alpha=alpha, fit_intercept=True)
    theta = obj.pack(coef, intercept)
    sw = np.ones(X.shape[0])
    return obj.loss_gradient(theta, X, yi.astype(np.int64), sw, data_scale=1 / sw.sum(),
                             penalty_scale=1 / sw.sum())[0]


def _time_fit(make, X, y, repeat):
    best, model = np.inf, None
    for _ in range(repeat):
        m = make()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(X, y)
        best = min(best, time.perf_counter() - t0)
        model = m
    return best, model


def run_case(name, args):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from threadpoolctl import threadpool_limits

    import softmaxkit as smk

    X_tr, X_te, y_tr, y_te, desc = make_case(name, args.quick)
    k = np.unique(y_tr).size
    d = X_tr.shape[1]
    tol, max_iter = args.tol, args.max_iter
    models = [
        ("SoftmaxRegression", lambda: smk.SoftmaxRegression(tol=tol, max_iter=max_iter)),
        ("SoftmaxRegression f32", lambda: smk.SoftmaxRegression(tol=tol, max_iter=max_iter,
                                                                dtype=np.float32)),
        ("LogisticRegression lbfgs", lambda: LogisticRegression(tol=tol, max_iter=max_iter)),
    ]
    if d * k <= 2000 and not sp.issparse(X_tr):  # the Hessian is (d k)^2
        models.append(("LogisticRegression newton-cholesky",
                       lambda: LogisticRegression(solver="newton-cholesky", tol=tol,
                                                  max_iter=max_iter)))
    rows = []
    old = smk.get_num_threads()
    smk.set_num_threads(args.threads)
    small = X_tr.shape[0] * d * k < 10**7
    repeat = max(args.repeat, 5) if small else args.repeat  # small fits: best of 5, after a warm-up
    try:
        with threadpool_limits(limits=args.threads, user_api="blas"):
            for label, make in models:
                if small:
                    _time_fit(make, X_tr, y_tr, 1)
                t, m = _time_fit(make, X_tr, y_tr, repeat)
                it = int(np.max(m.n_iter_))
                J = objective(X_tr, y_tr, m.coef_, m.intercept_)
                P = m.predict_proba(X_te)
                rows.append(dict(case=name, desc=desc, model=label, time=t, iters=it, J=J,
                                 logloss=log_loss(y_te, P, labels=m.classes_),
                                 acc=accuracy_score(y_te, m.predict(X_te))))
    finally:
        smk.set_num_threads(old)
    Jbest = min(r["J"] for r in rows)
    ref = next(r["time"] for r in rows if r["model"] == "LogisticRegression lbfgs")
    for r in rows:
        r["gap"] = (r["J"] - Jbest) / abs(Jbest)
        r["speedup"] = ref / r["time"]
    return rows


def step_overhead(repeat: int = 2000):
    """Seconds per call: bare kernel, loss object, one full minibatch step (64 x 10 digits),
    with BLAS on one thread as in a minibatch fit."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _step_overhead(repeat)


def _step_overhead(repeat):
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from softmaxkit.linear_model import _solvers
    from softmaxkit.linear_model._objective import CrossEntropyLoss, SoftmaxObjective
    from softmaxkit._kernels import _losses as ext

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:64].copy()
    t = y[:64].astype(np.int64)
    k, d = 10, X.shape[1]
    obj = SoftmaxObjective(k, d, alpha=1.0, fit_intercept=True)
    theta = np.random.default_rng(0).normal(scale=0.01, size=obj.size)
    Z = obj.logits(theta, X)
    sw = np.ones(64)
    loss, roww, G = np.empty(64), np.empty(64), np.empty_like(Z)
    lossobj = CrossEntropyLoss(reduction="sum")

    def bench(f):
        for _ in range(50):
            f()
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeat):
                f()
            best = min(best, (time.perf_counter() - t0) / repeat)
        return best

    import softmaxkit as smk

    kernel = bench(lambda: ext.ce_hard(Z, t, None, 0, False, 0.0, loss, roww, sw, 0.0, G, 64, k, 1))
    public = bench(lambda: smk.cross_entropy_and_grad(Z, t, sample_weight=sw, reduction="sum"))
    lossc = bench(lambda: lossobj.loss_gradient(Z, t, sample_weight=sw, grad_out=G))
    g = np.empty(obj.size)
    Zb = np.empty((64, k))
    objc = bench(lambda: obj.loss_gradient(theta, X, t, sw, data_scale=1 / 64, penalty_scale=1 / 1347,
                                           truth=t, grad_out=g, logits_out=Zb))
    # a whole epoch of SGD on the 1347 x 64 training rows, per step (shuffle included)
    Xall = StandardScaler().fit_transform(load_digits().data)[:1347].copy()
    yall = load_digits().target[:1347].astype(np.int64)
    swall = np.ones(1347)
    rng = np.random.RandomState(0)
    steps = -(-1347 // 64)

    def epoch():
        _solvers.minibatch(obj, theta, Xall, yall, swall, yall, solver="sgd", lr=0.05, momentum=0.9,
                           batch_size=64, epochs=1, rng=rng, state=None, on_epoch=lambda *a: False)

    best = np.inf
    for _ in range(20):
        t0 = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - t0)
    step = best / steps
    return dict(kernel=kernel, public=public, loss_object=lossc, objective=objc, sgd_step=step)


def dask_scaling(args) -> str:
    """Fit time of the mnist case on a LocalCluster of 1 and 2 single-threaded worker
    processes (X persisted on the workers before timing)."""
    import dask.array as da
    from distributed import Client, LocalCluster

    import softmaxkit as smk

    X_tr, _, y_tr, _, desc = make_case("mnist", args.quick)
    lines = [f"dask LocalCluster, mnist {desc}: fit time by worker processes (1 thread each)"]
    warnings.filterwarnings("ignore", message="Sending large graph")
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as c:
            Xd = c.persist(da.from_array(X_tr, chunks=(-(-X_tr.shape[0] // 8), -1)))
            t, m = _time_fit(lambda: smk.SoftmaxRegression(tol=args.tol, max_iter=args.max_iter),
                             Xd, y_tr, args.repeat)
            lines.append(f"  {workers} worker(s): {t:.2f} s, {m.n_iter_} iterations")
    return "\n".join(lines)


def _fmt_table(rows):
    head = ("case", "model", "fit s", "x lbfgs", "iters", "J gap", "test logloss", "acc")
    out = [head]
    for r in rows:
        out.append((r["case"], r["model"], f"{r['time']:.3f}", f"{r['speedup']:.2f}",
                    str(r["iters"]), f"{r['gap']:.1e}", f"{r['logloss']:.4f}", f"{r['acc']:.4f}"))
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in out]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated subset of {', '.join(CASES)} (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes: mnist 20000 rows, manyclass 10000 rows x 100 classes, "
                        "sparse 20000 x 2^16")
    p.add_argument("--threads", type=int, default=2, help="BLAS and softmaxkit threads (default 2)")
    p.add_argument("--repeat", type=int, default=1, help="fits per model, best time kept (default 1)")
    p.add_argument("--tol", type=float, default=1e-4, help="tol of every model (default 1e-4)")
    p.add_argument("--max-iter", type=int, default=1000, help="max_iter of every model (default 1000)")
    p.add_argument("--no-step", action="store_true", help="skip the per-step overhead section")
    p.add_argument("--dask", action="store_true",
                   help="also time the mnist case on a dask LocalCluster with 1 and 2 worker "
                        "processes (needs softmaxkit[dask])")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {bad}; choose from {', '.join(CASES)}")
    import sklearn

    print(f"# {platform.node()} {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
          f"threads {args.threads}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
          + (", --quick" if args.quick else ""))
    rows = []
    for c in cases:
        r = run_case(c, args)
        print(f"# {c}: {r[0]['desc']}", file=sys.stderr)
        rows += r
    if rows:
        print(_fmt_table(rows))
    if not args.no_step:
        s = step_overhead()
        print()
        print("per-step overhead, 64 x 10 digits batch (us per call; ratio to the bare kernel)")
        names = {"kernel": "bare kernel (ce_hard)",
                 "public": "cross_entropy_and_grad (before: the old step's loss call)",
                 "loss_object": "CrossEntropyLoss.loss_gradient (now: the step's loss call)",
                 "objective": "SoftmaxObjective.loss_gradient (2 products + loss + penalty)",
                 "sgd_step": "one SGD step in an epoch (objective + update + shuffle share)"}
        for key, name in names.items():
            print(f"  {name:<62} {s[key] * 1e6:8.2f} us  {s[key] / s['kernel']:6.2f}x")
    if args.dask:
        print()
        print(dask_scaling(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
