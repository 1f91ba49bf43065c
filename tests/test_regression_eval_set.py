"""fit(eval_set=(X_val, y_val)): a held-out set measured after every iteration/epoch
(issue 9's test curve). It is only read: the fit is bitwise the same without it; each
recorded value is the log-loss / accuracy of the model at that step."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss

from softmaxkit import SoftmaxRegression
from softmaxkit.linear_model import NpyRows, _chunks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(seed=0, n=240, d=6, k=3):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d))
    X = rng.normal(size=(n + 80, d)) * rng.uniform(0.5, 3, d)
    y = np.argmax(X @ W.T + 2 * rng.gumbel(size=(n + 80, k)), axis=1)
    labels = np.array(["ant", "bee", "cat"])[y]  # string classes: eval labels map to classes_
    return X[:n], labels[:n], X[n:], labels[n:]


SOLVERS = [dict(solver="lbfgs"), dict(solver="sgd", batch_size=32), dict(solver="adam", batch_size=32)]


@pytest.mark.parametrize("kw", SOLVERS, ids=lambda kw: kw["solver"])
@pytest.mark.parametrize("standardize", [False, True])
def test_eval_set_does_not_change_the_fit_and_records_each_step(kw, standardize):
    X, y, Xv, yv = _data()
    T = 4
    common = dict(alpha=0.5, max_iter=T, random_state=3, standardize=standardize, **kw)
    plain = SoftmaxRegression(**common).fit(X, y)
    ev = SoftmaxRegression(**common).fit(X, y, eval_set=(Xv, yv))
    assert_array_equal(ev.coef_, plain.coef_)
    assert_array_equal(ev.intercept_, plain.intercept_)
    assert ev.history_["loss"] == plain.history_["loss"]
    h = ev.history_
    assert "eval_loss" not in plain.history_
    assert len(h["eval_loss"]) == len(h["eval_accuracy"]) == len(h["loss"]) == ev.n_iter_ >= 2
    # the value at step t is the model after t iterations/epochs, measured by scikit-learn
    for t in range(1, ev.n_iter_ + 1):
        at_t = SoftmaxRegression(**{**common, "max_iter": t}).fit(X, y)
        p = at_t.predict_proba(Xv)
        assert h["eval_loss"][t - 1] == pytest.approx(log_loss(yv, p, labels=at_t.classes_), rel=1e-10)
        assert h["eval_accuracy"][t - 1] == accuracy_score(yv, at_t.predict(Xv))
    assert h["eval_loss"][-1] < h["eval_loss"][0]  # not vacuous: the curve moves


def test_eval_set_beside_early_stopping_and_in_float32():
    X, y, Xv, yv = _data(1)
    kw = dict(solver="adam", early_stopping=True, max_iter=6, random_state=0, batch_size=16)
    a = SoftmaxRegression(**kw).fit(X, y)
    b = SoftmaxRegression(**kw).fit(X, y, eval_set=(Xv, yv))
    assert_array_equal(a.coef_, b.coef_)
    assert {"val_loss", "eval_loss"} <= set(b.history_)
    assert len(b.history_["eval_loss"]) == len(b.history_["val_loss"]) == b.n_iter_
    f = SoftmaxRegression(dtype=np.float32, max_iter=5).fit(X, y, eval_set=(Xv.astype(np.float32), yv))
    p = f.predict_proba(Xv)
    assert f.history_["eval_loss"][-1] == pytest.approx(log_loss(yv, p, labels=f.classes_), rel=1e-5)


def test_sparse_and_file_eval_sets_agree_with_dense(tmp_path, monkeypatch):
    X, y, Xv, yv = _data(2)
    dense = SoftmaxRegression(standardize=False, max_iter=6).fit(X, y, eval_set=(Xv, yv))
    sparse = SoftmaxRegression(standardize=False, max_iter=6).fit(sp.csr_matrix(X), y,
                                                                  eval_set=(sp.csr_matrix(Xv), yv))
    assert_allclose(sparse.history_["eval_loss"], dense.history_["eval_loss"], rtol=1e-9)
    np.save(tmp_path / "v.npy", Xv)
    monkeypatch.setattr(_chunks, "_BLOCK_BYTES", 17 * 6 * 8)  # 17-row blocks
    for src in (NpyRows(tmp_path / "v.npy"), np.load(tmp_path / "v.npy", mmap_mode="r")):
        disk = SoftmaxRegression(standardize=True, max_iter=6).fit(X, y, eval_set=(src, yv))
        mem = SoftmaxRegression(standardize=True, max_iter=6).fit(X, y, eval_set=(Xv, yv))
        assert_allclose(disk.history_["eval_loss"], mem.history_["eval_loss"], rtol=1e-12)
        assert disk.history_["eval_accuracy"] == mem.history_["eval_accuracy"]


@pytest.mark.parametrize("bad, match", [
    (lambda Xv, yv: Xv, "eval_set must be a pair"),
    (lambda Xv, yv: (Xv, yv[:-1]), "X_val has 80 rows but y_val has 79 labels"),
    (lambda Xv, yv: (Xv[:, :4], yv), "4 features"),
    (lambda Xv, yv: (Xv, np.where(yv == "ant", "dog", yv)), r"not in classes .*'dog'"),
    (lambda Xv, yv: (Xv, np.stack([yv, yv], 1)), "y_val must be 1-D"),
])
def test_bad_eval_sets_are_named(bad, match):
    X, y, Xv, yv = _data(3)
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression(max_iter=2).fit(X, y, eval_set=bad(Xv, yv))


def test_progress_line_shows_the_current_eval_values_once(capsys):
    X, y, Xv, yv = _data(4)
    est = SoftmaxRegression(max_iter=8, verbose=1).fit(X, y, eval_set=(Xv, yv))
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.count("eval_loss") == 1 and f"eval_loss {est.history_['eval_loss'][-1]:.4f}" in last


def test_sparse_eval_set_of_a_dense_standardised_fit_is_centred():
    X, y, Xv, yv = _data(5)
    X = X + 3.0  # a mean far from 0
    Xv = Xv + 3.0
    a = SoftmaxRegression(standardize=True, max_iter=5).fit(X, y, eval_set=(Xv, yv))
    b = SoftmaxRegression(standardize=True, max_iter=5).fit(X, y, eval_set=(sp.csr_matrix(Xv), yv))
    assert_allclose(b.history_["eval_loss"], a.history_["eval_loss"], rtol=1e-12)
    assert a.history_["eval_loss"][-1] == pytest.approx(log_loss(yv, a.predict_proba(Xv), labels=a.classes_))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_appends_one_eval_entry_per_call(solver):
    X, y, Xv, yv = _data(6)
    a = SoftmaxRegression(solver=solver, random_state=0, standardize=True)
    b = SoftmaxRegression(solver=solver, random_state=0, standardize=True)
    for _ in range(3):
        a.partial_fit(X, y, classes=["ant", "bee", "cat"])
        b.partial_fit(X, y, classes=["ant", "bee", "cat"], eval_set=(Xv, yv))
        assert_array_equal(a.coef_, b.coef_)
        assert b.history_["eval_loss"][-1] == pytest.approx(
            log_loss(yv, b.predict_proba(Xv), labels=b.classes_), rel=1e-10)
        assert b.history_["eval_accuracy"][-1] == accuracy_score(yv, b.predict(Xv))
    assert len(b.history_["eval_loss"]) == len(b.history_["loss"]) == 3
