"""A bounded fuzz pass over the public functions (issue 9): extreme values,
temperatures spanning float64's range, masks and every float dtype. No NaN the math
lacks, and every value within a few units of the float64 (long double) result.

The oracle is the same computation in long double NumPy (``np.longdouble``; 80-bit
on x86), which is itself checked against mpmath in test_softmax_examples.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as smk

DTYPES = [np.float16, np.float32, np.float64]
RTOL = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-13}


def extreme_floats(dtype):
    """Finite values of the dtype, biased to its extremes, plus a few infinities."""
    top = float(np.finfo(dtype).max)
    finite = st.one_of(
        st.floats(-top, top, width=np.finfo(dtype).bits, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, -0.0, top, -top, float(np.finfo(dtype).tiny), 1e-30, -1e4, 88.0]),
    )
    return finite


@st.composite
def rows_case(draw, allow_inf=True):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=9))
    elements = extreme_floats(dtype)
    if allow_inf:
        elements = st.one_of(elements, st.sampled_from([-np.inf, np.inf]))
    with np.errstate(over="ignore"):
        x = draw(hnp.arrays(dtype, shape, elements=elements))
    temperature = 10.0 ** draw(st.floats(-300, 300))
    where = draw(st.one_of(st.none(), hnp.arrays(np.bool_, shape)))
    return x, temperature, where


def _ref_softmax(x, temperature, where, log):
    """The long-double oracle with softmaxkit's documented conventions."""
    xl = np.asarray(x, dtype=np.longdouble)
    if where is not None:
        xl = np.where(where, xl, -np.inf)
    with np.errstate(all="ignore"):
        m = np.max(xl, axis=-1, keepdims=True)
        top = m == np.inf
        xl = np.where(top, np.where(xl == np.inf, 0, -np.inf), xl)
        m = np.where(np.isfinite(m), m, 0)
        s = (xl - m) / np.longdouble(temperature)
        lse = np.log(np.sum(np.exp(s), axis=-1, keepdims=True))
        empty = lse == -np.inf
        y = np.where(empty, -np.inf, s - np.where(empty, 0, lse))
    return y if log else np.exp(y)


@settings(max_examples=150)
@given(case=rows_case())
@pytest.mark.parametrize("log", [False, True])
def test_softmax_family_no_spurious_nan(case, log):
    x, temperature, where = case
    fn = smk.log_softmax if log else smk.softmax
    got = fn(x, temperature=temperature, where=where)
    assert got.dtype == x.dtype
    want = _ref_softmax(x, temperature, where, log)
    # NaN only where the math has it: never here (no NaN in the input)
    assert not np.isnan(got).any(), (x, temperature, where, got)
    with np.errstate(over="ignore", under="ignore"):
        want_d = want.astype(x.dtype)
    finite = np.isfinite(want_d) & np.isfinite(got)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want_d))
    if log:
        np.testing.assert_allclose(got[finite], want_d[finite], rtol=RTOL[x.dtype.type],
                                   atol=float(np.finfo(x.dtype).eps) * 4)
    else:
        np.testing.assert_allclose(got[finite], want_d[finite], rtol=RTOL[x.dtype.type] * 4,
                                   atol=float(np.finfo(x.dtype).tiny) * 8)


@settings(max_examples=150)
@given(case=rows_case(allow_inf=False))
def test_logsumexp_and_elementwise_no_spurious_nan(case):
    x, _, where = case
    lse = smk.logsumexp(x, where=where)
    assert not np.isnan(lse).any()
    for fn in (smk.sigmoid, smk.log_sigmoid, smk.softplus):
        y = fn(x)
        assert y.dtype == x.dtype and not np.isnan(y).any(), (fn.__name__, x)
    s = smk.sigmoid(x)
    assert ((s >= 0) & (s <= 1)).all()


@settings(max_examples=120)
@given(case=rows_case(allow_inf=False), data=st.data())
def test_cross_entropy_finite_for_finite_input(case, data):
    x, _, _ = case
    x2 = np.atleast_2d(x)
    n, c = x2.shape
    t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    eps = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    w = data.draw(st.one_of(st.none(), hnp.arrays(np.float64, (c,), elements=st.floats(0, 1e6))))
    reduction = data.draw(st.sampled_from(["none", "sum", "mean"]))
    loss, grad = smk.cross_entropy_and_grad(x2, t, label_smoothing=eps, weight=w,
                                            reduction=reduction)
    empty_mean = reduction == "mean" and w is not None and not w[t].any()
    # the only NaN the math has: the mean over rows whose weights are all 0 (0 / 0)
    assert empty_mean or not np.isnan(loss).any(), (x2, t, eps, w)
    assert not np.isnan(grad).any(), (x2, t, eps, w)
    # against the same loss in float64, rounded to the dtype (a weighted float16
    # gradient beyond 65504 is rightly inf)
    ref, ref_g = smk.cross_entropy_and_grad(x2.astype(np.float64), t, label_smoothing=eps,
                                            weight=w, reduction=reduction)
    with np.errstate(over="ignore"):
        ref_d = np.asarray(ref).astype(x2.dtype)
        ref_gd = ref_g.astype(x2.dtype)
    tol = dict(rtol=RTOL[x2.dtype.type] * 8, atol=float(np.finfo(x2.dtype).eps) * 8)
    # float32 accumulates weighted terms: its error scales with the weights
    scale = max(1.0, float(np.max(np.abs(ref_g), initial=0)),
                0.0 if w is None else float(w.max(initial=0)))
    with np.errstate(over="ignore"):  # comparing float16 values near 65504
        np.testing.assert_allclose(np.asarray(loss), ref_d, equal_nan=empty_mean, **tol)
        np.testing.assert_allclose(grad, ref_gd, rtol=tol["rtol"], atol=tol["atol"] * scale)
