"""The vectorised elementwise kernels (src/softmaxkit/_kernels/elementwise_body.h):
softplus (with PyTorch's beta and threshold), log_sigmoid, their backward passes,
torchvision's sigmoid focal loss and the multi-class hinge rows.

* mpmath oracles, in ulps, over random points and the extremes (-1e4, -88, -20,
  -1e-8, 0, 1e-8, 20, 88, 1e4, subnormals, the overflow and underflow edges);
* the NumPy twins below (the kernels' formulas in NumPy) against the kernels;
* PyTorch's softplus / softplus_backward / logsigmoid / multi_margin_loss;
* the plumbing: dtypes kept, in-place calls, threads, bad arguments.

tests/test_kernel_variants.py runs this file again under every SIMD variant.
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as smk
from softmaxkit import _kernels as K
from softmaxkit._kernels import _softmax as S

DTYPES = [np.float64, np.float32]
TINY = {np.float64: 5e-324, np.float32: 1e-45}

# ----------------------------------------------------------------- NumPy twins


def softplus_twin(x, beta=1.0, threshold=np.inf):
    """max(bx, 0) + log1p(exp(-|bx|)), over beta; x where bx > threshold (x's dtype)."""
    dt = x.dtype
    bx = (x * dt.type(beta)).astype(dt)
    with np.errstate(over="ignore", invalid="ignore"):
        sp = np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))
        sp = np.where(np.isnan(bx), np.nan, sp)
        y = sp if beta == 1.0 else sp / dt.type(beta)
    return np.where(bx > threshold, x, y).astype(dt)


def log_sigmoid_twin(x):
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    return np.where(np.isnan(x), np.nan, y).astype(x.dtype)


def sigmoid_twin(z):
    """(1 or u) / (1 + u), u = exp(-|z|): keeps the subnormal values far left."""
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.exp(-np.abs(z))
        return (np.where(z >= 0, 1, u) / (1 + u)).astype(z.dtype)


def softplus_backward_twin(x, g, beta=1.0, threshold=np.inf):
    bx = (x * x.dtype.type(beta)).astype(x.dtype)
    return np.where(bx > threshold, g, g * sigmoid_twin(bx)).astype(x.dtype)


def log_sigmoid_backward_twin(x, g):
    return (g * sigmoid_twin(-x)).astype(x.dtype)


