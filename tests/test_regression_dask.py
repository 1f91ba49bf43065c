"""SoftmaxRegression on a dask array over a dask.distributed LocalCluster (issue 14):
two worker processes compute the chunks' loss and gradient, L-BFGS runs here; the
model equals the in-memory fit."""
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from softmaxkit import SoftmaxRegression  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       worker_dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n, d, k = 900, 12, 3
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)
    W = rng.normal(size=(k, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    return X, y


def test_no_client_is_a_clear_error(data):
    X, y = data
    if distributed.client._get_global_client() is not None:  # pragma: no cover
        pytest.skip("a dask client is already running in this process")
    with pytest.raises(ConnectionError, match="needs a running dask.distributed Client"):
        SoftmaxRegression().fit(da.from_array(X, chunks=300), y)


def test_unreachable_scheduler_fails_within_seconds(data):
    """A client whose scheduler is gone: a clear ConnectionError, quickly. (The module's
    cluster is not running yet: this test runs first, without it.)"""
    X, y = data
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        cluster.close()
        t0 = time.perf_counter()
        with pytest.raises(ConnectionError, match="(dask scheduler at .* (cannot be reached|did not "
                                                  "run)|needs a running dask.distributed Client)"):
            SoftmaxRegression().fit(da.from_array(X, chunks=300), y)
        assert time.perf_counter() - t0 < 15
    finally:
        c.close()


@pytest.mark.parametrize("standardize", [False, True])
def test_dask_fit_equals_in_memory_fit(client, data, standardize):
    X, y = data
    sw = np.linspace(0.5, 2.0, len(y))
    kw = dict(alpha=0.5, standardize=standardize, tol=1e-10, max_iter=1000)
    mem = SoftmaxRegression(**kw).fit(X, y, sample_weight=sw)
    Xd = da.from_array(X, chunks=(250, 6))  # uneven row chunks, split columns (rechunked)
    yd = da.from_array(y, chunks=250)
    dist = SoftmaxRegression(**kw).fit(Xd, yd, sample_weight=sw)
    assert_allclose(dist.coef_, mem.coef_, rtol=1e-8, atol=1e-10)
    assert_allclose(dist.intercept_, mem.intercept_, rtol=1e-8, atol=1e-10)
    assert dist.history_["accuracy"][-1] == mem.history_["accuracy"][-1]
    # the workers did the work: both hold chunks
    assert len(client.scheduler_info()["workers"]) == 2
    P = dist.predict_proba(Xd)
    assert isinstance(P, da.Array)
    assert_allclose(P.compute(), mem.predict_proba(X), rtol=1e-7, atol=1e-10)
    assert isinstance(dist.predict(Xd), da.Array)
    assert (dist.predict(Xd).compute() == mem.predict(X)).mean() > 0.99


def test_binary_and_decision_function(client, data):
    X, y = data
    yb = (y == 1).astype(int)
    mem = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(X, yb)
    dist = SoftmaxRegression(tol=1e-10, max_iter=1000).fit(da.from_array(X, chunks=300), yb)
    assert_allclose(dist.coef_, mem.coef_, rtol=1e-8, atol=1e-10)
    dfun = dist.decision_function(da.from_array(X, chunks=300))
    assert dfun.shape == (len(yb),)
    assert_allclose(dfun.compute(), mem.decision_function(X), rtol=1e-7, atol=1e-9)


def test_bad_dask_input(client, data):
    X, y = data
    Xd = da.from_array(X, chunks=300)
    with pytest.raises(ValueError, match="row chunks .* do not match"):
        SoftmaxRegression().fit(Xd, da.from_array(y, chunks=200))
    with pytest.raises(ValueError, match="has 900 rows but y has 899"):
        SoftmaxRegression().fit(Xd, y[:-1])
    Xn = X.copy()
    Xn[123, 4] = np.inf
    with pytest.raises(ValueError, match="row 123, column 4 is not finite"):
        SoftmaxRegression().fit(da.from_array(Xn, chunks=300), y)
    with pytest.raises(ValueError, match="solver='lbfgs'"):
        SoftmaxRegression(solver="sgd").fit(Xd, y)
    with pytest.raises(TypeError, match="dtype"):
        SoftmaxRegression().fit(da.from_array(X.astype(complex), chunks=300), y)
