"""bfloat16 and float16 through the public API: softmaxkit's NumPy functions on
float16 and ``ml_dtypes.bfloat16`` arrays, and softmaxkit.torch on CPU bfloat16 /
float16 tensors (docs/torch.md, issue 10).

The claim checked everywhere: the result keeps the input's dtype and is within 1 ulp
(of that 16-bit format) of the 16-bit rounding of the float32 result, i.e. of the
float32 function on the widened input, rounded once (the 16-bit kernels compute in
float32: src/softmaxkit/_kernels/half_body.h). Cases the 16-bit kernels do not take
(soft labels, z_loss, softcap, extreme temperatures, probabilities) compute in
float32 and round: the same claim holds exactly.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import softmaxkit as smk
from test_kernel_half import ulp_distance



def _bf16():
    return pytest.importorskip("ml_dtypes").bfloat16


def _dtype(fmt):
    return np.float16 if fmt == "f16" else _bf16()


FORMATS = ["bf16", "f16"]


def _logits(fmt, shape=(37, 129), scale=4.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * scale).astype(np.float32)
    flat = x.reshape(-1, shape[-1])
    flat[1, :4] = flat[1].max()      # tied max
    flat[2, 5] = -np.inf             # a masked entry
    flat[3] = rng.normal(size=shape[-1]) * 30  # a wide row
    return x.astype(_dtype(fmt))


def _close(got, want32, fmt):
    """got (16-bit) within 1 ulp of want32 (float32) rounded to got's dtype."""
    assert got.dtype == np.dtype(_dtype(fmt)), got.dtype
    want = np.asarray(want32, np.float32).astype(got.dtype)
    assert np.array_equal(np.isnan(got.astype(np.float32)), np.isnan(want.astype(np.float32)))
    d = ulp_distance(np.where(np.isnan(want.astype(np.float32)), 0, got).astype(got.dtype),
                     np.where(np.isnan(want.astype(np.float32)), 0, want).astype(got.dtype))
    assert d.max() <= 1, (d.max(), np.unravel_index(d.argmax(), d.shape))
    return d