def focal_twin(x, t, alpha, gamma, g=None):
    """torchvision's sigmoid focal loss per element (g None) or g * its derivative, in
    float64 from log-sigmoids (the formulas of elementwise_body.h)."""
    x, t = x.astype(np.float64), t.astype(np.float64)
    s, sn = sigmoid_twin(x), sigmoid_twin(-x)
    ce = -t * log_sigmoid_twin(x) - (1 - t) * log_sigmoid_twin(-x)
    m = t * sn + (1 - t) * s
    at = alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else np.ones_like(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        mg = m ** gamma
        if g is None:
            return at * ce * mg
        dm = np.where(m > 0, gamma * ce * m ** (gamma - 1), 0.0) * (2 * t - 1) * s * sn if gamma else 0.0
    return g * at * (((1 - t) * s - t * sn) * mg - dm)


def margin_twin(x, t, p, margin):
    x = x.astype(np.float64)
    h = margin - np.take_along_axis(x, t[:, None], 1) + x
    h = np.where(np.arange(x.shape[1]) == t[:, None], 0.0, np.maximum(h, 0))
    return (h ** p).sum(1) / x.shape[1]


# ----------------------------------------------------------------- oracles

mpmath.mp.prec = 200


def _mp(f, x):
    return np.array([float(f(mpmath.mpf(float(v)))) for v in x])


def _softplus_mp(v):
    return mpmath.log1p(mpmath.exp(v))


def _log_sigmoid_mp(v):
    return -mpmath.log1p(mpmath.exp(-v))


def _sigmoid_mp(v):
    return 1 / (1 + mpmath.exp(-v))


def _ulps(got, exact, dtype):
    """|got - exact| in units of the last place of exact rounded to dtype (the
    subnormal spacing at the bottom)."""
    spacing = np.maximum(np.spacing(np.abs(exact.astype(dtype))).astype(np.float64), TINY[dtype])
    return np.abs(got.astype(np.float64) - exact) / spacing


def _points(dtype):
    """Seeded random points over every regime, plus the extremes of the brief."""
    rng = np.random.default_rng(12)
    lo = -745.0 if dtype == np.float64 else -104.0
    edges = [-1e4, -88, -20, -1e-8, 0.0, 1e-8, 20, 88, 1e4, 5e-324, -5e-324, 1e-310, -1e-310, 1e-45, -1e-45,
             1e-40, -1e-40, -745, -744.4, -740, -708.5, -104, -103.3, -87.5, -87.3, -37, -33.3, -18, -2, 2,
             18, 33.3, 37, 87.3, 88.7, 89, 709.7, 710]
    x = np.concatenate([edges, rng.uniform(-40, 40, 400), rng.uniform(-1, 1, 200),
                        -np.exp(rng.uniform(-30, 6.6, 200)), np.exp(rng.uniform(-30, 3, 100)),
                        rng.uniform(lo, -30, 200)])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    return x[np.isfinite(x)]


# Measured worst case over these points: 2.0 ulps (float64, sse2) and 1.8 (float32);
# the bound leaves room for other compilers.
MAX_ULPS = 3.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, ours, exact", [
    ("softplus", lambda x: smk.softplus(x), _softplus_mp),
    ("log_sigmoid", lambda x: smk.log_sigmoid(x), _log_sigmoid_mp),
    ("softplus_backward", lambda x: smk.softplus_backward(x, np.ones_like(x)), _sigmoid_mp),
    ("log_sigmoid_backward", lambda x: smk.log_sigmoid_backward(x, np.ones_like(x)), lambda v: _sigmoid_mp(-v)),
])
def test_mpmath_oracle_in_ulps(name, ours, exact, dtype):
    x = _points(dtype)
    got = ours(x)
    assert got.dtype == dtype
    err = _ulps(got, _mp(exact, x), dtype)
    worst = int(np.argmax(err))
    assert err.max() <= MAX_ULPS, f"{name} {np.dtype(dtype)}: {err.max():.2f} ulps at x = {x[worst]!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_extremes_exactly(dtype):
    # mpmath.log1p(mpmath.exp(v)) at v = -1e4 is 0 in every float; at -88 (float64)
    # 6.0546018954011858e-39; log_sigmoid(20) = -2.0611536181902037e-09
    x = np.array([-1e4, -np.inf, np.inf, np.nan, 1e4, 0.0], dtype)
    sp, ls = smk.softplus(x), smk.log_sigmoid(x)
    np.testing.assert_array_equal(sp, np.array([0, 0, np.inf, np.nan, 1e4, np.log(2)], dtype))
    np.testing.assert_array_equal(ls, np.array([-1e4, -np.inf, 0, np.nan, 0, -np.log(2)], dtype))
    assert smk.softplus(np.float64(-88.0)) == pytest.approx(6.0546018954011858e-39, rel=2e-16)
    assert smk.log_sigmoid(np.float64(20.0)) == pytest.approx(-2.0611536181902037e-09, rel=2e-16)
    # subnormal results keep their digits: softplus(x) = exp(x) there
    sub = np.array([-740.0, -744.0])
    np.testing.assert_allclose(smk.softplus(sub), [float(mpmath.exp(-740)), float(mpmath.exp(-744))], rtol=1e-3)
    assert smk.softplus(np.float32(-100.0)) > 0  # 3.7e-44, a float32 subnormal
    # subnormal inputs: log(2) -+ x/2 rounds to log 2
    tiny = np.array([5e-324, -5e-324], dtype=np.float64)
    np.testing.assert_array_equal(smk.softplus(tiny), np.log(2.0))
    g = np.ones(4, dtype)
    xb = np.array([-np.inf, np.inf, np.nan, -800], dtype)
    np.testing.assert_array_equal(smk.softplus_backward(xb, g), np.array([0, 1, np.nan, 0], dtype))
    np.testing.assert_array_equal(smk.log_sigmoid_backward(xb, g), np.array([1, 0, np.nan, 1], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta, threshold", [(1.0, np.inf), (1.0, 20.0), (2.0, 20.0), (0.5, 3.0), (3.0, -1.0)])
def test_kernels_match_numpy_twins(dtype, beta, threshold):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 10, 3000), rng.uniform(-120, 120, 500),
                        [0.0, -0.0, np.inf, -np.inf, np.nan]]).astype(dtype)
    g = rng.normal(size=x.size).astype(dtype)
    eps = np.finfo(dtype).eps
    tol = dict(rtol=6 * eps, atol=TINY[dtype] * 8)
    y = np.empty_like(x)
    K.softplus_scaled_flat(x, y, beta=beta, threshold=threshold)
    np.testing.assert_allclose(y, softplus_twin(x, beta, threshold), **tol)
    K.softplus_backward_flat(x, g, y, beta=beta, threshold=threshold)
    np.testing.assert_allclose(y, softplus_backward_twin(x, g, beta, threshold), **tol)
    K.log_sigmoid_flat(x, y)
    np.testing.assert_allclose(y, log_sigmoid_twin(x), **tol)
    K.log_sigmoid_backward_flat(x, g, y)
    np.testing.assert_allclose(y, log_sigmoid_backward_twin(x, g), **tol)
    K.softplus_flat(x, y)
    np.testing.assert_allclose(y, softplus_twin(x), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.25, -1.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 1.5, 3.0])
