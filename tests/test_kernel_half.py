"""bfloat16 and float16 in the C kernels: softmax, log_softmax and integer-label
cross-entropy (forward and fused forward-backward) read 16-bit logits, compute in
float32 and write 16-bit results (src/softmaxkit/_kernels/half_body.h).

The claim: each result is within 1 ulp (of the 16-bit format) of the 16-bit rounding
of the float32 result, i.e. of the float32 kernel run on the widened input. bfloat16
travels as uint16 views of its bits (NumPy has no bfloat16), float16 as np.float16.
The NumPy twins below (widening, rounding to nearest even) are checked against
NumPy's and PyTorch's own casts.
"""
from __future__ import annotations

import numpy as np
import pytest

from losses_reference import ce_hard_ref
from softmaxkit._kernels import _losses as L
from softmaxkit._kernels import _softmax as S

FORMATS = ["bf16", "f16"]


# ------------------------------------------------------------------ NumPy twins


def widen(h: np.ndarray, fmt: str) -> np.ndarray:
    """16-bit values (uint16 bits for bf16, float16) -> float32, exactly."""
    if fmt == "bf16":
        return (h.astype(np.uint32) << 16).view(np.float32)
    return h.astype(np.float32)


def narrow(f: np.ndarray, fmt: str) -> np.ndarray:
    """float32 -> 16 bits, round to nearest even (NaN stays NaN)."""
    f = np.asarray(f, np.float32)
    if fmt == "f16":
        with np.errstate(over="ignore", invalid="ignore"):
            return f.astype(np.float16)
    u = f.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f), ((u >> 16) | 0x40).astype(np.uint16), r)


