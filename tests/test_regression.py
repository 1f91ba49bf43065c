"""SoftmaxRegression: quality on digits, the objective and its gradient, the solvers,
label types, weights, soft labels, persistence and corrupt model files."""
import json
import warnings
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import softmaxkit as smk
from softmaxkit import SoftmaxRegression
from softmaxkit.linear_model._objective import SoftmaxObjective


def _objective(est, theta, X, target, sw, S, k, d):
    """(J, dJ/dtheta) of the objective the estimator fits, at its parameters."""
    obj = SoftmaxObjective(k, d, alpha=est.alpha, fit_intercept=est.fit_intercept,
                           label_smoothing=est.label_smoothing)
    J, g, _, _ = obj.loss_gradient(theta, X, target, sw, data_scale=1 / S, penalty_scale=1 / S)
    return J, g


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=600, n_features=8, n_informative=6, n_redundant=0,
                               n_classes=4, n_clusters_per_class=1, class_sep=2.0, random_state=3)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


# ---------------------------------------------------------------------------- quality


def test_digits_accuracy_matches_logistic_regression():
    """The issue's bar: digits, standardised, stratified 75/25 split, fixed seed."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = SoftmaxRegression().fit(X_tr, y_tr)
        ref = LogisticRegression().fit(X_tr, y_tr)
    acc, ref_acc = ours.score(X_te, y_te), ref.score(X_te, y_te)
    assert acc >= 0.96
    assert abs(acc - ref_acc) <= 0.01
    # same objective (alpha = 1/C), so the same model up to the stopping tolerance
    assert_allclose(ours.predict_proba(X_te), ref.predict_proba(X_te), atol=1e-3)


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_alpha_is_inverse_C_of_logistic_regression(iris, alpha):
    X, y = iris
    ours = SoftmaxRegression(alpha=alpha, tol=1e-10, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=1 / alpha, tol=1e-10, max_iter=2000).fit(X, y)
    assert_allclose(ours.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
    assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_alpha_is_inverse_C_for_two_classes_too(alpha):
    """Issue 14: binary data matched C = 2/alpha. scikit-learn fits one vector v with
    1/(2C)||v||^2; our two rows must satisfy coef_[1] - coef_[0] = v at C = 1/alpha."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = SoftmaxRegression(alpha=alpha, tol=1e-10, max_iter=5000).fit(X, y)
    ref = LogisticRegression(C=1 / alpha, tol=1e-10, max_iter=5000).fit(X, y)
    # both stop at tol on differently scaled objectives: agreement to ~1e-5
    assert_allclose(ours.coef_[1] - ours.coef_[0], ref.coef_[0], rtol=1e-4, atol=2e-5)
    assert_allclose(ours.intercept_[1] - ours.intercept_[0], ref.intercept_[0], rtol=1e-4, atol=2e-5)
    assert_allclose(ours.coef_[0], -ours.coef_[1], rtol=1e-6, atol=1e-8)  # the symmetric optimum
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-5)
    assert_allclose(ours.decision_function(X), ref.decision_function(X), rtol=1e-4, atol=1e-4)
    # and not C = 2/alpha, which is what the old penalty matched
    twice = LogisticRegression(C=2 / alpha, tol=1e-10, max_iter=5000).fit(X, y)
    assert np.abs(ours.coef_[1] - ours.coef_[0] - twice.coef_[0]).max() > 1e-3


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_minibatch_solvers_reach_lbfgs_quality(blobs, solver):
    X_tr, X_te, y_tr, y_te = blobs
    full = SoftmaxRegression().fit(X_tr, y_tr)
    mb = SoftmaxRegression(solver=solver, max_iter=200, random_state=0).fit(X_tr, y_tr)
    assert mb.score(X_te, y_te) >= full.score(X_te, y_te) - 0.03
    # and it got close to the optimum of the same objective
    assert mb.history_["loss"][-1] <= 1.2 * full.history_["loss"][-1] + 0.02
    assert mb.n_iter_ < 200  # stopped by tol / n_iter_no_change


# ---------------------------------------------------------------------------- objective


def _numpy_objective(theta, X, y_onehot, sw, alpha, k, d, eps=0.0):
    W, b = theta[: k * d].reshape(k, d), theta[k * d:]
    Z = X @ W.T + b
    lse = np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1)
    target = (1 - eps) * y_onehot + eps / k
    ce = (target * (lse[:, None] - Z)).sum(1)
    return ((sw * ce).sum() + 0.5 * alpha * (W * W).sum()) / sw.sum()


