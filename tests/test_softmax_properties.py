"""Properties, edge cases, plumbing and errors of the softmax family."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as smk

import reference as ref

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


def rows_strategy(dtype=np.float64, max_rows=6, max_cols=40):
    return hnp.arrays(
        dtype,
        st.tuples(st.integers(1, max_rows), st.integers(1, max_cols)),
        elements=st.floats(-500, 500, allow_nan=False, width=np.dtype(dtype).itemsize * 8),
    )


# ----------------------------------------------------------------- properties

@given(rows_strategy())
def test_rows_sum_to_one_and_in_range(x):
    p = smk.softmax(x)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-13)


@given(rows_strategy(), st.floats(-1e3, 1e3, allow_nan=False))
def test_shift_invariance(x, a):
    np.testing.assert_allclose(smk.softmax(x + a), smk.softmax(x), rtol=1e-9, atol=1e-300)
    # log_softmax changes by the rounding of the shifted inputs only.
    np.testing.assert_allclose(smk.log_softmax(x + a), smk.log_softmax(x), atol=1e-9 * (1 + abs(a) + np.abs(x).max()))


@given(rows_strategy(), st.floats(0.05, 20.0))
def test_temperature_equals_scaling(x, t):
    np.testing.assert_allclose(smk.softmax(x, temperature=t), smk.softmax(x / t), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(
        smk.log_softmax(x, temperature=t), smk.log_softmax(x / t), rtol=1e-9, atol=1e-9
    )


@given(rows_strategy(max_rows=3, max_cols=12), st.data())
def test_where_equals_slicing(x, data):
    mask = data.draw(hnp.arrays(np.bool_, x.shape))
    mask[:, 0] = True  # every row keeps at least one entry
    p = smk.softmax(x, where=mask)
    lp = smk.log_softmax(x, where=mask)
    lse = smk.logsumexp(x, where=mask)
    for i in range(x.shape[0]):
        kept = x[i][mask[i]]
        np.testing.assert_allclose(p[i][mask[i]], smk.softmax(kept), rtol=1e-13, atol=1e-300)
        np.testing.assert_array_equal(p[i][~mask[i]], 0.0)
        np.testing.assert_allclose(lp[i][mask[i]], smk.log_softmax(kept), rtol=1e-13, atol=1e-13)
        assert (lp[i][~mask[i]] == -np.inf).all()
        assert lse[i] == pytest.approx(float(smk.logsumexp(kept)), rel=1e-14)


@given(rows_strategy())
def test_log_softmax_is_log_of_softmax_and_logsumexp_consistent(x):
    lp = smk.log_softmax(x)
    np.testing.assert_allclose(np.exp(lp), smk.softmax(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(lp, x - smk.logsumexp(x, keepdims=True), atol=1e-12 * (1 + np.abs(x).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_kernels_match_numpy_twins(dtype, data):
    x = data.draw(rows_strategy(dtype, max_rows=5, max_cols=60))
    g = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-3, 3, width=np.dtype(dtype).itemsize * 8)))
    tol = dict(rtol=2e-6, atol=1e-30) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(smk.softmax(x), ref.softmax_ref(x), **tol)
    np.testing.assert_allclose(smk.softmax(x, temperature=3.0), ref.softmax_ref(x, 1 / 3.0), **tol)
    np.testing.assert_allclose(smk.log_softmax(x), ref.log_softmax_ref(x), rtol=tol["rtol"], atol=tol["rtol"] * 10)
    np.testing.assert_allclose(smk.logsumexp(x), ref.logsumexp_ref(x), rtol=tol["rtol"])
    p = smk.softmax(x)
    np.testing.assert_allclose(smk.softmax_backward(p, g), ref.softmax_backward_ref(p, g), rtol=tol["rtol"], atol=tol["rtol"] * 10)
    lp = smk.log_softmax(x)
    np.testing.assert_allclose(smk.log_softmax_backward(lp, g), ref.log_softmax_backward_ref(lp, g), rtol=tol["rtol"], atol=tol["rtol"] * 10)
    np.testing.assert_allclose(smk.sigmoid(x), ref.sigmoid_ref(x), rtol=tol["rtol"] * 4, atol=1e-300)
    np.testing.assert_allclose(smk.log_sigmoid(x), ref.log_sigmoid_ref(x), rtol=tol["rtol"])
    np.testing.assert_allclose(smk.softplus(x), ref.softplus_ref(x), rtol=tol["rtol"])
    s = smk.sigmoid(x)
    np.testing.assert_allclose(smk.sigmoid_backward(s, g), ref.sigmoid_backward_ref(s, g), rtol=tol["rtol"], atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_twins_on_edge_rows(dtype):
    inf, nan = np.inf, np.nan
    x = np.array([
        [1.0, 2.0, 3.0, 4.0],
        [-inf, -inf, -inf, -inf],
        [inf, 1.0, inf, -inf],
        [1.0, nan, 2.0, 3.0],
        [-inf, 5.0, -inf, -inf],
        [inf, inf, inf, inf],
        [nan, -inf, -inf, -inf],
    ], dtype=dtype)
    for ours, twin in ((smk.softmax, ref.softmax_ref), (smk.log_softmax, ref.log_softmax_ref)):
        np.testing.assert_allclose(ours(x), twin(x), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(smk.logsumexp(x), ref.logsumexp_ref(x), rtol=1e-6, equal_nan=True)


# ------------------------------------------------------- defined edge behaviour

def test_masked_and_all_minus_inf_rows_never_nan():
    x = np.array([[1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf], [4.0, 5.0, 6.0]])
    where = np.array([[False, False, False], [True, True, True], [True, False, True]])
    p = smk.softmax(x, where=where)
    np.testing.assert_array_equal(p[0], 0.0)
    np.testing.assert_array_equal(p[1], 0.0)
    lp = smk.log_softmax(x, where=where)
    assert (lp[0] == -np.inf).all() and (lp[1] == -np.inf).all()
    lse = smk.logsumexp(x, where=where)
    assert lse[0] == -np.inf and lse[1] == -np.inf
    g = np.ones_like(x)
    np.testing.assert_array_equal(smk.softmax_backward(p, g)[:2], 0.0)
    np.testing.assert_array_equal(smk.log_softmax_backward(lp, g)[:2], 0.0)
    assert not np.isnan(smk.log_softmax_backward(lp, g)).any()
    # Partially masked row: excluded entries get zero gradient.
    d = smk.log_softmax_backward(lp, g)
    assert d[2, 1] == 0.0


def test_plus_inf_entries_share_the_mass():
    x = np.array([np.inf, 0.0, np.inf, -np.inf])
    np.testing.assert_array_equal(smk.softmax(x), [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(smk.log_softmax(x), [-np.log(2), -np.inf, -np.log(2), -np.inf])
    assert smk.logsumexp(x) == np.inf
    np.testing.assert_array_equal(smk.softmax(np.array([np.inf, 1.0])), [1.0, 0.0])


def test_nan_poisons_only_its_row():
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0], [np.nan, -np.inf, np.inf]])
    for f in (smk.softmax, smk.log_softmax):
        y = f(x)
        assert np.isnan(y[0]).all() and np.isnan(y[2]).all()
        assert np.isfinite(y[1]).all()
    lse = smk.logsumexp(x)
    assert np.isnan(lse[0]) and np.isnan(lse[2]) and np.isfinite(lse[1])
    h = smk.hardmax(x)
    assert np.isnan(h[0]).all() and np.isnan(h[2]).all()
    np.testing.assert_array_equal(h[1], [0, 0, 1])
    # A NaN hidden by where=False is excluded with its entry.
    np.testing.assert_allclose(smk.softmax(x[0], where=[True, False, True]), smk.softmax([1.0, 0.0, 2.0], where=[1, 0, 1]))


def test_float32_large_logits_no_overflow():
    x = np.float32([0.0, 120.0])
    np.testing.assert_array_equal(smk.softmax(x), np.float32([0.0, 1.0]))
    np.testing.assert_allclose(smk.log_softmax(x), np.float32([-120.0, 0.0]))
    assert smk.logsumexp(x) == np.float32(120.0)
    assert smk.softmax(x).dtype == np.float32


@pytest.mark.parametrize("shape, axis", [((0,), -1), ((0, 5), -1), ((5, 0), -1), ((3, 0, 2), 1), ((2, 3), (0, 1))])
def test_empty_arrays_and_zero_length_axes(shape, axis):
    x = np.zeros(shape)
    assert smk.softmax(x, axis=axis).shape == shape
    assert smk.log_softmax(x, axis=axis).shape == shape
    lse = smk.logsumexp(x, axis=axis)
    if 0 in [shape[a] for a in np.atleast_1d(axis)]:
        assert (np.asarray(lse) == -np.inf).all()
    assert smk.sigmoid(x).shape == shape
    assert smk.hardmax(x, axis=axis).shape == shape


def test_zero_d_and_array_likes():
    assert smk.softmax(1000.0, axis=None) == 1.0
    assert smk.log_softmax(3, axis=None) == 0.0
    assert smk.logsumexp(5.0, axis=None) == 5.0
    assert smk.sigmoid(0) == 0.5
    np.testing.assert_allclose(smk.softmax([[1, 2], [3, 4]]), smk.softmax(np.array([[1.0, 2.0], [3.0, 4.0]])))
    np.testing.assert_allclose(smk.softmax((True, False)), smk.softmax([1.0, 0.0]))


def test_axis_none_and_tuple_match_scipy():
    sp = pytest.importorskip("scipy.special")
    x = np.random.default_rng(1).normal(size=(3, 4, 5))
    for axis in (None, 0, 1, -1, (0, 2), (1, 2), (2, 0)):
        np.testing.assert_allclose(smk.softmax(x, axis=axis), sp.softmax(x, axis=axis), rtol=1e-13)
        np.testing.assert_allclose(smk.log_softmax(x, axis=axis), sp.log_softmax(x, axis=axis), rtol=1e-13, atol=1e-14)
        for keepdims in (False, True):
            np.testing.assert_allclose(
                smk.logsumexp(x, axis=axis, keepdims=keepdims), sp.logsumexp(x, axis=axis, keepdims=keepdims), rtol=1e-14
            )


def test_logsumexp_b_and_return_sign_match_scipy():
    sp = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6))
    b = rng.normal(size=(4, 6))
    for axis in (-1, 0, None):
        r, s = smk.logsumexp(a, axis=axis, b=b, return_sign=True)
        r2, s2 = sp.logsumexp(a, axis=axis, b=b, return_sign=True)
        np.testing.assert_allclose(r, r2, rtol=1e-12)
        np.testing.assert_array_equal(s, s2)
    np.testing.assert_allclose(smk.logsumexp(a, b=np.abs(b)), sp.logsumexp(a, b=np.abs(b), axis=-1), rtol=1e-13)
    # b = 0 entries are left out; a negative sum without return_sign gives NaN.
    assert smk.logsumexp([1.0, 1000.0], b=[1.0, 0.0]) == pytest.approx(1.0)
    with np.errstate(invalid="ignore"):
        assert np.isnan(smk.logsumexp([1.0, 2.0], b=[1.0, -1.0]))
    r, s = smk.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert r == -np.inf and s == 0
    np.testing.assert_allclose(smk.logsumexp(a, b=2.0, where=a > 0), sp.logsumexp(np.where(a > 0, a, -np.inf), b=2.0, axis=-1), rtol=1e-13)


def test_hardmax_first_index_on_ties_and_limits():
    np.testing.assert_array_equal(smk.hardmax([1.0, 3.0, 3.0]), [0, 1, 0])
    np.testing.assert_array_equal(smk.hardmax([-np.inf, -np.inf]), [0, 0])
    np.testing.assert_array_equal(smk.hardmax([[1, 5], [7, 2]], axis=0), [[0, 1], [1, 0]])
    assert smk.hardmax(np.float32([1, 2])).dtype == np.float32


def test_large_row_ten_million():
    x = np.random.default_rng(5).normal(size=10_000_000).astype(np.float32)
    p = smk.softmax(x)
    assert p.dtype == np.float32
    assert abs(float(p.astype(np.float64).sum()) - 1.0) < 1e-5
    lse = smk.logsumexp(x)
    assert lse == pytest.approx(float(np.log(np.exp(x.astype(np.float64)).sum())), rel=1e-6)


# --------------------------------------------------------------------- plumbing

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.bool_])
def test_dtypes(dtype):
    x = np.array([[1, 0, 1], [0, 1, 1]], dtype=dtype)
    expected = {np.float16: np.float16, np.float32: np.float32}.get(dtype, np.float64)
    for f in (smk.softmax, smk.log_softmax, smk.sigmoid, smk.log_sigmoid, smk.softplus, smk.hardmax):
        y = f(x)
        assert y.dtype == expected, f
    assert smk.logsumexp(x).dtype == expected
    np.testing.assert_allclose(smk.softmax(x).astype(float), smk.softmax(x.astype(float)), rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "fortran", "strided", "readonly"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_plumbing_matrix(dtype, layout, axis, num_threads):
    base = np.random.default_rng(11).normal(size=(7, 40, 300)).astype(dtype) * 4
    if layout == "fortran":
        x = np.asfortranarray(base)
    elif layout == "strided":
        x = np.random.default_rng(11).normal(size=(7, 80, 300)).astype(dtype)[:, ::2, :] * 4
    else:
        x = base.copy()
    if layout == "readonly":
        x.flags.writeable = False
    before = x.copy()
    xd = x.astype(np.float64)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    p = smk.softmax(x, axis=axis)
    np.testing.assert_allclose(p, ref_along(ref.softmax_ref, xd, axis), rtol=tol * 4, atol=1e-30)
    lp = smk.log_softmax(x, axis=axis)
    np.testing.assert_allclose(lp, ref_along(ref.log_softmax_ref, xd, axis), rtol=tol, atol=tol * 50)
    moved = np.moveaxis(xd, axis, -1)
    lse_ref = ref.logsumexp_ref(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape[:-1])
    # lse near 0 comes from cancellation (m + log1p(s)): its error is absolute.
    np.testing.assert_allclose(smk.logsumexp(x, axis=axis), lse_ref, rtol=tol, atol=tol * 10)
    for f, kw in ((smk.softmax, {}), (smk.log_softmax, {})):
        out = np.empty(x.shape, dtype)
        got = f(x, axis=axis, out=out, **kw)
        assert got is out
        np.testing.assert_array_equal(out, f(x, axis=axis))
    out = np.empty(x.shape, dtype)
    assert smk.sigmoid(x, out=out) is out
    np.testing.assert_array_equal(out, smk.sigmoid(x))
    np.testing.assert_array_equal(x, before)  # inputs never modified


def ref_along(fn, x, axis):
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(fn(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape), -1, axis)


def test_out_non_contiguous_and_aliasing():
    x = np.random.default_rng(2).normal(size=(4, 6))
    out = np.empty((6, 4)).T  # non-contiguous out
    smk.softmax(x, out=out)
    np.testing.assert_array_equal(out, smk.softmax(x))
    y = x.copy()
    smk.softmax(y, out=y)  # in place through out= is allowed
    np.testing.assert_array_equal(y, smk.softmax(x))
    h = np.empty(x.shape, np.float16)
    smk.softmax(x.astype(np.float16), out=h)
    np.testing.assert_allclose(h, smk.softmax(x), rtol=2e-3)


def test_threads_agree_bitwise():
    x = np.random.default_rng(3).normal(size=(300, 517)).astype(np.float32)
    old = smk.get_num_threads()
    try:
        smk.set_num_threads(1)
        one = (smk.softmax(x), smk.log_softmax(x), smk.logsumexp(x), smk.sigmoid(x))
        smk.set_num_threads(2)
        two = (smk.softmax(x), smk.log_softmax(x), smk.logsumexp(x), smk.sigmoid(x))
    finally:
        smk.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_num_threads_api_and_env(tmp_path):
    import subprocess
    import sys

    old = smk.get_num_threads()
    smk.set_num_threads(3)
    assert smk.get_num_threads() == 3
    smk.set_num_threads(old)
    for bad, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)):
        with pytest.raises(exc, match="n must be a positive integer"):
            smk.set_num_threads(bad)
    code = "import softmaxkit as smk; print(smk.get_num_threads())"
    env = dict(__import__("os").environ, SOFTMAXKIT_NUM_THREADS="5")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "5"
    env["SOFTMAXKIT_NUM_THREADS"] = "lots"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and "SOFTMAXKIT_NUM_THREADS must be a positive integer, got 'lots'" in res.stderr


# ----------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="x must be an array of real numbers.*complex"):
        smk.softmax(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="real numbers"):
        smk.softmax(["a", "b"])
    with pytest.raises(TypeError, match="real numbers"):
        smk.log_softmax(np.array([object()]))
    with pytest.raises(np.exceptions.AxisError):
        smk.softmax(np.zeros((2, 3)), axis=2)
    with pytest.raises(np.exceptions.AxisError):
        smk.logsumexp(np.zeros(3), axis=(0, 1))
    with pytest.raises(ValueError, match="repeated axis"):
        smk.softmax(np.zeros((2, 3)), axis=(1, -1))
    with pytest.raises(TypeError, match="axis must be an int"):
        smk.softmax(np.zeros(3), axis=1.0)
    for t in (0.0, -1.0, np.inf, np.nan, 1e-320):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            smk.softmax([1.0, 2.0], temperature=t)
    with pytest.raises(TypeError, match="temperature must be a real number"):
        smk.softmax([1.0, 2.0], temperature="hot")
    with pytest.raises(ValueError, match=r"out has shape \(3,\), expected \(2,\)"):
        smk.softmax([1.0, 2.0], out=np.empty(3))
    with pytest.raises(ValueError, match="out has dtype float32, expected float64"):
        smk.softmax([1.0, 2.0], out=np.empty(2, np.float32))
    ro = np.empty(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        smk.softmax([1.0, 2.0], out=ro)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        smk.softmax([1.0, 2.0], out=[0.0, 0.0])
    with pytest.raises(ValueError, match="where with shape \\(3,\\) does not broadcast"):
        smk.softmax(np.zeros((2, 2)), where=[True, False, True])
    with pytest.raises(ValueError, match="b with shape"):
        smk.logsumexp(np.zeros((2, 2)), b=np.ones(3))
    with pytest.raises(ValueError, match="grad_output has shape"):
        smk.softmax_backward(np.ones(3) / 3, np.ones(4))
    with pytest.raises(TypeError, match="grad_output must be an array of real numbers"):
        smk.log_softmax_backward(np.zeros(2), np.array([1j, 2j]))


def test_kernel_binding_checks_sizes():
    """The C seam refuses buffers that are too small, whatever Python passes."""
    from softmaxkit._kernels import _softmax as ext

    x = np.zeros(6)
    with pytest.raises(ValueError, match="'out' holds 5 items, 6 needed"):
        ext.softmax(x, np.zeros(5), 2, 3, 1.0, 1)
    with pytest.raises(ValueError, match="'x' holds 6 items, 8 needed"):
        ext.softmax(x, np.zeros(8), 2, 4, 1.0, 1)
    with pytest.raises(TypeError, match="wrong element type"):
        ext.softmax(x, np.zeros(6, np.float32), 2, 3, 1.0, 1)
    with pytest.raises(ValueError, match="bad shape"):
        ext.softmax(x, np.zeros(6), -1, 3, 1.0, 1)
    with pytest.raises(TypeError, match="unsupported buffer format"):
        ext.softmax(np.zeros(6, np.int32), np.zeros(6, np.int32), 2, 3, 1.0, 1)
    with pytest.raises((ValueError, BufferError, TypeError)):
        ext.softmax(x, np.zeros(6)[::-1].copy()[::2], 2, 3, 1.0, 1)


# ---------------------------------------------------------------------- sample

def test_sample_frequencies_match_softmax():
    logits = np.array([[0.0, 1.0, 2.0], [2.0, -np.inf, 0.0]])
    draws = smk.sample(logits, size=40000, rng=np.random.default_rng(0))
    assert draws.shape == (40000, 2)
    for i in range(2):
        freq = np.bincount(draws[:, i], minlength=3) / draws.shape[0]
        np.testing.assert_allclose(freq, smk.softmax(logits[i]), atol=0.01)
    assert (draws[:, 1] != 1).all()  # -inf never drawn
    hot = smk.sample(logits[0], size=40000, temperature=100.0, rng=1)
    np.testing.assert_allclose(np.bincount(hot, minlength=3) / 40000, 1 / 3, atol=0.01)


def test_sample_seeding_shapes_and_errors():
    a = smk.sample([1.0, 2.0, 3.0], size=5, rng=42)
    b = smk.sample([1.0, 2.0, 3.0], size=5, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert isinstance(smk.sample([1.0, 2.0], rng=0), int)
    assert smk.sample(np.zeros((4, 3, 2)), axis=1, rng=0).shape == (4, 2)
    assert smk.sample(np.zeros((4, 3)), size=(2, 5), rng=0).shape == (2, 5, 4)
    inf_draws = smk.sample([np.inf, 0.0, np.inf], size=2000, rng=0)
    assert set(np.unique(inf_draws)) == {0, 2}
    with pytest.raises(ValueError, match="only -inf entries in distribution 1"):
        smk.sample([[0.0, 1.0], [-np.inf, -np.inf]], rng=0)
    with pytest.raises(ValueError, match="NaN in distribution 0"):
        smk.sample([np.nan, 1.0], rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        smk.sample([0.0, 1.0], rng="seed")
    with pytest.raises(ValueError, match="size must not be negative"):
        smk.sample([0.0, 1.0], size=-1, rng=0)
    with pytest.raises(ValueError, match="class axis has length 0"):
        smk.sample(np.zeros((2, 0)), rng=0)


@pytest.mark.parametrize("dtype, edge", [(np.float32, 87.0), (np.float64, 708.0)])
def test_subnormal_results_exact_on_both_exp_paths(dtype, edge):
    """Rows whose range keeps every term normal take the cheaper exp; rows reaching
    below the smallest normal take the exact one. Both must give NumPy's exp values
    (subnormal probabilities included) and the same log1p-based logs."""
    for lo in (edge - 0.5, edge + 0.5, edge + 10.0):
        x = np.array([0.0, -1.0, -edge + 0.25, -lo], dtype=dtype)
        e = np.exp(x.astype(np.float64))
        want = (e / e.sum()).astype(dtype)
        got = smk.softmax(x)
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)
        assert got[-1] > 0  # not flushed, even when subnormal
        lse = np.log1p(e[1:].sum())
        np.testing.assert_allclose(smk.logsumexp(x), lse, rtol=4 * np.finfo(dtype).eps)
        np.testing.assert_allclose(smk.log_softmax(x)[0], -lse, rtol=4 * np.finfo(dtype).eps)
    # temperature moves the boundary: (min - max) / T
    x = np.array([0.0, -edge / 2 - 1.0], dtype=dtype)
    e = np.exp(x.astype(np.float64) / 0.5)
    np.testing.assert_allclose(smk.softmax(x, temperature=0.5), (e / e.sum()).astype(dtype),
                               rtol=4 * np.finfo(dtype).eps, atol=0)
