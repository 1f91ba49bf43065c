"""SoftmaxRegression on data that stays on disk (issue 14): a memory-mapped 2-D .npy
(or NpyRows) is read block by block; the fit equals the in-memory one and the
process holds one block, not the file."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from softmaxkit import SoftmaxRegression
from softmaxkit.linear_model import NpyRows, _chunks


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_chunks, "_BLOCK_BYTES", 40 * 13 * 8)  # 40-row blocks, uneven last one


def _data(rng, n=333, d=13, k=4):
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d) + rng.normal(size=d)
    W = rng.normal(size=(k, d))
    y = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    return X, y


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("file_dtype", [np.float64, np.float32])
def test_memmap_fit_equals_in_memory_fit(tmp_path, rng, small_blocks, standardize, file_dtype):
    X, y = _data(rng)
    X = X.astype(file_dtype)
    np.save(tmp_path / "X.npy", X)
    sw = rng.uniform(0.5, 2, len(y))
    kw = dict(alpha=0.3, standardize=standardize, tol=1e-10, max_iter=500)
    mem = SoftmaxRegression(**kw).fit(X, y, sample_weight=sw)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    disk = SoftmaxRegression(**kw).fit(Xm, y, sample_weight=sw)
    assert_allclose(disk.coef_, mem.coef_, rtol=1e-9, atol=1e-11)
    assert_allclose(disk.intercept_, mem.intercept_, rtol=1e-9, atol=1e-11)
    assert disk.n_iter_ == mem.n_iter_ and disk.n_features_in_ == X.shape[1]
    if standardize:
        assert_allclose(disk.mean_, mem.mean_, rtol=1e-12)
        assert_allclose(disk.scale_, mem.scale_, rtol=1e-12)
    back = SoftmaxRegression(**kw).fit(NpyRows(tmp_path / "X.npy"), y, sample_weight=sw)
    assert_allclose(back.coef_, disk.coef_, rtol=0, atol=0)


def test_soft_targets_and_big_endian_file(tmp_path, rng, small_blocks):
    X, y = _data(rng)
    Y = rng.dirichlet(np.ones(4), size=len(y))
    np.save(tmp_path / "X.npy", X.astype(">f8"))
    mem = SoftmaxRegression(tol=1e-10, max_iter=500).fit(X, Y)
    disk = SoftmaxRegression(tol=1e-10, max_iter=500).fit(np.load(tmp_path / "X.npy", mmap_mode="r"), Y)
    # soft random targets: small, flat coefficients; blockwise sums round differently
    assert_allclose(disk.coef_, mem.coef_, rtol=1e-6, atol=1e-9)


def test_bad_files_and_targets(tmp_path, rng, small_blocks):
    X, y = _data(rng)
    X[100, 5] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(ValueError, match=r"nan\.npy: row 100, column 5 is not finite"):
        SoftmaxRegression().fit(np.load(tmp_path / "nan.npy", mmap_mode="r"), y)
    X[100, 5] = 0.0
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="has 333 rows but y has 332"):
        SoftmaxRegression().fit(Xm, y[:-1])
    raw = (tmp_path / "X.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"short\.npy: truncated"):
        NpyRows(tmp_path / "short.npy")
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(ValueError, match="expected a 2-D array"):
        NpyRows(tmp_path / "v.npy")
    est = SoftmaxRegression().fit(Xm, y)
    with pytest.raises(ValueError, match="expecting 13 features"):
        est.predict(np.zeros((2, 5)))


@pytest.mark.slow
def test_peak_memory_is_bounded_by_the_block_not_the_file(tmp_path):
    """A 400 MB float64 file (64000 x 784, MNIST-like): the fit's peak resident memory
    grows by well under the file's size (blocks are 64 MiB). Run in a fresh process so
    ru_maxrss sees only this fit; the file is written without a memory map."""
    n, d, k = 64000, 784, 10
    path = tmp_path / "big.npy"
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=0.1, size=(k, d))
    y = rng.integers(0, k, n)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n, d)})
        for s in range(0, n, 4000):
            fh.write((centres[y[s:s + 4000]] + rng.normal(size=(min(4000, n - s), d))).tobytes())
    np.save(tmp_path / "y.npy", y)
    assert path.stat().st_size > 400e6
    script = textwrap.dedent(f"""
        import resource, warnings, numpy as np
        from softmaxkit import SoftmaxRegression
        y = np.load({str(tmp_path / 'y.npy')!r})
        warnings.simplefilter("ignore")
        SoftmaxRegression(max_iter=2).fit(np.random.default_rng(0).normal(size=(500, 784)), y[:500])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        X = np.load({str(path)!r}, mmap_mode="r")
        est = SoftmaxRegression(max_iter=1).fit(X, y)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert est.n_iter_ >= 1
        print((after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    grown_mb = float(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS growth {grown_mb:.0f} MB for a {path.stat().st_size / 1e6:.0f} MB file")
    assert grown_mb < 200, f"peak RSS grew by {grown_mb:.0f} MB for a 401 MB file"


def test_which_maps_are_read_from_the_file(tmp_path, rng):
    """Whole read-only / shared maps are read block by block; a slice of a map or a
    copy-on-write map (whose edits the file does not hold) are used in memory."""
    from softmaxkit.linear_model._chunks import as_row_source

    X, y = _data(rng)
    np.save(tmp_path / "X.npy", X)
    assert as_row_source(np.load(tmp_path / "X.npy", mmap_mode="r")) is not None
    assert as_row_source(np.load(tmp_path / "X.npy", mmap_mode="r")[10:]) is None
    cow = np.load(tmp_path / "X.npy", mmap_mode="c")
    assert as_row_source(cow) is None
    cow[:] = 0.0  # edits only in this process: the fit must see them
    cow[:, 0] = np.where(y == 1, 5.0, -5.0)
    est = SoftmaxRegression().fit(cow, y)
    assert np.abs(est.coef_[:, 1:]).max() == 0.0 and np.abs(est.coef_[:, 0]).max() > 0.1
    assert as_row_source(X) is None


def test_selected_rows_are_read_in_runs_and_errors_name_the_file_row(tmp_path, rng):
    X, y = _data(rng)
    np.save(tmp_path / "X.npy", X)
    rows = np.flatnonzero(rng.random(len(X)) < 0.6)
    for block_rows in (7, 100, 1000):  # run by run; spans read whole and picked
        src = NpyRows(tmp_path / "X.npy", rows=rows, block_rows=block_rows)
        assert src.shape == (rows.size, 13) and src.file_shape == X.shape
        got = np.concatenate([b.copy() for _, _, b in src.blocks()])
        assert_allclose(got, X[rows], rtol=0, atol=0)
        every4 = NpyRows(tmp_path / "X.npy", rows=np.arange(3, len(X), 4), block_rows=block_rows)
        assert_allclose(np.concatenate([b.copy() for _, _, b in every4.blocks()]), X[3::4], rtol=0, atol=0)
    src = NpyRows(tmp_path / "X.npy", rows=rows, block_rows=7)
    sub = src.subset(np.arange(0, rows.size, 3))
    assert_allclose(np.concatenate([b.copy() for _, _, b in sub.blocks()]), X[rows[::3]], rtol=0, atol=0)
    with pytest.raises(ValueError, match="increasing row numbers"):
        NpyRows(tmp_path / "X.npy", rows=[3, 2])
    bad = X.copy()
    r = int(rows[40])
    bad[r, 7] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    for block_rows in (16, 200):
        with pytest.raises(ValueError, match=rf"bad\.npy: row {r}, column 7 is not finite"):
            list(NpyRows(tmp_path / "bad.npy", rows=rows, block_rows=block_rows).blocks())
    # the fit on selected rows equals the in-memory fit on those rows
    kw = dict(alpha=0.3, standardize=True, tol=1e-10, max_iter=500)
    disk = SoftmaxRegression(**kw).fit(src, y[rows])
    mem = SoftmaxRegression(**kw).fit(X[rows], y[rows])
    # 7-row blocks: 30 partial sums per evaluation round differently from one product
    assert_allclose(disk.coef_, mem.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_minibatch_solvers_read_npy_rows_chunk_by_chunk(tmp_path, rng, solver):
    """sgd/adam on NpyRows: chunks (here 50 rows) in a random order, rows shuffled within;
    seeded, so repeatable; it learns what the in-memory fit learns; early stopping's
    validation rows stay in the file too."""
    X, y = _data(rng, n=600)
    np.save(tmp_path / "X.npy", X)
    kw = dict(solver=solver, batch_size=16, max_iter=15, random_state=0, standardize=True)
    a = SoftmaxRegression(**kw).fit(NpyRows(tmp_path / "X.npy", block_rows=50), y)
    b = SoftmaxRegression(**kw).fit(NpyRows(tmp_path / "X.npy", block_rows=50), y)
    assert_allclose(a.coef_, b.coef_, rtol=0, atol=0)
    mem = SoftmaxRegression(**kw).fit(X, y)
    assert not np.array_equal(a.coef_, mem.coef_)  # another batch order ...
    assert abs(a.score(X, y) - mem.score(X, y)) < 0.05  # ... the same model, near enough
    assert a.history_["loss"][-1] < a.history_["loss"][0]
    es = SoftmaxRegression(**kw, early_stopping=True).fit(NpyRows(tmp_path / "X.npy", block_rows=50), y)
    assert len(es.history_["val_loss"]) == es.n_iter_ and es.score(X, y) > 0.5