@pytest.mark.parametrize("soft", [False, True], ids=["labels", "probabilities"])
def test_objective_and_gradient(rng, soft):
    """J against a NumPy reference, dJ/dtheta against a 4th-order central difference."""
    n, d, k = 30, 4, 3
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    Y = np.eye(k)[y] if not soft else rng.dirichlet(np.ones(k), size=n)
    sw = rng.uniform(0.2, 2.0, n)
    est = SoftmaxRegression(alpha=0.7, label_smoothing=0.1)
    target = y if not soft else Y
    theta = rng.normal(size=k * d + k)
    S = sw.sum()
    J, g = _objective(est, theta, X, target, sw, S, k, d)
    assert_allclose(J, _numpy_objective(theta, X, Y, sw, 0.7, k, d, eps=0.1), rtol=1e-12)
    h = 1e-4
    num = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        f = [_objective(est, theta + c * e, X, target, sw, S, k, d)[0] for c in (2, 1, -1, -2)]
        num[i] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
    assert_allclose(g, num, rtol=1e-7, atol=1e-9)


def test_zero_gradient_at_the_optimum(iris):
    X, y = iris
    est = SoftmaxRegression(tol=1e-9, max_iter=1000).fit(X, y)
    theta = np.concatenate([est.coef_.ravel(), est.intercept_])
    sw = np.ones(len(y))
    _, g = _objective(est, theta, X, y, sw, sw.sum(), 3, 4)
    assert np.abs(g).max() < 1e-8
    # the intercept is not penalised: the mean predicted probability is the class share
    assert_allclose(est.predict_proba(X).mean(0), np.bincount(y) / len(y), atol=1e-8)


# ---------------------------------------------------------------------------- labels, weights


def test_string_labels_and_probability_methods(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    est = SoftmaxRegression().fit(X, names)
    assert est.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    pred = est.predict(X)
    assert set(pred) <= set(est.classes_) and np.mean(pred == names) > 0.95
    P = est.predict_proba(X)
    assert_allclose(P.sum(1), 1.0, rtol=1e-12)
    assert_allclose(est.predict_log_proba(X), np.log(P), rtol=1e-10)
    assert_allclose(P, smk.softmax(est.decision_function(X)), rtol=1e-12)
    assert_array_equal(pred, est.classes_[np.argmax(P, 1)])


def test_binary_decision_is_logit_difference_and_sigmoid_gives_proba(iris):
    """SPEC concept 11: softmax over two classes is the sigmoid of the logit difference."""
    X, y = iris
    mask = y > 0
    est = SoftmaxRegression().fit(X[mask], np.where(y[mask] == 2, "yes", "no"))
    d = est.decision_function(X[mask])
    assert d.shape == (mask.sum(),)
    assert est.coef_.shape == (2, 4)
    assert_allclose(smk.sigmoid(d), est.predict_proba(X[mask])[:, 1], rtol=1e-12)
    assert_array_equal(est.predict(X[mask]), np.where(d > 0, "yes", "no"))


def test_prediction_example_from_the_articles():
    """SPEC concept 12: o = (0.1, 10, 0.1) predicts the 2nd class."""
    est = SoftmaxRegression().fit([[0.0], [1.0], [2.0]], ["a", "b", "c"])
    est.coef_ = np.zeros((3, 1))
    est.intercept_ = np.array([0.1, 10, 0.1])
    assert est.predict([[5.0]]).tolist() == ["b"]
    assert_allclose(est.predict_proba([[5.0]])[0], [5.0169647564e-05, 0.9998996607, 5.0169647564e-05],
                    atol=1e-10)


def test_one_hot_probabilities_equal_labels_and_smoothing_equals_soft_targets(iris):
    X, y = iris
    a = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X, y)
    b = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X, np.eye(3)[y])
    assert_array_equal(b.classes_, [0, 1, 2])
    assert b.score(X, np.eye(3)[y]) == a.score(X, y) > 0.95
    assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-8)
    eps = 0.2
    c = SoftmaxRegression(label_smoothing=eps, tol=1e-10, max_iter=1000).fit(X, y)
    d = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X, (1 - eps) * np.eye(3)[y] + eps / 3)
    assert_allclose(c.coef_, d.coef_, rtol=1e-6, atol=1e-8)
    # smoothing keeps the probabilities away from 0 and 1
    assert c.predict_proba(X).max() < a.predict_proba(X).max()


def test_class_weight_equals_sample_weight(iris):
    X, y = iris
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    a = SoftmaxRegression(class_weight=cw, tol=1e-10, max_iter=1000).fit(X, y)
    b = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=np.array([1.0, 3.0, 0.5])[y])
    assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-8)
    yb = y[20:]  # unbalanced: 30, 50, 50
    bal = SoftmaxRegression(class_weight="balanced", tol=1e-10, max_iter=1000).fit(X[20:], yb)
    w = len(yb) / (3 * np.bincount(yb))
    ref = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X[20:], yb, sample_weight=w[yb])
    assert_allclose(bal.coef_, ref.coef_, rtol=1e-6, atol=1e-8)


