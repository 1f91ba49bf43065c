"""SoftmaxRegression on scipy.sparse input (issue 14): the same model as the dense fit."""
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from softmaxkit import SoftmaxRegression


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n, d, k = 300, 40, 4
    X = sp.random(n, d, density=0.1, format="csr", random_state=3) * 3.0
    W = rng.normal(size=(k, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    return X.tocsr(), y


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_lbfgs_sparse_equals_dense(data, fmt):
    X, y = data
    dense = SoftmaxRegression(alpha=0.5, tol=1e-10, max_iter=2000).fit(X.toarray(), y)
    sparse = SoftmaxRegression(alpha=0.5, tol=1e-10, max_iter=2000).fit(X.asformat(fmt), y)
    assert_allclose(sparse.coef_, dense.coef_, rtol=1e-7, atol=1e-9)
    assert_allclose(sparse.intercept_, dense.intercept_, rtol=1e-7, atol=1e-9)
    assert_allclose(sparse.history_["loss"][-1], dense.history_["loss"][-1], rtol=1e-12)


def test_soft_targets_weights_and_binary_on_sparse(data):
    X, y = data
    rng = np.random.default_rng(0)
    Y = rng.dirichlet(np.ones(4), size=X.shape[0])
    sw = rng.uniform(0.5, 2.0, X.shape[0])
    for target in (Y, (y > 1).astype(int)):
        a = SoftmaxRegression(tol=1e-10, max_iter=2000).fit(X, target, sample_weight=sw)
        b = SoftmaxRegression(tol=1e-10, max_iter=2000).fit(X.toarray(), target, sample_weight=sw)
        assert_allclose(a.coef_, b.coef_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_minibatch_and_partial_fit_sparse_equal_dense(data, solver):
    X, y = data
    kw = dict(solver=solver, max_iter=5, random_state=0, n_iter_no_change=100)
    with pytest.warns(Warning):
        a = SoftmaxRegression(**kw).fit(X, y)
    with pytest.warns(Warning):
        b = SoftmaxRegression(**kw).fit(X.toarray(), y)
    assert_allclose(a.coef_, b.coef_, rtol=1e-9, atol=1e-12)
    c = SoftmaxRegression(solver=solver, random_state=0)
    e = SoftmaxRegression(solver=solver, random_state=0)
    for start in range(0, 300, 100):
        c.partial_fit(X[start:start + 100], y[start:start + 100], classes=[0, 1, 2, 3])
        e.partial_fit(X[start:start + 100].toarray(), y[start:start + 100], classes=[0, 1, 2, 3])
    assert_allclose(c.coef_, e.coef_, rtol=1e-9, atol=1e-12)


def test_predictions_on_sparse_equal_dense(data):
    X, y = data
    est = SoftmaxRegression().fit(X.toarray(), y)
    for fmt in ("csr", "csc"):
        Xs = X.asformat(fmt)
        assert_allclose(est.predict_proba(Xs), est.predict_proba(X.toarray()), rtol=1e-12)
        assert_allclose(est.predict_log_proba(Xs), est.predict_log_proba(X.toarray()), rtol=1e-12)
        assert_allclose(est.decision_function(Xs), est.decision_function(X.toarray()), rtol=1e-12)
        assert_array_equal(est.predict(Xs), est.predict(X.toarray()))


def test_standardize_on_sparse_scales_only(data):
    """Centring would make X dense: sparse input is scaled by the standard deviation
    (mean_ = 0), like StandardScaler(with_mean=False); a dense model's centring is
    still applied to sparse input at prediction (folded into the coefficients)."""
    X, y = data
    a = SoftmaxRegression(standardize=True, tol=1e-10, max_iter=2000).fit(X, y)
    Xd = X.toarray()
    assert_array_equal(a.mean_, 0.0)
    assert_allclose(a.scale_, Xd.std(axis=0), rtol=1e-10)
    b = SoftmaxRegression(tol=1e-10, max_iter=2000).fit(Xd / Xd.std(axis=0), y)
    assert_allclose(a.coef_, b.coef_, rtol=1e-7, atol=1e-9)
    assert_allclose(a.predict_proba(Xd), a.predict_proba(X), rtol=1e-10)
    dense_model = SoftmaxRegression(standardize=True).fit(Xd, y)
    assert np.abs(dense_model.mean_).max() > 0.1
    assert_allclose(dense_model.predict_proba(X), dense_model.predict_proba(Xd), rtol=1e-9, atol=1e-12)


def test_bad_sparse_input(data):
    X, y = data
    Xn = X.copy()
    Xn.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(Xn, y)
    with pytest.raises(ValueError, match="features"):
        SoftmaxRegression().fit(X, y).predict(X[:, :5])
