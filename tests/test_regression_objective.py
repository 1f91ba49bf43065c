"""The shared objective of softmaxkit.linear_model: the one-pass blocked evaluation
equals the plain two-product one, in float64 and float32, on every path."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from softmaxkit.linear_model import _objective
from softmaxkit.linear_model._objective import SoftmaxObjective, penalty_strength


def _problem(rng, n=1000, d=37, k=5, soft=False, dtype=np.float64):
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, n).astype(np.int64)
    target = rng.dirichlet(np.ones(k), size=n).astype(dtype) if soft else y
    truth = target.argmax(1) if soft else y
    sw = rng.uniform(0.1, 2.0, n)
    return X, target, sw, truth


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("threads", [1, 3])
def test_blocked_pass_equals_two_products(monkeypatch, rng, soft, fit_intercept, threads):
    X, target, sw, truth = _problem(rng, soft=soft)
    obj = SoftmaxObjective(5, X.shape[1], alpha=0.3, fit_intercept=fit_intercept,
                           label_smoothing=0.05, n_threads=threads)
    theta = rng.normal(size=obj.size)
    plain = obj.loss_gradient(theta, X, target, sw, data_scale=0.01, penalty_scale=0.02, truth=truth)
    monkeypatch.setattr(_objective, "_BLOCKED_FROM", 0)
    monkeypatch.setattr(_objective, "_BLOCK_BYTES", 64 * 8 * X.shape[1] // 3)  # uneven blocks
    J, g, loss, correct = obj.loss_gradient(theta, X, target, sw, data_scale=0.01,
                                            penalty_scale=0.02, truth=truth)
    obj.close()
    assert_allclose(J, plain[0], rtol=1e-13)
    assert_allclose(g, plain[1], rtol=1e-11, atol=1e-13)
    assert_allclose(loss, plain[2], rtol=1e-13)
    assert correct == plain[3] and 0 < correct < X.shape[0]


def test_float32_objective_is_accurate_to_float32(monkeypatch, rng):
    """dtype=float32: X, logits and the kernel in float32, sums over blocks in float64."""
    X, target, sw, truth = _problem(rng, n=4000)
    obj = SoftmaxObjective(5, X.shape[1], alpha=1.0, fit_intercept=True)
    theta = rng.normal(scale=0.3, size=obj.size)
    ref = obj.loss_gradient(theta, X, target, sw, data_scale=1e-3, penalty_scale=1e-3)
    for blocked in (False, True):
        if blocked:
            monkeypatch.setattr(_objective, "_BLOCKED_FROM", 0)
        J, g, _, _ = obj.loss_gradient(theta, X.astype(np.float32), target, sw, data_scale=1e-3,
                                       penalty_scale=1e-3)
        assert g.dtype == np.float64
        assert_allclose(J, ref[0], rtol=1e-6)
        assert_allclose(g, ref[1], rtol=1e-4, atol=1e-6 * np.abs(ref[1]).max())


def test_penalty_strength():
    assert penalty_strength(0.5, 2) == 1.0
    assert penalty_strength(0.5, 3) == 0.5


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_estimator_dtype_float32(solver):
    """dtype=np.float32 fits the same model to float32 accuracy; attributes stay float64."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from softmaxkit import SoftmaxRegression

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    kw = dict(solver=solver, random_state=0, max_iter=300 if solver == "lbfgs" else 3, tol=1e-6)
    with pytest.warns(Warning) if solver == "sgd" else _nullcontext():
        a = SoftmaxRegression(**kw).fit(X, y)
    with pytest.warns(Warning) if solver == "sgd" else _nullcontext():
        b = SoftmaxRegression(dtype=np.float32, **kw).fit(X, y)
    assert b.coef_.dtype == np.float64 and b.predict_proba(X).dtype == np.float64
    assert_allclose(b.coef_, a.coef_, rtol=0, atol=2e-3 * np.abs(a.coef_).max())
    assert_allclose(b.history_["loss"][-1], a.history_["loss"][-1], rtol=1e-4)
    assert (b.predict(X) == a.predict(X)).mean() > 0.99


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [2, 3])
def test_sparse_sharded_pass_equals_two_products(monkeypatch, rng, soft, dtype, threads):
    """Large CSR X: row shards of equal non-zero counts on threads, each shard's two
    sparse products on its slice of indptr, equal the one-thread two-product pass."""
    import scipy.sparse as sp

    X, target, sw, truth = _problem(rng, n=700, d=60, soft=soft, dtype=dtype)
    X[rng.random(X.shape) < 0.9] = 0
    X[:50] *= (rng.random((50, X.shape[1])) < 0.5)  # rows of different lengths
    Xs = sp.csr_matrix(X)
    one = SoftmaxObjective(5, X.shape[1], alpha=0.3, fit_intercept=True, n_threads=1)
    many = SoftmaxObjective(5, X.shape[1], alpha=0.3, fit_intercept=True, n_threads=threads)
    theta = rng.normal(size=one.size)
    monkeypatch.setattr(_objective, "_BLOCKED_FROM", 0)
    plain = one.loss_gradient(theta, Xs, target, sw, data_scale=0.01, penalty_scale=0.02, truth=truth)
    calls = []
    real = many._sparse_sharded
    monkeypatch.setattr(many, "_sparse_sharded", lambda *a: calls.append(1) or real(*a))
    J, g, loss, correct = many.loss_gradient(theta, Xs, target, sw, data_scale=0.01,
                                             penalty_scale=0.02, truth=truth)
    many.close()
    assert calls, "the sharded path was not taken"
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(J, plain[0], rtol=tol)
    assert_allclose(g, plain[1], rtol=tol, atol=tol * np.abs(plain[1]).max())
    assert_allclose(loss, plain[2], rtol=tol)
    assert correct == plain[3] and 0 < correct < X.shape[0]