def test_float32_input_is_fitted_in_float64(iris):
    X, y = iris
    a = SoftmaxRegression().fit(X.astype(np.float32), y)
    assert a.coef_.dtype == np.float64
    assert a.predict_proba(X.astype(np.float32)).dtype == np.float64


def test_standardize_equals_scaler_pipeline(rng):
    X = rng.normal(loc=[5.0, -300.0, 0.0], scale=[2.0, 50.0, 1e-3], size=(80, 3))
    y = (X[:, 0] - 5 + (X[:, 1] + 300) / 25 > 0).astype(int)
    a = SoftmaxRegression(standardize=True, tol=1e-10, max_iter=1000).fit(X, y)
    Xs = StandardScaler().fit_transform(X)
    b = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(Xs, y)
    assert_allclose(a.mean_, X.mean(0)) and assert_allclose(a.scale_, X.std(0))
    assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-8)
    assert_allclose(a.predict_proba(X), b.predict_proba(Xs), rtol=1e-8)


# ---------------------------------------------------------------------------- solvers


def test_partial_fit_only_for_stochastic_solvers(blobs):
    X_tr, X_te, y_tr, y_te = blobs
    assert not hasattr(SoftmaxRegression(), "partial_fit")
    est = SoftmaxRegression(solver="adam", random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X_tr[:50], y_tr[:50])
    losses = []
    for epoch in range(8):
        for start in range(0, len(y_tr), 150):
            est.partial_fit(X_tr[start:start + 150], y_tr[start:start + 150], classes=[0, 1, 2, 3])
        losses.append(est.history_["loss"][-1])
    assert losses[-1] < losses[0]
    assert est.score(X_te, y_te) > 0.85
    with pytest.raises(ValueError, match="differ from those of the earlier fit|not in classes"):
        est.partial_fit(X_tr[:5], np.array([0, 1, 2, 3, 9]))


def test_early_stopping_keeps_a_validation_history(blobs):
    X_tr, X_te, y_tr, y_te = blobs
    est = SoftmaxRegression(solver="sgd", early_stopping=True, validation_fraction=0.2,
                            max_iter=300, random_state=0).fit(X_tr, y_tr)
    h = est.history_
    assert len(h["val_loss"]) == len(h["loss"]) == len(h["val_accuracy"]) == est.n_iter_
    assert est.n_iter_ < 300
    assert est.score(X_te, y_te) > 0.85


def test_warm_start_continues(blobs):
    X_tr, _, y_tr, _ = blobs
    est = SoftmaxRegression(max_iter=3, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_tr, y_tr)
        first = est.history_["loss"][-1]
        est.fit(X_tr, y_tr)
    assert est.history_["loss"][0] <= first + 1e-12


def test_convergence_warning_and_verbose_progress(blobs, capsys):
    X_tr, _, y_tr, _ = blobs
    with pytest.warns(ConvergenceWarning, match="lbfgs did not converge in max_iter=2"):
        SoftmaxRegression(max_iter=2, verbose=1).fit(X_tr, y_tr)
    err = capsys.readouterr().err
    assert "iter 2/2 [" in err and "loss " in err and "acc " in err
    SoftmaxRegression(solver="sgd", verbose=1, early_stopping=True, random_state=0).fit(X_tr, y_tr)
    err = capsys.readouterr().err
    assert "epoch" in err and "val_loss" in err and "val_acc" in err


def test_divergence_is_reported(blobs):
    X_tr, _, y_tr, _ = blobs
    with pytest.raises(FloatingPointError, match="diverged"):
        with np.errstate(all="ignore"):
            SoftmaxRegression(solver="sgd", learning_rate=1e6, alpha=1e3, random_state=0).fit(
                X_tr * 1e3, y_tr)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(alpha=-1.0), "'alpha' parameter"),
        (dict(solver="newton"), "'solver' parameter"),
        (dict(label_smoothing=1.0), "'label_smoothing' parameter"),
        (dict(class_weight="even"), "'class_weight' parameter"),
        (dict(batch_size=0), "'batch_size' parameter"),
    ],
)
def test_bad_parameters(iris, params, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression(**params).fit(X, y)


def test_bad_targets(iris):
    X, y = iris
    with pytest.raises(ValueError, match="Unknown label type"):
        SoftmaxRegression().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegression().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="row 0 sums to 2"):
        SoftmaxRegression().fit(X, np.ones((len(y), 2)))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        SoftmaxRegression().fit(X, np.tile([1.5, -0.5], (len(y), 1)))


# ---------------------------------------------------------------------------- persistence