def test_sigmoid_focal_kernels_match_twin(dtype, alpha, gamma):
    rng = np.random.default_rng(5)
    n = 2000
    x = np.concatenate([rng.normal(0, 6, n - 8), [0, 40, -40, 100, -100, 800, -800, 1e4]]).astype(dtype)
    t = rng.uniform(0, 1, n)
    t[: n // 2] = np.round(t[: n // 2])  # hard labels, then soft ones
    t = t.astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    loss, dx = np.empty_like(x), np.empty_like(x)
    K.sigmoid_focal_flat(x, t, loss, alpha=alpha, gamma=gamma)
    K.sigmoid_focal_backward_flat(x, t, g, dx, alpha=alpha, gamma=gamma)
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(loss, focal_twin(x, t, alpha, gamma), rtol=16 * eps, atol=TINY[dtype] * 8)
    want = focal_twin(x, t, alpha, gamma, g.astype(np.float64))
    hard = slice(0, n // 2)
    np.testing.assert_allclose(dx[hard], want[hard], rtol=32 * eps, atol=TINY[dtype] * 8)
    # soft labels: s - t cancels where s ~ t; the error is ulps of the terms' size
    scale = np.abs(g) * (1 + np.abs(focal_twin(x, t, -1.0, 0.0)))
    assert np.all(np.abs(dx - want) <= 64 * eps * scale), np.max(np.abs(dx - want) / scale)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(dx))


def test_sigmoid_focal_large_logits_do_not_cancel():
    # x = 40, t = 0: ce = softplus(40) = 40 + 4.2e-18, 1 - p_t = s(40), loss = 0.75 * 40 * s(40)^2
    for dtype in DTYPES:
        x, t = np.array([40.0, -30.0], dtype), np.array([0.0, 1.0], dtype)
        loss = np.empty_like(x)
        K.sigmoid_focal_flat(x, t, loss, alpha=0.25, gamma=2.0)
        s40 = float(_sigmoid_mp(40))
        exact = [0.75 * float(_softplus_mp(40)) * s40 ** 2, 0.25 * float(_softplus_mp(30)) * s40 ** 0 *
                 float(_sigmoid_mp(30)) ** 2]
        np.testing.assert_allclose(loss, exact, rtol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_kernels_match_twin_and_torch(dtype, p):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 300)).astype(dtype)
    t = rng.integers(0, 300, 40)
    x[3, t[3]] = 50.0  # no active hinge: loss 0, gradient 0
    g = rng.normal(size=40)
    loss = K.multi_margin_rows(x, t, margin=0.7, p=p)
    np.testing.assert_allclose(loss, margin_twin(x, t, p, 0.7), rtol=1e-13 if dtype == np.float64 else 2e-6)
    assert loss[3] == 0
    dx = K.multi_margin_backward_rows(x, t, g, margin=0.7, p=p)
    assert dx.dtype == dtype
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    torch.nn.functional.multi_margin_loss(xt, torch.from_numpy(t), p=p, margin=0.7, reduction="none").backward(
        torch.from_numpy(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12 if dtype == np.float64 else 2e-5,
                               atol=1e-15 if dtype == np.float64 else 1e-7)
    np.testing.assert_array_equal(dx[3], 0)


def test_multi_margin_kernel_bad_label_gives_nan_and_bad_p_raises():
    x = np.zeros((2, 3))
    t = np.array([0, 3])
    loss = K.multi_margin_rows(x, t, margin=1.0, p=1)
    assert loss[0] == pytest.approx(2 / 3) and np.isnan(loss[1])
    dx = K.multi_margin_backward_rows(x, t, np.ones(2), margin=1.0, p=1)
    assert np.all(np.isnan(dx[1])) and np.all(np.isfinite(dx[0]))
    with pytest.raises(ValueError, match="p must be 1 or 2, got 3"):
        K.multi_margin_rows(x, np.array([0, 1]), margin=1.0, p=3)
    # NaN in a row is not dropped (torch's max(0, NaN) drops it)
    x[0, 1] = np.nan
    assert np.isnan(K.multi_margin_rows(x, np.array([0, 1]), margin=1.0, p=2)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_against_torch(dtype):
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(0, 8, 4000), [-100, -30, 30, 100]]).astype(dtype)
    g = rng.normal(size=x.size).astype(dtype)
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    eps = float(np.finfo(dtype).eps)
    tol = dict(rtol=8 * eps, atol=TINY[dtype] * 8)
    for beta, th in [(1.0, 20.0), (2.0, 20.0), (0.5, 5.0)]:
        np.testing.assert_allclose(smk.softplus(x, beta=beta, threshold=th),
                                   torch.nn.functional.softplus(xt, beta, th).numpy(), **tol)
        np.testing.assert_allclose(smk.softplus_backward(x, g, beta=beta, threshold=th),
                                   torch.ops.aten.softplus_backward(gt, xt, beta, th).numpy(), **tol)
    np.testing.assert_allclose(smk.log_sigmoid(x), torch.nn.functional.logsigmoid(xt).numpy(), **tol)
    # torch's float32 sigmoid(-100) is 0; ours keeps the subnormal 3.7e-44: compare in float64
    ref = (gt.double() * torch.sigmoid(-xt.double())).numpy().astype(dtype)
    np.testing.assert_allclose(smk.log_sigmoid_backward(x, g), ref, rtol=8 * eps, atol=TINY[dtype] * 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_dtypes_are_kept(dtype):
    x = np.linspace(-5, 5, 11).astype(dtype)
    for y in (smk.softplus(x), smk.softplus(x, beta=2.0, threshold=4.0), smk.log_sigmoid(x),
              smk.softplus_backward(x, x), smk.log_sigmoid_backward(x, x)):
        assert y.dtype == dtype
    # float32 with float64 grad computes in float64, returns float64
    y = smk.softplus_backward(x.astype(np.float32), x.astype(np.float64))
    assert y.dtype == np.float64


def test_in_place_strided_and_threads():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 10, 200_001)
    for dtype in DTYPES:
        x = base.astype(dtype)
        want = np.empty_like(x)
        K.softplus_scaled_flat(x, want, beta=1.5, threshold=7.0, nthreads=1)
        np.testing.assert_allclose(want, softplus_twin(x, 1.5, 7.0), rtol=6 * np.finfo(dtype).eps)
        want_b = np.empty_like(x)
        K.log_sigmoid_backward_flat(x, x, want_b, nthreads=1)
        y = x.copy()
        S.softplus_scaled(y, y, y.size, 1.5, 7.0, 1)  # out may alias x
        np.testing.assert_array_equal(y, want)
        y = x.copy()
        S.log_sigmoid_backward(x, y, y, y.size, 1)  # and dx may alias g
        np.testing.assert_array_equal(y, want_b)
        for nt in (2, 3):  # the same bits on any number of threads
            out = np.empty_like(x)
            K.softplus_scaled_flat(x, out, beta=1.5, threshold=7.0, nthreads=nt)
            np.testing.assert_array_equal(out, want)
            K.log_sigmoid_backward_flat(x, x, out, nthreads=nt)
            np.testing.assert_array_equal(out, want_b)
        xs = x[::3]
        np.testing.assert_array_equal(smk.softplus(xs, beta=1.5, threshold=7.0), want[::3])
        ro = x.copy()
        ro.flags.writeable = False
        np.testing.assert_array_equal(smk.log_sigmoid(ro), smk.log_sigmoid(x.copy()))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="beta must be a finite number > 0, got 0"):
        smk.softplus_backward([1.0], [1.0], beta=0)
    with pytest.raises(ValueError, match="threshold must be a number or None"):
        smk.softplus([1.0], beta=2.0, threshold=float("nan"))
    with pytest.raises(ValueError, match="grad_output has shape"):
        smk.log_sigmoid_backward([1.0, 2.0], [1.0])
    with pytest.raises(TypeError):
        S.softplus_backward(np.zeros(3), np.zeros(3, np.float32), np.zeros(3), 3, 1.0, 20.0, 1)


