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


def _close(got, want32, fmt, want64=None):
    """got (16-bit) within 1 ulp of want32 (float32) rounded to got's dtype; with
    want64, entries the float32 kernel flushed to 0 (exps below float32's normal
    range, losses.h) that the 16-bit kernel keeps as subnormals are compared with the
    float64 result instead."""
    assert got.dtype == np.dtype(_dtype(fmt)), got.dtype
    want32 = np.asarray(want32, np.float32)
    if want64 is not None:
        kept = (want32 == 0) & (got.astype(np.float32) != 0)
        want32 = np.where(kept, np.asarray(want64, np.float32), want32)
    want = want32.astype(got.dtype)
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
    _close(grad, grad32, fmt, smk.cross_entropy_and_grad(x.astype(np.float64), t, **kw)[1])
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


# ------------------------------------------------------------------ properties


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _f64_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    e = np.exp(z - m)
    return e / e.sum(axis=-1, keepdims=True)


@settings(max_examples=40)
@given(fmt=st.sampled_from(FORMATS), rows=st.integers(1, 9), cols=st.integers(1, 600),
       scale=st.sampled_from([0.01, 1.0, 8.0, 40.0]), seed=st.integers(0, 2**16))
def test_property_within_one_ulp_of_the_rounded_float64_result(fmt, rows, cols, scale, seed):
    """Any shape and scale: softmax and the cross-entropy gradient within 1 ulp of the
    float64 result (on the 16-bit input) rounded to 16 bits, above float32's normal
    range's floor (the cross-entropy kernels flush exps below it to 0)."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, cols)) * scale).astype(np.float32).astype(_dtype(fmt))
    z = x.astype(np.float64)
    p = _f64_softmax(z)
    _close(smk.softmax(x), p, fmt)
    t = rng.integers(0, cols, size=rows)
    g = smk.cross_entropy_grad(x, t, reduction="sum")
    want = p.copy()
    want[np.arange(rows), t] -= 1.0
    d = ulp_distance(g, want.astype(np.float32).astype(g.dtype))
    assert d[np.abs(want) >= 2.0**-120].max(initial=0) <= 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bits_at_any_thread_count(fmt, num_threads):
    x = _logits(fmt, shape=(64, 700))
    t = np.arange(64) % 700
    got = (smk.softmax(x), smk.log_softmax(x), *smk.cross_entropy_and_grad(x, t, reduction="none"))
    smk.set_num_threads(1)
    want = (smk.softmax(x), smk.log_softmax(x), *smk.cross_entropy_and_grad(x, t, reduction="none"))
    for a, b in zip(got, want):
        assert np.array_equal(a.view(np.uint16), b.view(np.uint16))


# ------------------------------------------------------------------ softmaxkit.torch


TORCH_FORMATS = ["bf16", "f16"]


def _torch():
    return pytest.importorskip("torch")


def _tdtype(fmt):
    torch = _torch()
    return torch.bfloat16 if fmt == "bf16" else torch.float16


def _bits16(t):
    """A 16-bit tensor as a NumPy array of its bits' format (float16, or bfloat16 via
    uint16 bits) for ulp_distance."""
    torch = _torch()
    t = t.detach().contiguous()
    return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()


def _tclose(got, want, fmt):
    """got (16-bit tensor) within 1 ulp of the tensor want (float64: torch's float32
    log_softmax loses digits near 0, having no log1p) rounded to 16 bits."""
    assert got.dtype == _tdtype(fmt), got.dtype
    want = want.detach().to(got.dtype)
    d = ulp_distance(_bits16(got), _bits16(want))
    assert d.max() <= 1, (d.max(), np.unravel_index(d.argmax(), d.shape))
    return d


def _t_logits(fmt, shape=(24, 67), seed=0):
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 4
    x.view(-1, shape[-1])[1, :3] = x.view(-1, shape[-1])[1].max()
    return x.to(_tdtype(fmt))


def _counting(monkeypatch):
    """Counts the calls of softmaxkit.torch's kernel seam (so a test cannot pass on
    torch's own fallback); a forward that also writes the gradient is
    "_np_ce_rows+grad"."""
    from softmaxkit.torch import _ops

    calls = []
    for name in ["_np_ce_rows", "_np_softmax"]:
        real = getattr(_ops, name)
        monkeypatch.setattr(_ops, name, lambda *a, _r=real, _n=name, **k: (
            calls.append(_n + ("+grad" if k.get("forward") else "")), _r(*a, **k))[1])
    return calls


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [1, 0])
def test_torch_softmax_16_bit(fmt, fn, dim, monkeypatch):
    torch = _torch()
    import softmaxkit.torch as smt

    calls = _counting(monkeypatch)
    x = _t_logits(fmt).requires_grad_()
    y = getattr(smt, fn)(x, dim)
    assert calls == ["_np_softmax"]
    _tclose(y, getattr(torch, fn)(x.detach().double(), dim), fmt)
    # torch's own 16-bit function, within torch's tolerance for the dtype (its
    # log_softmax near 0 is an ulp of 1 off: an absolute tolerance of that ulp)
    torch.testing.assert_close(y, getattr(torch, fn)(x.detach(), dim),
                               atol=2.0**-7 if fn == "log_softmax" else 1e-5, rtol=1.6e-2)
    # gradient in the input's dtype: within 1 ulp of the exact backward of the (16-bit)
    # output, rounded to 16 bits
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(y.dtype)
    (gx,) = torch.autograd.grad(y, x, g)
    assert gx.dtype == x.dtype
    yd, gd = y.detach().double(), g.double()
    want = (yd * (gd - (yd * gd).sum(dim, keepdim=True)) if fn == "softmax"
            else gd - yd.exp() * gd.sum(dim, keepdim=True))
    _tclose(gx, want, fmt)
    (gt,) = torch.autograd.grad(getattr(torch, fn)(x, dim), x, g)  # from torch's own 16-bit y
    torch.testing.assert_close(gx.float(), gt.float(), rtol=1.6e-2, atol=2.0**-6 * float(gt.abs().max()))


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
@pytest.mark.parametrize("opts", [
    dict(),
    dict(label_smoothing=0.1, reduction="sum"),
    dict(weight=True, ignore_index=2),
    dict(reduction="none"),
], ids=lambda o: "-".join(o) or "plain")
def test_torch_cross_entropy_16_bit(fmt, opts, monkeypatch):
    torch = _torch()
    import softmaxkit.torch as smt

    calls = _counting(monkeypatch)
    gen = torch.Generator().manual_seed(5)
    x = _t_logits(fmt).requires_grad_()
    t = torch.randint(0, x.shape[1], (x.shape[0],), generator=gen)
    t[4] = 2
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = (torch.rand(x.shape[1], generator=gen) + 0.5).to(x.dtype)
    loss = smt.cross_entropy(x, t, **kw)
    fwd = "_np_ce_rows" if kw.get("reduction") == "none" else "_np_ce_rows+grad"
    assert calls == [fwd]
    assert loss.dtype == x.dtype
    x32 = x.detach().double().requires_grad_()
    kw32 = dict(kw, weight=kw["weight"].double()) if "weight" in kw else kw
    loss32 = torch.nn.functional.cross_entropy(x32, t, **kw32)
    _tclose(loss.reshape(-1), loss32.reshape(-1), fmt)
    # gradient (with a random upstream gradient for "none"): the fused 16-bit kernel
    up = torch.rand(loss.shape, generator=gen) + 0.5
    (gx,) = torch.autograd.grad(loss, x, up.to(loss.dtype))
    (g32,) = torch.autograd.grad(loss32, x32, up.to(loss.dtype).double())
    assert gx.dtype == x.dtype
    _tclose(gx, g32, fmt)
    assert calls == [fwd, "_np_ce_rows"]  # a random upstream gradient: computed anew
    # torch's own 16-bit path, within its tolerance (torch rounds log_softmax to 16 bits
    # on the way, so its loss is the less accurate one: a looser bound for the loss)
    ref = torch.nn.functional.cross_entropy(x, t, **kw)
    torch.testing.assert_close(loss.float(), ref.float(), rtol=0.05, atol=0.05)
    (gref,) = torch.autograd.grad(ref, x, up.to(loss.dtype))
    torch.testing.assert_close(gx, gref, rtol=0.02, atol=2e-3)


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
def test_torch_cross_entropy_16_bit_layouts_and_soft_labels(fmt, monkeypatch):
    torch = _torch()
    import softmaxkit.torch as smt

    calls = _counting(monkeypatch)
    gen = torch.Generator().manual_seed(8)
    # (N, C, d) input: the class dimension is moved last in torch ops
    x = (torch.randn(3, 7, 5, generator=gen) * 3).to(_tdtype(fmt)).requires_grad_()
    t = torch.randint(0, 7, (3, 5), generator=gen)
    x32 = x.detach().double().requires_grad_()
    loss, loss32 = smt.cross_entropy(x, t), torch.nn.functional.cross_entropy(x32, t)
    _tclose(loss.reshape(1), loss32.reshape(1), fmt)
    _tclose(torch.autograd.grad(loss, x)[0], torch.autograd.grad(loss32, x32)[0], fmt)
    # soft labels: computed in float32, rounded to the input's dtype
    q = torch.softmax(torch.randn(4, 7, generator=gen), 1)
    xs = x.detach()[:, :, 0].contiguous()[:3].requires_grad_()
    xs32 = xs.detach().double().requires_grad_()
    for qq in (q[:3].to(xs.dtype),):
        loss, loss32 = smt.cross_entropy(xs, qq), torch.nn.functional.cross_entropy(xs32, qq.double())
        _tclose(loss.reshape(1), loss32.reshape(1), fmt)
        g = torch.autograd.grad(loss, xs)[0]
        assert g.dtype == xs.dtype
        _tclose(g, torch.autograd.grad(loss32, xs32)[0], fmt)
    # the (N, C, d) loss: a forward that writes the gradient its backward from 1 returns
    # (test_torch_cross_entropy_16_bit_gradient_from_the_forward); soft labels: the
    # forward, then the backward
    assert calls == ["_np_ce_rows+grad", "_np_ce_rows", "_np_ce_rows"]
    # the module, and a non-contiguous input
    xt = x.detach()[:, :, 1].t().contiguous().t()  # (3, 7) with column-major strides
    m = smt.CrossEntropyLoss(reduction="sum")
    _tclose(m(xt, t[:, 1]).reshape(1),
            torch.nn.functional.cross_entropy(xt.double(), t[:, 1], reduction="sum").reshape(1), fmt)
    # double backward composes in torch ops, in the input's dtype
    xg = x.detach()[:, :, 0].requires_grad_()
    (g,) = torch.autograd.grad(smt.cross_entropy(xg, t[:, 0]), xg, create_graph=True)
    (hv,) = torch.autograd.grad((g.float() ** 2).sum(), xg)
    assert hv.dtype == xg.dtype and torch.isfinite(hv.float()).all()


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
@pytest.mark.parametrize("opts", [
    dict(),
    dict(label_smoothing=0.1, reduction="sum"),
    dict(weight=True, ignore_index=2),
    dict(weight="negative"),
], ids=lambda o: "-".join(o) or "plain")
def test_torch_cross_entropy_16_bit_gradient_from_the_forward(fmt, opts, monkeypatch):
    # A reduced 16-bit loss that requires grad writes its gradient in the forward's
    # own pass over the logits (one read and one write of them instead of two reads);
    # backward() from 1 returns it without another kernel call. Any other upstream
    # gradient, a graph built for double backward, a second backward (retain_graph)
    # and reduction="none" compute it from the forward's logsumexp instead: always the
    # gradient asked for (not Liger-Kernel's gradient computed for upstream 1).
    torch = _torch()
    import softmaxkit.torch as smt

    gen = torch.Generator().manual_seed(17)
    x = _t_logits(fmt, shape=(40, 33), seed=4).requires_grad_()
    t = torch.randint(0, 33, (40,), generator=gen)
    t[6] = 2
    kw = dict(opts)
    weight = kw.pop("weight", None)
    if weight:
        w = torch.rand(33, generator=gen) + 0.5
        kw["weight"] = (w - 1.0 if weight == "negative" else w).to(x.dtype)
    x64 = x.detach().double().requires_grad_()
    kw64 = dict(kw, weight=kw["weight"].double()) if "weight" in kw else kw
    (g64,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x64, t, **kw64), x64)

    calls = _counting(monkeypatch)
    loss = smt.cross_entropy(x, t, **kw)
    loss.backward(retain_graph=True)
    assert calls == ["_np_ce_rows+grad"]  # the backward made no call
    g1 = x.grad.clone()
    _tclose(g1, g64, fmt)
    # a second backward of the same graph: from the logsumexp, the same gradient again
    x.grad = None
    loss.backward()
    assert calls == ["_np_ce_rows+grad", "_np_ce_rows"]
    _tclose(x.grad, g64, fmt)
    assert ulp_distance(_bits16(x.grad), _bits16(g1)).max() <= 1
    # another upstream gradient (2: exact in 16 bits): twice the gradient, computed anew
    x.grad = None
    smt.cross_entropy(x, t, **kw).backward(torch.tensor(2.0, dtype=x.dtype))
    assert calls == ["_np_ce_rows+grad", "_np_ce_rows"] * 2
    _tclose(x.grad, 2 * g64, fmt)
    # create_graph: the differentiable backward, whose double backward composes
    (g,) = torch.autograd.grad(smt.cross_entropy(x, t, **kw), x, create_graph=True)
    assert calls == ["_np_ce_rows+grad", "_np_ce_rows"] * 3 and g.grad_fn is not None
    _tclose(g.detach(), g64, fmt)
    # reduction="none" never writes a gradient in the forward (its upstream is anything)
    calls.clear()
    up = torch.rand(40, generator=gen).to(x.dtype) + 0.5
    (gn,) = torch.autograd.grad(smt.cross_entropy(x, t, **dict(kw, reduction="none")), x, up)
    assert calls == ["_np_ce_rows"] * 2
    (gn64,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x64, t, **dict(kw64, reduction="none")), x64,
                                  up.double())
    _tclose(gn, gn64, fmt)
    # a loss that needs no gradient writes none
    calls.clear()
    with torch.no_grad():
        smt.cross_entropy(x, t, **kw)
    smt.cross_entropy(x.detach(), t, **kw)
    assert calls == ["_np_ce_rows"] * 2


def test_torch_16_bit_under_compile_fullgraph():
    torch = _torch()
    import softmaxkit.torch as smt

    def f(x, t):
        return smt.cross_entropy(x, t, label_smoothing=0.05) + smt.log_softmax(x, 1).mean() \
            + smt.softmax(x, 0).square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    gen = torch.Generator().manual_seed(2)
    for dt in (torch.bfloat16, torch.float16):
        for n in (6, 9):
            x = (torch.randn(n, 11, generator=gen) * 2).to(dt).requires_grad_()
            t = torch.randint(0, 11, (n,), generator=gen)
            out = compiled(x, t)
            (g,) = torch.autograd.grad(out, x)
            ref = f(x, t)
            (gr,) = torch.autograd.grad(ref, x)
            assert out.dtype == dt and g.dtype == dt
            torch.testing.assert_close(out, ref)
            torch.testing.assert_close(g, gr)
    assert not torch._dynamo.utils.counters["graph_break"]


def test_torch_other_16_bit_calls_go_to_torch(monkeypatch):
    torch = _torch()
    import softmaxkit.torch as smt

    calls = _counting(monkeypatch)
    x = torch.randn(4, 5).to(torch.bfloat16)
    t = torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(smt.nll_loss(torch.log_softmax(x, 1), t),
                               torch.nn.functional.nll_loss(torch.log_softmax(x, 1), t))
    # a float32 weight with 16-bit logits: torch's own function decides (it raises)
    with pytest.raises(RuntimeError):
        smt.cross_entropy(x, t, weight=torch.ones(5))
    assert calls == []


def test_torch_16_bit_ops_pass_opcheck():
    torch = _torch()
    import softmaxkit.torch  # noqa: F401  (registers the ops)

    gen = torch.Generator().manual_seed(4)
    for dt in (torch.bfloat16, torch.float16):
        x = torch.randn(5, 7, generator=gen).to(dt).requires_grad_()
        t = torch.tensor([0, 6, 2, -100, 3])
        w = (torch.rand(7, generator=gen) + 0.5).to(dt)
        args = (x, t, w, -100, 0.1)
        torch.library.opcheck(torch.ops.softmaxkit.cross_entropy_rows_half.default, args)
        loss, roww, lse = torch.ops.softmaxkit.cross_entropy_rows_half(*args)
        assert lse[3] == float('inf') and torch.isfinite(lse[[0, 1, 2, 4]]).all()
        g = torch.rand(5, generator=gen, dtype=torch.float64)
        torch.library.opcheck(torch.ops.softmaxkit.cross_entropy_rows_half_backward.default,
                              (g, x.detach(), t, w, lse, -100, 0.1))
        for scale in (0.25, 1.0):
            torch.library.opcheck(torch.ops.softmaxkit.cross_entropy_rows_half_grad.default, args + (scale,))
        torch.library.opcheck(torch.ops.softmaxkit.softmax.default, (x, 1))
        torch.library.opcheck(torch.ops.softmaxkit.log_softmax.default, (x, 0))
