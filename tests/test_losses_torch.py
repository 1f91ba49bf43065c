"""Agreement with PyTorch (CPU): values, and gradients through autograd, for every
loss of softmaxkit._losses that PyTorch has, across its options."""
import itertools

import numpy as np
import pytest

import softmaxkit as smk

torch = pytest.importorskip("torch")
F = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]

# PyTorch warns that kl_div's "mean" is not the mathematical mean; we match it anyway.
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


def tol(dtype):
    return dict(rtol=3e-5, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def torch_value_and_grad(fn, x, *args, **kwargs):
    """PyTorch's value and the gradient of (the sum of) it with respect to x."""
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt, *args, **kwargs)
    out.sum().backward()
    return out.detach().numpy(), xt.grad.numpy()


def check(ours, theirs, dtype):
    (lv, lg), (tv, tg) = ours, theirs
    assert np.shape(lv) == np.shape(tv)
    assert lg.shape == tg.shape and lg.dtype == dtype and np.asarray(lv).dtype == dtype
    np.testing.assert_allclose(lv, tv, **tol(dtype))
    np.testing.assert_allclose(lg, tg, **tol(dtype))


CE_CASES = list(itertools.product(
    [None, "w"],            # weight
    [None, 2],              # ignore_index
    [0.0, 0.15, 1.0],       # label_smoothing
    REDUCTIONS,
))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight, ignore_index, eps, reduction", CE_CASES)
def test_cross_entropy_hard_labels(dtype, weight, ignore_index, eps, reduction):
    rng = np.random.default_rng(hash((weight, ignore_index, eps, reduction)) % 2**32)
    n, c = 7, 5
    z = (rng.normal(size=(n, c)) * 3).astype(dtype)
    y = rng.integers(0, c, size=n)
    y[1] = 2  # at least one ignored row when ignore_index is 2
    w = rng.uniform(0.2, 2.0, size=c).astype(dtype) if weight else None
    ours = smk.cross_entropy_and_grad(z, y, weight=w, ignore_index=ignore_index, label_smoothing=eps,
                                      reduction=reduction)
    theirs = torch_value_and_grad(
        F.cross_entropy, z, torch.tensor(y), weight=None if w is None else torch.tensor(w),
        ignore_index=-100 if ignore_index is None else ignore_index, label_smoothing=eps,
        reduction=reduction)
    check(ours, theirs, dtype)
    # the forward alone agrees with the fused forward-backward
    alone = smk.cross_entropy(z, y, weight=w, ignore_index=ignore_index, label_smoothing=eps,
                              reduction=reduction)
    np.testing.assert_array_equal(alone, ours[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight, eps, reduction", list(itertools.product([None, "w"], [0.0, 0.3], REDUCTIONS)))
def test_cross_entropy_soft_labels(dtype, weight, eps, reduction):
    rng = np.random.default_rng(17)
    n, c = 6, 4
    z = (rng.normal(size=(n, c)) * 3).astype(dtype)
    q = smk.softmax(rng.normal(size=(n, c)) * 2).astype(dtype)
    q[0] = np.eye(c, dtype=dtype)[1]  # a one-hot row
    w = rng.uniform(0.2, 2.0, size=c).astype(dtype) if weight else None
    ours = smk.cross_entropy_and_grad(z, q, weight=w, label_smoothing=eps, reduction=reduction)
    theirs = torch_value_and_grad(F.cross_entropy, z, torch.tensor(q),
                                  weight=None if w is None else torch.tensor(w),
                                  label_smoothing=eps, reduction=reduction)
    check(ours, theirs, dtype)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_axis_one_and_extra_dims(soft, reduction):
    # PyTorch's (N, C, d1, d2) layout is ours with axis=1
    rng = np.random.default_rng(18)
    z = rng.normal(size=(3, 4, 2, 5))
    if soft:
        y = smk.softmax(rng.normal(size=z.shape), axis=1)
        kw = dict(label_smoothing=0.1)
    else:
        y = rng.integers(0, 4, size=(3, 2, 5))
        y[0, 0, :2] = 3
        kw = dict(label_smoothing=0.1, ignore_index=3, weight=np.array([0.5, 1.0, 2.0, 1.5]))
    ours = smk.cross_entropy_and_grad(z, y, axis=1, reduction=reduction, **kw)
    tkw = dict(kw)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"])
    theirs = torch_value_and_grad(F.cross_entropy, z, torch.tensor(y), reduction=reduction, **tkw)
    check(ours, theirs, np.float64)


def test_cross_entropy_large_and_masked_logits():
    # far from 0, and -inf (masked) classes that are not the label
    z = np.array([[1000.0, -1000.0, 0.0], [-np.inf, 3.0, 2.0], [50.0, 50.0, -np.inf]])
    y = np.array([0, 1, 0])
    for eps in (0.0,):  # smoothing puts mass on the masked class: inf in both
        ours = smk.cross_entropy_and_grad(z, y, label_smoothing=eps, reduction="sum")
        theirs = torch_value_and_grad(F.cross_entropy, z, torch.tensor(y), label_smoothing=eps,
                                      reduction="sum")
        check(ours, theirs, np.float64)
    loss = smk.cross_entropy(z, y, label_smoothing=0.1, reduction="none")
    tl = F.cross_entropy(torch.tensor(z), torch.tensor(y), label_smoothing=0.1, reduction="none").numpy()
    np.testing.assert_allclose(loss, tl)  # inf where a masked class gets eps/C


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weight, ignore_index, reduction",
                         list(itertools.product([None, "w"], [None, 0], REDUCTIONS)))
def test_nll_loss(dtype, weight, ignore_index, reduction):
    rng = np.random.default_rng(19)
    lp = smk.log_softmax(rng.normal(size=(6, 4))).astype(dtype)
    y = np.array([0, 1, 2, 3, 0, 2])
    w = rng.uniform(0.2, 2.0, size=4).astype(dtype) if weight else None
    ours = smk.nll_loss_and_grad(lp, y, weight=w, ignore_index=ignore_index, reduction=reduction)
    theirs = torch_value_and_grad(F.nll_loss, lp, torch.tensor(y),
                                  weight=None if w is None else torch.tensor(w),
                                  ignore_index=-100 if ignore_index is None else ignore_index,
                                  reduction=reduction)
    check(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(dtype, weighted, reduction):
    rng = np.random.default_rng(20)
    p = rng.uniform(0, 1, size=(5, 3)).astype(dtype)
    p[0] = [0.0, 1.0, 0.5]  # the clamp of each log at -100
    y = rng.uniform(0, 1, size=(5, 3)).astype(dtype)
    y[0] = [1.0, 0.0, 1.0]
    w = rng.uniform(0.2, 2.0, size=(3,)).astype(dtype) if weighted else None
    ours = smk.binary_cross_entropy_and_grad(p, y, weight=w, reduction=reduction)
    theirs = torch_value_and_grad(F.binary_cross_entropy, p, torch.tensor(y),
                                  weight=None if w is None else torch.tensor(w), reduction=reduction)
    check(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted, pos_weighted", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(dtype, weighted, pos_weighted, reduction):
    rng = np.random.default_rng(21)
    z = (rng.normal(size=(4, 3)) * 5).astype(dtype)
    z[0] = [-200.0, 200.0, 0.0]  # far out: still finite
    y = (rng.uniform(size=(4, 3)) > 0.5).astype(dtype)
    y[0] = [1.0, 0.0, 1.0]
    w = rng.uniform(0.2, 2.0, size=(4, 1)).astype(dtype) if weighted else None
    pw = rng.uniform(0.2, 3.0, size=(3,)).astype(dtype) if pos_weighted else None
    ours = smk.binary_cross_entropy_with_logits_and_grad(z, y, weight=w, pos_weight=pw, reduction=reduction)
    theirs = torch_value_and_grad(F.binary_cross_entropy_with_logits, z, torch.tensor(y),
                                  weight=None if w is None else torch.tensor(w),
                                  pos_weight=None if pw is None else torch.tensor(pw), reduction=reduction)
    check(ours, theirs, dtype)
    assert np.isfinite(ours[0]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
def test_kl_div(dtype, log_target, reduction):
    rng = np.random.default_rng(22)
    lq = smk.log_softmax(rng.normal(size=(4, 5))).astype(dtype)
    p = smk.softmax(rng.normal(size=(4, 5))).astype(dtype)
    t = np.log(p) if log_target else p
    ours = smk.kl_div_and_grad(lq, t, log_target=log_target, reduction=reduction)
    theirs = torch_value_and_grad(F.kl_div, lq, torch.tensor(t), log_target=log_target, reduction=reduction)
    check(ours, theirs, dtype)


def test_entropy_matches_torch_distributions():
    rng = np.random.default_rng(23)
    z = rng.normal(size=(4, 6)) * 3
    h = torch.distributions.Categorical(logits=torch.tensor(z)).entropy().numpy()
    np.testing.assert_allclose(smk.entropy(z, from_logits=True), h, rtol=1e-12)
    np.testing.assert_allclose(smk.entropy(smk.softmax(z)), h, rtol=1e-12)


def test_zero_weight_on_masked_class_is_left_out_where_torch_gives_nan():
    # A -inf (masked) class that carries no weight: PyTorch computes 0 * inf = NaN; we
    # leave the term out, which gives what PyTorch gives without that class at all.
    z = np.array([[-np.inf, 0.0, 1.0], [-np.inf, 2.0, -1.0]])
    zt = torch.tensor(z[:, 1:])
    q = np.array([[0.0, 0.5, 0.5], [0.0, 0.9, 0.1]])
    np.testing.assert_allclose(smk.cross_entropy(z, q, reduction="none"),
                               F.cross_entropy(zt, torch.tensor(q[:, 1:]), reduction="none").numpy(), rtol=1e-14)
    g = smk.cross_entropy_grad(z, q, reduction="sum")
    assert (g[:, 0] == 0).all()
    xt = zt.clone().requires_grad_(True)
    F.cross_entropy(xt, torch.tensor(q[:, 1:]), reduction="sum").backward()
    np.testing.assert_allclose(g[:, 1:], xt.grad.numpy(), rtol=1e-13)
    # class weight 0 on the masked class, with label smoothing
    w = np.array([0.0, 1.0, 2.0])
    ours = smk.cross_entropy(z, [1, 2], weight=w, label_smoothing=0.3, reduction="none")
    assert np.isfinite(ours).all()
    # PyTorch without the masked class, with eps/C spread over 3 classes not 2: rescale
    eps = 0.3
    lp = torch.log_softmax(zt, dim=1).numpy()
    wt = w[1:]
    y = np.array([0, 1])
    expected = -(1 - eps) * wt[y] * lp[np.arange(2), y] - eps / 3 * (wt * lp).sum(axis=1)
    np.testing.assert_allclose(ours, expected, rtol=1e-13)
    assert torch.isnan(F.cross_entropy(torch.tensor(z), torch.tensor([1, 2]), weight=torch.tensor(w),
                                       label_smoothing=eps, reduction="none")).all()


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(
    n=st.integers(0, 6), c=st.integers(1, 6), extra=st.integers(0, 2),
    weighted=st.booleans(), ignore=st.sampled_from([None, 0, -100]),
    eps=st.sampled_from([0.0, 0.05, 0.5, 1.0]), reduction=st.sampled_from(REDUCTIONS),
    soft=st.booleans(), f32=st.booleans(), seed=st.integers(0, 2**16),
)
def test_hypothesis_cross_entropy_matches_torch(n, c, extra, weighted, ignore, eps, reduction, soft, f32, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    shape = (n, c) + (3,) * extra  # class axis 1, PyTorch's layout
    z = (rng.normal(size=shape) * 4).astype(dtype)
    w = rng.uniform(0.1, 2.0, size=c).astype(dtype) if weighted else None
    if soft:
        y = smk.softmax(rng.normal(size=shape), axis=1).astype(dtype)
        ignore = None
    else:
        y = rng.integers(0, c, size=(n,) + (3,) * extra)
        if ignore is not None and y.size:
            y.flat[:: 3] = ignore
    ours = smk.cross_entropy_and_grad(z, y, axis=1, weight=w, ignore_index=ignore, label_smoothing=eps,
                                      reduction=reduction)
    theirs = torch_value_and_grad(F.cross_entropy, z, torch.tensor(y),
                                  weight=None if w is None else torch.tensor(w),
                                  ignore_index=-100 if ignore is None else ignore,
                                  label_smoothing=eps, reduction=reduction)
    if reduction == "mean" and np.isnan(theirs[0]):
        # empty or all-ignored: NaN both; our gradient is zeros (PyTorch's is zeros or NaN)
        assert np.isnan(ours[0])
        np.testing.assert_array_equal(ours[1], 0.0)
        return
    check(ours, theirs, dtype)