def bits(h: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(h).view(np.uint16)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in 16-bit ulps between two arrays of 16-bit values (both formats
    order their finite values as sign-magnitude integers)."""
    def ordered(h):
        u = bits(h).astype(np.int64)
        return np.where(u & 0x8000, -(u & 0x7FFF), u)
    return np.abs(ordered(a) - ordered(b))


def _nan(h, fmt):
    return np.isnan(widen(h, fmt))


def test_twins_match_numpy_and_torch_casts():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    f = np.concatenate([
        rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        (rng.normal(size=100_000) * 10.0 ** rng.integers(-8, 6, size=100_000)).astype(np.float32),
        np.float32([65504, 65520, 1e-8, 3e-8, -0.0, np.inf, -np.inf, 3.4e38]),
    ])
    ok = ~np.isnan(f)
    want = torch.from_numpy(f).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(narrow(f, "bf16")[ok], want[ok])
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    np.testing.assert_array_equal(widen(h, "bf16"), torch.from_numpy(h.view(np.int16)).view(torch.bfloat16)
                                  .float().numpy())


# ------------------------------------------------------------------ inputs


def _logits(fmt, rows=40, cols=300, scale=4.0, seed=1):
    rng = np.random.default_rng(seed)
    x32 = (rng.normal(size=(rows, cols)) * scale).astype(np.float32)
    x32[1, :5] = x32[1].max()        # tied max
    x32[2, 7] = -np.inf              # masked entry
    x32[3, :] = rng.normal(size=cols) * 30  # wide row: subnormal probabilities in f32
    x32[4, :] = 1e-3 * rng.normal(size=cols)  # nearly uniform
    return narrow(x32, fmt)


def _f32_softmax(x32, inv_t, log):
    y = np.empty_like(x32)
    (S.log_softmax if log else S.softmax)(x32, y, *x32.shape, inv_t, 1)
    return y


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("inv_t", [1.0, 0.25, 3.0])
def test_softmax_within_one_ulp_of_rounded_float32(fmt, log, inv_t):
    x = _logits(fmt)
    y = np.empty_like(x)
    (S.log_softmax if log else S.softmax)(x, y, *x.shape, inv_t, 1)
    want = narrow(_f32_softmax(widen(x, fmt), inv_t, log), fmt)
    assert not _nan(want, fmt).any()
    d = ulp_distance(y, want)
    assert d.max() <= 1, (d.max(), np.unravel_index(d.argmax(), d.shape))
    assert (d == 0).mean() > 0.95  # mostly the same bits: the kernels compute the same float32 values
    if not log:  # rows still sum to 1 to 16-bit precision
        eps = 2.0**-8 if fmt == "bf16" else 2.0**-11
        np.testing.assert_allclose(widen(y, fmt).astype(np.float64).sum(axis=1), 1.0, atol=x.shape[1] * eps / 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_softmax_rows_that_are_not_finite(fmt):
    inf, nan = np.inf, np.nan
    x32 = np.array([[1.0, nan, 0.0, 2.0], [-inf, -inf, -inf, -inf], [inf, 0.0, inf, 5.0], [0.0, -inf, 0.0, 0.0]],
                   np.float32)
    x = narrow(x32, fmt)
    y = np.empty_like(x)
    S.softmax(x, y, 4, 4, 1.0, 1)
    w = widen(y, fmt)
    assert np.isnan(w[0]).all()
    want = np.float32([[0, 0, 0, 0], [0.5, 0, 0.5, 0], [1 / 3, 0, 1 / 3, 1 / 3]])
    np.testing.assert_array_equal(w[1:], widen(narrow(want, fmt), fmt))
    S.log_softmax(x, y, 4, 4, 1.0, 1)
    w = widen(y, fmt)
    assert np.isnan(w[0]).all()
    assert (w[1] == -np.inf).all()
    np.testing.assert_array_equal(w[2], widen(narrow(np.float32([-np.log(2), -inf, -np.log(2), -inf]), fmt), fmt))


def _ce16(x, t, fmt, w=None, eps=0.0, ignore=None, gs=None, grad=True):
    r, c = x.shape
    loss, roww = np.empty(r), np.empty(r)
    g = np.empty_like(x) if grad else None
    L.ce_hard(x, t, w, 0 if ignore is None else ignore, ignore is not None, eps, loss, roww, gs, 1.0, g, r, c, 1)
    return loss, roww, g


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kw", [
    dict(),
    dict(eps=0.1),
    dict(weighted=True, eps=0.2, ignore=3),
    dict(weighted=True, per_row=True),
])
def test_cross_entropy_within_one_ulp_of_rounded_float32(fmt, kw):
    rng = np.random.default_rng(5)
    x = _logits(fmt, rows=33, cols=257)
    r, c = x.shape
    t = rng.integers(0, c, size=r).astype(np.int64)
    t[5] = 3
    w = rng.uniform(0.5, 2.0, size=c).astype(np.float32) if kw.get("weighted") else None
    gs = rng.uniform(0.1, 2.0, size=r) if kw.get("per_row") else None
    eps, ignore = kw.get("eps", 0.0), kw.get("ignore")
    loss, roww, g = _ce16(x, t, fmt, w, eps, ignore, gs)
    # the float32 kernel on the widened logits
    x32 = widen(x, fmt)
    loss32, roww32, g32 = np.empty(r), np.empty(r), np.empty_like(x32)
    L.ce_hard(x32, t, w, 0 if ignore is None else ignore, ignore is not None, eps, loss32, roww32, gs, 1.0, g32,
              r, c, 1)
    finite = np.isfinite(loss32)
    assert finite.sum() >= r - 1
    np.testing.assert_allclose(loss[finite], loss32[finite], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(roww, roww32)
    d = ulp_distance(g, narrow(g32, fmt))
    # the float32 kernel flushes exps below float32's normal range to 0 (losses.h);
    # the 16-bit ones under AVX-512 keep them, as bfloat16 subnormals, nearer the
    # exact value: those entries are compared with the float64 twin instead
    kept = (g32 == 0) & (widen(g, fmt) != 0)
    assert d[~kept].max() <= 1, (d.max(), np.unravel_index(d.argmax(), d.shape))
    if kept.any():
        exact = ce_hard_ref(widen(x, fmt).astype(np.float64), t, w, ignore, eps, 1.0 if gs is None else gs)[2]
        assert (ulp_distance(g, narrow(exact.astype(np.float32), fmt))[kept] <= 1).all()
    # the forward alone gives the same losses
    lf, rf, none = _ce16(x, t, fmt, w, eps, ignore, gs, grad=False)
    assert none is None
    np.testing.assert_array_equal(lf, loss)
    np.testing.assert_array_equal(rf, roww)
    if ignore is not None:
        assert loss[5] == 0 and roww[5] == 0 and (bits(g[5]) == 0).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_cross_entropy_against_float64_twin(fmt):
    # loss = logsumexp(z) - z[t] in float64 from the widened logits; gradient = softmax - onehot
    rng = np.random.default_rng(9)
    x = _logits(fmt, rows=16, cols=50, scale=3.0)
    t = rng.integers(0, 50, size=16).astype(np.int64)
    loss, _, g = _ce16(x, t, fmt)
    z = widen(x, fmt).astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(loss, lse - z[np.arange(16), t], rtol=1e-6)
    p = np.exp(z - lse[:, None])
    p[np.arange(16), t] -= 1
    tol = 2.0**-8 if fmt == "bf16" else 2.0**-10
    np.testing.assert_allclose(widen(g, fmt), p, rtol=tol, atol=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cross_entropy_nonfinite_rows_and_bad_labels(fmt):
    x = narrow(np.float32([[0.0, np.nan, 1.0], [np.inf, 0.0, np.inf], [1.0, 2.0, 3.0]]), fmt)
    loss, roww, g = _ce16(x, np.array([0, 0, 7], np.int64), fmt)
    assert np.isnan(loss[0]) and _nan(g[0], fmt).all()
    np.testing.assert_allclose(loss[1], np.log(2), rtol=1e-6)
    np.testing.assert_array_equal(widen(g[1], fmt), [-0.5, 0.0, 0.5])
    assert np.isnan(loss[2]) and roww[2] == 0 and _nan(g[2], fmt).all()  # label 7 not in [0, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_16_bit_kernels_on_misaligned_buffers_and_threads(fmt):
    from test_kernel_seam import misaligned

    x = _logits(fmt, rows=64, cols=700)
    r, c = x.shape
    y = np.empty_like(x)
    S.softmax(x, y, r, c, 1.0, 1)
    ym = misaligned(np.zeros_like(x))
    S.softmax(misaligned(x), ym, r, c, 1.0, 1)
    np.testing.assert_array_equal(bits(ym), bits(y))
    y2 = np.empty_like(x)
    S.softmax(x, y2, r, c, 1.0, 2)
    np.testing.assert_array_equal(bits(y2), bits(y))  # same bits at any thread count
    t = np.arange(r, dtype=np.int64) % c
    loss, _, g = _ce16(x, t, fmt)
    lm, gm = np.empty(r), misaligned(np.zeros_like(x))
    L.ce_hard(misaligned(x), misaligned(t), None, 0, False, 0.0, lm, np.empty(r), None, 1.0, gm, r, c, 2)
    np.testing.assert_array_equal(lm, loss)
    np.testing.assert_array_equal(bits(gm), bits(g))
    # the gradient written over the logits themselves (the seam allows grad_out=x)
    xi = x.copy()
    li = np.empty(r)
    L.ce_hard(xi, t, None, 0, False, 0.0, li, np.empty(r), None, 1.0, xi, r, c, 2)
    np.testing.assert_array_equal(li, loss)
    np.testing.assert_array_equal(bits(xi), bits(g))


def test_16_bit_buffers_where_they_are_not_supported():
    x = np.zeros((2, 3), np.float16)
    with pytest.raises(TypeError, match="'x' has the wrong element type"):
        S.logsumexp(x, np.zeros(2, np.float16), 2, 3, 1)
    with pytest.raises(TypeError, match="'out' has the wrong element type"):
        S.softmax(x, np.zeros((2, 3), np.uint16), 2, 3, 1.0, 1)
    with pytest.raises(TypeError, match="'weight' has the wrong element type"):
        L.ce_hard(x, np.zeros(2, np.int64), np.ones(3, np.float16), 0, False, 0.0, np.empty(2), np.empty(2),
                  None, 1.0, None, 2, 3, 1)
    with pytest.raises(TypeError, match="'x' has the wrong element type"):
        L.ce_soft(x, x, None, 0.0, np.empty(2), None, 1.0, None, 2, 3, 1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_work_buffer_gives_the_same_bits(fmt):
    # softmax and the cross-entropy gradient keep each row's float32 exps in `work`
    # (one exp per element fewer); they are the same floats as the ones recomputed
    x = _logits(fmt, rows=50, cols=333)
    x[7] = narrow(np.float32(np.linspace(-200, 0, 333)), fmt)  # the exact-exp path
    r, c = x.shape
    for nt in (1, 2):
        y, yw = np.empty_like(x), np.empty_like(x)
        S.softmax(x, y, r, c, 0.7, nt)
        S.softmax(x, yw, r, c, 0.7, nt, np.full(nt * c, np.nan, np.float32))
        np.testing.assert_array_equal(bits(yw), bits(y))
        t = (np.arange(r, dtype=np.int64) * 7) % c
        w = np.linspace(0.5, 2, c).astype(np.float32)
        for kw in (dict(w=None, eps=0.0), dict(w=w, eps=0.1), dict(w=None, eps=0.2)):
            loss, _, g = _ce16(x, t, fmt, kw["w"], kw["eps"])
            lw, gw = np.empty(r), np.empty_like(x)
            L.ce_hard(x, t, kw["w"], 0, False, kw["eps"], lw, np.empty(r), None, 1.0, gw, r, c, nt,
                      np.full(nt * c, np.nan, np.float32))
            np.testing.assert_array_equal(lw, loss)
            np.testing.assert_array_equal(bits(gw), bits(g))


def test_work_buffer_checks():
    x = np.zeros((4, 5), np.float16)
    with pytest.raises(ValueError, match="'work' holds 9 items, 10 needed"):
        S.softmax(x, np.empty_like(x), 4, 5, 1.0, 2, np.empty(9, np.float32))
    S.softmax(x, np.empty_like(x), 4, 5, 1.0, 9, np.empty(20, np.float32))  # threads <= rows
    with pytest.raises(TypeError, match="'work' has the wrong element type"):
        S.softmax(x, np.empty_like(x), 4, 5, 1.0, 1, np.empty(5, np.float64))
    with pytest.raises(TypeError, match="'work' is for 16-bit"):
        S.log_softmax(x, np.empty_like(x), 4, 5, 1.0, 1, np.empty(5, np.float32))
    x32 = np.zeros((4, 5), np.float32)
    with pytest.raises(TypeError, match="'work' is for 16-bit"):
        S.softmax(x32, np.empty_like(x32), 4, 5, 1.0, 1, np.empty(5, np.float32))
    with pytest.raises(TypeError, match="'work' is for 16-bit"):
        L.ce_hard(x32, np.zeros(4, np.int64), None, 0, False, 0.0, np.empty(4), np.empty(4), None, 1.0,
                  np.empty_like(x32), 4, 5, 1, np.empty(5, np.float32))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kw", [dict(), dict(eps=0.1, weighted=True, ignore=3), dict(per_row=True)])
def test_gradient_from_the_forward_logsumexp(fmt, kw):
    # ce_hard's lse, then ce_hard_grad_lse: one pass per row, the fused kernel's
    # gradient to 1 ulp (almost always the same bits) in float32's normal range (below
    # it the fused kernel flushes to 0), and within 1 ulp of the 16-bit rounding of the
    # float32 kernel's gradient
    rng = np.random.default_rng(11)
    x = _logits(fmt, rows=40, cols=300)
    x[6, 9] = narrow(np.float32([np.nan]), fmt)[0]  # a NaN row: lse NaN, the full path
    r, c = x.shape
    t = rng.integers(0, c, size=r).astype(np.int64)
    t[5] = 3
    w = rng.uniform(0.5, 2.0, size=c).astype(np.float32) if kw.get("weighted") else None
    gs = rng.uniform(0.1, 2.0, size=r) if kw.get("per_row") else None
    eps, ignore = kw.get("eps", 0.0), kw.get("ignore")
    args = (0 if ignore is None else ignore, ignore is not None, eps)
    loss, roww, lse, g = np.empty(r), np.empty(r), np.empty(r), np.empty_like(x)
    L.ce_hard(x, t, w, *args, loss, roww, gs, 0.5, g, r, c, 1, None, lse)
    lf, lse_f = np.empty(r), np.empty(r)
    L.ce_hard(x, t, w, *args, lf, np.empty(r), None, 1.0, None, r, c, 2, None, lse_f)  # forward alone
    np.testing.assert_array_equal(lf, _ce16(x, t, fmt, w, eps, ignore, None, grad=False)[0])
    np.testing.assert_array_equal(lse_f, lse)
    assert np.isnan(lse[6]) and (ignore is None or lse[5] == np.inf)
    z = widen(x, fmt).astype(np.float64)
    ok = np.isfinite(lse)
    np.testing.assert_allclose(lse[ok], np.logaddexp.reduce(z[ok], axis=1), rtol=1e-6)
    g2 = np.empty_like(x)
    L.ce_hard_grad_lse(x, t, w, *args, lse, gs, 0.5, g2, r, c, 2)
    normal = np.abs(widen(g, fmt)) >= 2.0**-126
    d = ulp_distance(g2, g)
    assert d[normal].max() <= 1 and (d[normal] == 0).mean() > 0.99
    x32 = widen(x, fmt)
    g32 = np.empty_like(x32)
    L.ce_hard(x32, t, w, *args, np.empty(r), np.empty(r), gs, 0.5, g32, r, c, 1)
    d = ulp_distance(g2, narrow(g32, fmt))
    assert d[np.abs(g32) >= 2.0**-126].max() <= 1
    assert _nan(g2[6], fmt).all()


def test_lse_arguments_are_checked():
    x = np.zeros((2, 3), np.float32)
    args = (np.zeros(2, np.int64), None, 0, False, 0.0)
    with pytest.raises(TypeError, match="'lse' is for 16-bit"):
        L.ce_hard(x, *args, np.empty(2), np.empty(2), None, 1.0, None, 2, 3, 1, None, np.empty(2))
    with pytest.raises(TypeError, match="takes 16-bit 'x' only"):
        L.ce_hard_grad_lse(x, *args, np.zeros(2), None, 1.0, np.empty_like(x), 2, 3, 1)
    h = x.astype(np.float16)
    with pytest.raises(ValueError, match="'lse' holds 1 items, 2 needed"):
        L.ce_hard_grad_lse(h, *args, np.zeros(1), None, 1.0, np.empty_like(h), 2, 3, 1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("grad", [False, True])
def test_results_below_float32_normal_range_keep_their_bits(fmt, grad):
    # the avx512bf16 variant narrows with vcvtneps2bf16, which reads float32
    # subnormals as 0; a block holding one is rounded portably. Probabilities from
    # 1e-38 down to 1e-45 in every position of 16-wide blocks, and the gradient of
    # the same row from its logsumexp (exact there too under AVX-512's vscalefps)
    lo = np.float32(-87.0) - np.arange(48, dtype=np.float32) * np.float32(0.25)
    x = narrow(np.concatenate([[0.0], lo, lo[::-1], [-2.0] * 30]).astype(np.float32)[None, :], fmt)
    z = widen(x, fmt).astype(np.float64)
    p = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))
    if grad:
        t = np.zeros(1, np.int64)
        lse = np.empty(1)
        L.ce_hard(x, t, None, 0, False, 0.0, np.empty(1), np.empty(1), None, 1.0, None, 1, x.shape[1], 1, None, lse)
        y = np.empty_like(x)
        L.ce_hard_grad_lse(x, t, None, 0, False, 0.0, lse, None, 1.0, y, 1, x.shape[1], 1)
        p[0, 0] -= 1.0
    else:
        y = np.empty_like(x)
        S.softmax(x, y, *x.shape, 1.0, 1, np.empty(x.shape[1], np.float32))
    want = narrow(p.astype(np.float32), fmt)
    tiny = (np.abs(p) < 2.0**-126) & (p != 0)
    assert tiny.sum() >= 40
    assert ulp_distance(y, want).max() <= 1
    if fmt == "bf16":  # bfloat16 subnormals reach 2^-133; float16 has none this small
        assert (widen(y, fmt)[tiny & (np.abs(p) >= 2.0**-133)] != 0).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_streamed_output_gives_the_same_bits(fmt):
    # Calls whose output reaches HALF_STREAM_BYTES write it with non-temporal stores
    # (AVX-512 variants; a row's head up to a 64-byte line and its tail as plain
    # stores): the same bits as the same rows run in blocks below the threshold, for
    # every output pass, with an output that starts off a 64-byte line (a 2-byte
    # aligned view, which the seam passes as it is) and rows that start anywhere.
    cols = 1030
    rows = S.HALF_STREAM_BYTES // (2 * cols) + 3
    assert rows * cols * 2 >= S.HALF_STREAM_BYTES
    rng = np.random.default_rng(12)
    x = narrow((rng.normal(size=(rows, cols)) * 3).astype(np.float32), fmt)
    x[5, 3] = narrow(np.float32(np.nan), fmt)[()]
    t = rng.integers(0, cols, size=rows).astype(np.int64)
    w = rng.uniform(0.5, 2, size=cols).astype(np.float32)
    raw = np.empty(rows * cols + 64, x.dtype)
    y = raw[3:3 + rows * cols].reshape(rows, cols)  # 6 bytes past the allocation
    assert y.flags.aligned and y.ctypes.data % 64 != 0
    blocks = [slice(i, i + 5000) for i in range(0, rows, 5000)]

    def run(fn, out, *args):
        """fn on the whole array (streamed) and on blocks of rows (not); returns both."""
        fn(x, out, rows, cols, *args)
        whole = out.copy()
        for b in blocks:
            xb = x[b]
            fn(xb, out[b], xb.shape[0], cols, *args)
        return whole, out

    work = np.empty(2 * cols, np.float32)
    for name, fn, args in [
        ("softmax", S.softmax, (0.7, 2, work)),
        ("softmax recomputed", S.softmax, (1.0, 2)),
        ("log_softmax", S.log_softmax, (1.3, 2)),
    ]:
        whole, blocked = run(fn, y, *args)
        np.testing.assert_array_equal(bits(whole), bits(blocked), err_msg=name)

    for w_, eps in [(None, 0.0), (w, 0.1)]:
        for with_work in (True, False):
            lw = np.empty(rows)
            whole = np.empty_like(y)
            L.ce_hard(x, t, w_, 0, False, eps, lw, np.empty(rows), None, 0.25, whole, rows, cols, 2,
                      work if with_work else None, np.empty(rows))
            for b in blocks:
                xb = x[b]
                r = xb.shape[0]
                L.ce_hard(xb, t[b], w_, 0, False, eps, np.empty(r), np.empty(r), None, 0.25, y[b], r, cols, 2,
                          work if with_work else None, np.empty(r))
            np.testing.assert_array_equal(bits(whole), bits(y), err_msg=f"ce_hard {w_ is None} {eps} {with_work}")
        lse = np.empty(rows)
        L.ce_hard(x, t, w_, 0, False, eps, np.empty(rows), np.empty(rows), None, 1.0, None, rows, cols, 2, None, lse)
        whole = np.empty_like(y)
        L.ce_hard_grad_lse(x, t, w_, 0, False, eps, lse, None, 0.25, whole, rows, cols, 2)
        for b in blocks:
            xb = x[b]
            L.ce_hard_grad_lse(xb, t[b], w_, 0, False, eps, lse[b], None, 0.25, y[b], xb.shape[0], cols, 2)
        np.testing.assert_array_equal(bits(whole), bits(y), err_msg=f"ce_hard_grad_lse {w_ is None} {eps}")


# ------------------------------------------------------------------ the cheaper exp


def _fit_exp2(deg: int = 5) -> np.ndarray:
    """How h_exp2_fast's coefficients were found: 2^f on [-1/2, 1/2] fitted in
    relative error by least squares on Chebyshev nodes, reweighted towards the
    largest errors until the fit is near minimax."""
    f = 0.5 * np.cos(np.pi * (np.arange(4000) + 0.5) / 4000)
    y = 2.0 ** f
    a = np.vander(f, deg + 1, increasing=True) / y[:, None]
    wt = np.ones_like(f)
    for _ in range(200):
        c, *_ = np.linalg.lstsq(a * wt[:, None], wt, rcond=None)
        err = np.abs(a @ c - 1.0)
        wt = wt * (1 + 50 * err / err.max())
        wt /= wt.mean()
    return c.astype(np.float32)


def _exp2_fast_coefficients() -> np.ndarray:
    """The coefficients as half_body.h writes them (hex floats, highest degree first)."""
    import pathlib
    import re

    src = (pathlib.Path(__file__).parents[1] / "src/softmaxkit/_kernels/half_body.h").read_text()
    body = src[src.index("static inline __m512 h_exp2_fast"):]
    body = body[:body.index("return")]
    hexes = re.findall(r"_mm512_set1_ps\((0x[0-9a-f.]+p[-+]?\d+)f\)", body)
    return np.float32([float.fromhex(h) for h in hexes[::-1]])  # constant term first


def _horner_f32(c: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The polynomial evaluated as the kernel does: float32 FMAs (emulated in float64,
    whose product of two float32 is exact)."""
    p = np.full_like(f, c[-1])
    for k in range(len(c) - 2, -1, -1):
        p = (p.astype(np.float64) * f + c[k]).astype(np.float32)
    return p


def test_cheaper_exp_polynomial_error():
    c = _exp2_fast_coefficients()
    assert len(c) == 6
    f = np.linspace(-0.5, 0.5, 400_001).astype(np.float32)
    for coef in (c, _fit_exp2()):
        rel = np.abs(_horner_f32(coef, f).astype(np.float64) / 2.0 ** f.astype(np.float64) - 1.0)
        assert rel.max() < 2.0 ** -21.9, np.log2(rel.max())
    # the transcription is the fit, to a few float32 ulps per coefficient
    np.testing.assert_allclose(c, _fit_exp2(), rtol=2e-6, atol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_softmax_with_the_cheaper_exp_is_almost_always_the_rounded_float32(fmt):
    # softmax (and the gradient from lse without smoothing) take h_exp2_fast's exps
    # under AVX-512: within 1 ulp of the 16-bit rounding of the float32 result, and
    # that rounding itself for all but a few in 10^4 values
    rng = np.random.default_rng(21)
    x = narrow((rng.normal(size=(256, 1000)) * 3).astype(np.float32), fmt)
    r, c = x.shape
    for inv_t in (1.0, 0.3):
        want = narrow(_f32_softmax(widen(x, fmt), inv_t, False), fmt)
        y = np.empty_like(x)
        S.softmax(x, y, r, c, inv_t, 1, np.empty(c, np.float32))
        d = ulp_distance(y, want)
        assert d.max() <= 1
        assert (d > 0).mean() < 1e-3, (d > 0).mean()
    t = rng.integers(0, c, size=r).astype(np.int64)
    lse = np.empty(r)
    L.ce_hard(x, t, None, 0, False, 0.0, np.empty(r), np.empty(r), None, 1.0, None, r, c, 1, None, lse)
    g = np.empty_like(x)
    L.ce_hard_grad_lse(x, t, None, 0, False, 0.0, lse, None, 0.5, g, r, c, 1)
    x32 = widen(x, fmt)
    g32 = np.empty_like(x32)
    S.softmax(x32, g32, r, c, 1.0, 1)
    g32 *= np.float32(0.5)
    g32[np.arange(r), t] -= np.float32(0.5)
    d = ulp_distance(g, narrow(g32, fmt))
    assert d.max() <= 1
    assert (d > 0).mean() < 1e-3, (d > 0).mean()