@settings(max_examples=60)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_properties_on_any_floats(data, dtype):
    """For any floats (subnormals, huge, +-inf, NaN): log_sigmoid(x) is -softplus(-x) to
    the bit, softplus(x) >= max(x, 0), softplus(x) - softplus(-x) = x, and the two
    backward passes at g = 1 add up to sigmoid(x) + sigmoid(-x) = 1."""
    width = 64 if dtype == np.float64 else 32
    x = data.draw(hnp.arrays(dtype, st.integers(1, 40), elements=st.floats(width=width)))
    sp, ls = smk.softplus(x), smk.log_sigmoid(x)
    np.testing.assert_array_equal(ls, -smk.softplus(-x))
    fin = np.isfinite(x)
    assert np.all(sp[fin] >= np.maximum(x[fin], 0)) and np.all(sp[fin] >= 0)
    assert np.all(np.isnan(sp[np.isnan(x)]))
    eps = float(np.finfo(dtype).eps)
    with np.errstate(over="ignore", invalid="ignore"):
        diff = sp - smk.softplus(-x)
    np.testing.assert_allclose(diff[fin], x[fin], rtol=4 * eps, atol=2 * eps)
    one = np.ones_like(x)
    total = smk.softplus_backward(x, one) + smk.log_sigmoid_backward(x, one)
    np.testing.assert_allclose(total[~np.isnan(x)], 1.0, rtol=2 * eps)