@pytest.fixture(scope="module")
def fitted(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    est = SoftmaxRegression(alpha=0.5, standardize=True, class_weight={"setosa": 2.0},
                            random_state=7).fit(X * 3 + 1, names)
    return est, X * 3 + 1


def test_save_load_round_trip(tmp_path, fitted):
    est, X = fitted
    path = tmp_path / "model"  # no suffix: written exactly there
    est.save(path, metadata={"data": "iris", "features": ["a", "b", "c", "d"]})
    assert path.exists() and not (tmp_path / "model.npz").exists()
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert str(z["format"]) == "softmaxkit.SoftmaxRegression"
        assert z["classes"].dtype.kind == "U"
    back = SoftmaxRegression.load(path)
    assert back.get_params() == est.get_params()
    assert back.classes_.tolist() == est.classes_.tolist()
    assert_array_equal(back.predict(X), est.predict(X))
    assert_allclose(back.predict_proba(X), est.predict_proba(X), rtol=0, atol=0)
    assert_allclose(back.mean_, est.mean_) and assert_allclose(back.scale_, est.scale_)
    assert back.metadata_ == {"data": "iris", "features": ["a", "b", "c", "d"]}
    assert back.n_iter_ == est.n_iter_ and back.history_["loss"] == est.history_["loss"]


def test_save_unfitted_and_load_missing(tmp_path):
    with pytest.raises(NotFittedError):
        SoftmaxRegression().save(tmp_path / "m.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz: no such file"):
        SoftmaxRegression.load(tmp_path / "missing.npz")


def _rewrite(src, dst, **changes):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)


def test_corrupt_and_foreign_files(tmp_path, fitted):
    est, _ = fitted
    good = tmp_path / "good.npz"
    est.save(good)
    raw = good.read_bytes()
    cases = {}
    cases["truncated.npz"] = raw[: len(raw) // 2], r"not a readable softmaxkit model file"
    flipped = bytearray(raw)
    for i in range(200, len(raw) - 200, 97):
        flipped[i] ^= 0xFF
    cases["flipped.npz"] = bytes(flipped), r"not a readable softmaxkit model file|corrupt model file"
    cases["text.npz"] = b"hello, not a model", r"not a readable softmaxkit model file"
    cases["empty.npz"] = b"", r"not a readable softmaxkit model file"
    for name, (data, match) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match=name.replace(".", r"\.") + ": (" + match + ")"):
            SoftmaxRegression.load(p)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, X=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"foreign\.npz: not a softmaxkit model file"):
        SoftmaxRegression.load(foreign)
    checks = {
        "future.npz": (dict(format_version=np.array(99)), r"format version 99 is newer"),
        "nocoef.npz": (dict(coef=None), r"corrupt model file: missing 'coef'"),
        "shape.npz": (dict(intercept=np.zeros(5)), r"inconsistent shapes"),
        "nan.npz": (dict(coef=np.full((3, 4), np.nan)), r"non-finite coefficients"),
        "json.npz": (dict(params_json=np.array("{not json")), r"bad JSON"),
        "scale.npz": (dict(scale=np.zeros(4)), r"bad standardisation arrays"),
        "pickled.npz": (dict(classes=np.array([object(), 1, 2], dtype=object)), r"pickle"),
    }
    for name, (changes, match) in checks.items():
        p = tmp_path / name
        _rewrite(good, p, **changes)
        with pytest.raises(ValueError, match=name.replace(".", r"\.") + ": .*" + match):
            SoftmaxRegression.load(p)
    # the intact file still loads
    assert SoftmaxRegression.load(good).classes_.size == 3
    assert zipfile.is_zipfile(good)


def test_save_refuses_unpicklable_classes_and_bad_metadata(tmp_path, iris):
    X, y = iris
    est = SoftmaxRegression().fit(X, np.array([1, "a", 2.5], dtype=object)[y].astype(str))
    est.classes_ = np.array([1, "a", 2.5], dtype=object)
    with pytest.raises(ValueError, match="without pickle"):
        est.save(tmp_path / "m.npz")
    est = SoftmaxRegression().fit(X, y)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        est.save(tmp_path / "m.npz", metadata={"f": object()})
    est.save(tmp_path / "m.npz")
    meta = json.loads(str(np.load(tmp_path / "m.npz")["params_json"]))
    assert meta["alpha"] == 1.0 and meta["solver"] == "lbfgs"


def test_blas_limited_to_one_thread_only_for_small_products():
    from threadpoolctl import threadpool_info

    from softmaxkit.linear_model._threads import blas_threads_for as _blas_threads_for

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with _blas_threads_for(1347, 64, 10):
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
    with _blas_threads_for(60000, 784, 10):
        assert blas_threads() == before


def test_mypy_strict_on_estimator_script():
    """The estimator's public API is typed: mypy --strict on a user's script passes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mypy")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
         "--cache-dir", os.devnull, str(root / "tests" / "typing" / "user_regression.py")],
        capture_output=True, text=True, env=dict(os.environ, MYPYPATH=str(root / "src")), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