def test_softmaxkit_imports_without_ml_dtypes():
    code = ("import sys; sys.modules['ml_dtypes'] = None; import numpy as np, softmaxkit as smk; "
            "print(smk.softmax(np.float16([1, 2]))); print(smk.cross_entropy(np.float16([[1, 2]]), [0]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "0.269 0.731" in r.stdout and "1.313" in r.stdout


def test_bfloat16_recognised_by_name_not_by_kind():
    from softmaxkit._validation import compute_dtype, is_bfloat16, is_half

    bf = np.dtype(_bf16())
    assert is_bfloat16(bf) and is_half(bf) and is_half(np.float16)
    assert not is_bfloat16(np.uint16) and not is_half(np.uint16) and not is_half(np.float32)
    assert not is_bfloat16(np.dtype("V2"))
    assert compute_dtype(bf, "x") == (np.float32, bf)
    assert compute_dtype(bf, "x", keep_half=True) == (bf, bf)
    assert compute_dtype(np.float16, "x", keep_half=True) == (np.float16, np.float16)
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        compute_dtype(np.dtype("V2"), "x")


# ------------------------------------------------------------------ softmax family


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_softmax_within_one_ulp(fmt, fn, temperature):
    x = _logits(fmt)
    f = getattr(smk, fn)
    y = f(x, temperature=temperature)
    d = _close(y, f(x.astype(np.float32), temperature=temperature), fmt)
    assert (d == 0).mean() > 0.95  # the same float32 values, mostly the same bits
    if fn == "softmax":
        np.testing.assert_allclose(y.astype(np.float64).sum(-1), 1.0, atol=0.02)


@pytest.mark.parametrize("fmt", FORMATS)
def test_softmax_plumbing(fmt):
    x = _logits(fmt, shape=(6, 9, 11))
    f32 = x.astype(np.float32)
    # axis not last, tuple of axes, non-contiguous and read-only input
    for axis in (0, 1, (0, 2), None):
        _close(smk.softmax(x, axis=axis), smk.softmax(f32, axis=axis), fmt)
    xs = x[:, ::2, ::-1]
    _close(smk.log_softmax(xs, axis=1), smk.log_softmax(f32[:, ::2, ::-1], axis=1), fmt)
    ro = x.copy()
    ro.flags.writeable = False
    before = ro.copy()
    _close(smk.softmax(ro), smk.softmax(f32), fmt)
    assert np.array_equal(ro.view(np.uint16), before.view(np.uint16))  # input untouched
    # out= (the kernel writes into it) and a wrong out dtype
    out = np.empty_like(x)
    assert smk.softmax(x, out=out) is out
    assert np.array_equal(out.view(np.uint16), smk.softmax(x).view(np.uint16))
    with pytest.raises(ValueError, match="out has dtype float32"):
        smk.softmax(x, out=np.empty(x.shape, np.float32))
    # 0-d and 1-d
    assert float(smk.softmax(x[0, 0, 0])) == 1.0
    _close(smk.softmax(x[0, 0]), smk.softmax(f32[0, 0]), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_softmax_where_and_extreme_temperatures(fmt):
    x = _logits(fmt, shape=(8, 40))
    f32 = x.astype(np.float32)
    where = np.random.default_rng(3).random(x.shape) > 0.3
    where[0] = False  # a row with nothing included: zeros, never NaN
    for fn in (smk.softmax, smk.log_softmax):
        _close(fn(x, where=where), fn(f32, where=where), fmt)
    assert (smk.softmax(x, where=where)[0].astype(np.float32) == 0).all()
    # 1/T outside float32's range: computed in float64 from the widened input, no NaN
    for t in (1e-39, 1e-45, 1e39):
        y = smk.softmax(x, temperature=t)
        assert not np.isnan(y.astype(np.float32)[4:]).any()
        _close(y, smk.softmax(f32, temperature=t), fmt)
    hard = smk.softmax(np.array([1.0, 3.0, 2.0], _dtype(fmt)), temperature=1e-39).astype(np.float32)
    np.testing.assert_array_equal(hard, [0, 1, 0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_functions_take_16_bit_in_float32(fmt):
    x = _logits(fmt, shape=(5, 12))
    f32 = x.astype(np.float32)
    for fn in (smk.sigmoid, smk.log_sigmoid, smk.softplus, smk.hardmax):
        got = fn(x)
        _close(got, fn(f32), fmt)
    lse = smk.logsumexp(x)
    _close(lse, smk.logsumexp(f32), fmt)


# ------------------------------------------------------------------ cross-entropy


CE_OPTIONS = [
    dict(),
    dict(label_smoothing=0.1),
    dict(weight="w", ignore_index=3, reduction="sum"),
    dict(reduction="none", sample_weight="sw"),
    dict(z_loss=1e-3),             # not in the 16-bit kernel: float32, rounded
    dict(softcap=10.0, temperature=1.5),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_cross_entropy_within_one_ulp(fmt, opts):
    rng = np.random.default_rng(7)
    x = _logits(fmt, shape=(33, 70))
    t = rng.integers(0, 70, size=33)
    t[5] = 3
    kw = dict(opts)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.5, 2.0, size=70)
    if kw.get("sample_weight") == "sw":
        kw["sample_weight"] = rng.uniform(0.0, 2.0, size=33)
    loss, grad = smk.cross_entropy_and_grad(x, t, **kw)
    loss32, grad32 = smk.cross_entropy_and_grad(x.astype(np.float32), t, **kw)
    _close(np.asarray(loss), loss32, fmt)
    _close(grad, grad32, fmt)
    _close(np.asarray(smk.cross_entropy(x, t, **kw)), loss32, fmt)
    g2 = smk.cross_entropy_grad(x, t, **kw)
    assert np.array_equal(g2.view(np.uint16), grad.view(np.uint16))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cross_entropy_against_float64(fmt):
    # the gradient softmax - onehot of the widened logits, to 16-bit precision
    rng = np.random.default_rng(9)
    x = _logits(fmt, shape=(16, 50), scale=3.0)
    t = rng.integers(0, 50, size=16)
    loss, g = smk.cross_entropy_and_grad(x, t, reduction="sum")
    z = x.astype(np.float64)
    lse = np.logaddexp.reduce(z, axis=1)
    want = (lse - z[np.arange(16), t]).sum()
    np.testing.assert_allclose(float(loss), want, rtol=2.0**-7)
    p = np.exp(z - lse[:, None])
    p[np.arange(16), t] -= 1
    np.testing.assert_allclose(g.astype(np.float64), p, rtol=2.0**-7, atol=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cross_entropy_plumbing(fmt):
    rng = np.random.default_rng(2)
    x = _logits(fmt, shape=(4, 10, 6))
    f32 = x.astype(np.float32)
    t = rng.integers(0, 10, size=(4, 6))
    # class axis 1 (torch's layout): Python makes the rows contiguous
    loss, g = smk.cross_entropy_and_grad(x, t, axis=1)
    l32, g32 = smk.cross_entropy_and_grad(f32, t, axis=1)
    _close(np.asarray(loss), l32, fmt)
    _close(g, g32, fmt)
    # out= straight from the kernel, and out= the input itself
    x2 = x.reshape(-1, 6)
    t2 = rng.integers(0, 6, size=x2.shape[0])
    want = smk.cross_entropy_grad(x2, t2)
    out = np.empty_like(x2)
    assert smk.cross_entropy_grad(x2, t2, out=out) is out
    assert np.array_equal(out.view(np.uint16), want.view(np.uint16))
    inplace = x2.copy()
    smk.cross_entropy_grad(inplace, t2, out=inplace)
    assert np.array_equal(inplace.view(np.uint16), want.view(np.uint16))
    # soft labels (any float dtype, bfloat16 included) and probabilities: float32, rounded
    q = smk.softmax(rng.normal(size=x2.shape))
    for qq in (q, q.astype(x.dtype)):
        loss, g = smk.cross_entropy_and_grad(x2, qq)
        l32, g32 = smk.cross_entropy_and_grad(x2.astype(np.float32), qq.astype(np.float32))
        _close(np.asarray(loss), l32, fmt)
        _close(g, g32, fmt)
    p = smk.softmax(x2)  # 16-bit probabilities: rows sum to 1 within the 16-bit tolerance
    loss, g = smk.cross_entropy_and_grad(p, t2, from_logits=False)
    p32, n = p.astype(np.float32), len(t2)  # the float32 twin would refuse the 16-bit row sums
    pt = p32[np.arange(n), t2].astype(np.float64)
    g32 = np.zeros_like(p32)
    g32[np.arange(n), t2] = np.where(pt >= 1e-7, -1.0 / (n * np.maximum(pt, 1e-7)), 0.0)  # the PROB_FLOOR clip
    _close(np.asarray(loss), -np.log(np.maximum(pt, 1e-7)).mean(), fmt)
    _close(g, g32, fmt)
    # a bad label is still named
    with pytest.raises(ValueError, match=r"target\[1\] = 99 is not a class index"):
        smk.cross_entropy(x2[:3], [0, 99, 1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_cross_entropy_nonfinite_rows(fmt):
    x = np.array([[0.0, np.nan, 1.0], [np.inf, 0.0, np.inf], [1.0, 2.0, 3.0]], np.float32).astype(_dtype(fmt))
    loss, g = smk.cross_entropy_and_grad(x, [0, 0, 2], reduction="none")
    lf = loss.astype(np.float32)
    assert np.isnan(lf[0]) and np.isnan(g[0].astype(np.float32)).all()
    np.testing.assert_allclose(lf[1], np.log(2), rtol=1e-2)
    np.testing.assert_array_equal(g[1].astype(np.float32), [-0.5, 0.0, 0.5])
    assert np.isfinite(lf[2]) and np.isfinite(g[2].astype(np.float32)).all()
