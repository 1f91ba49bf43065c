"""sparsemax, entmax15, entmax_bisect, their backward passes and Fenchel-Young losses:
exact values, the sort-based NumPy twin (entmax_twin.py), the entmax package,
finite-difference gradients, properties and plumbing."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import entmax_twin as twin
import softmaxkit as smk
from softmaxkit._kernels import _entmax as ext

ALPHAS = [1.0, 1.25, 1.5, 2.0, 3.0]


def rows(seed=0, shape=(7, 23), scale=2.0):
    return np.random.default_rng(seed).normal(size=shape) * scale


# ---------------------------------------------------------------- exact values

def test_worked_examples():
    # mpmath, 30 digits: entmax15([1, 0.5, -2]) solves (t)^2 + (t - 1/4)^2 = 1 on u = x/2 - 1/2
    #   t = (mpf('0.5') + sqrt(mpf('7.75'))) / 4;  p = t**2, (t - 0.25)**2
    np.testing.assert_allclose(smk.entmax15([1.0, 0.5, -2.0]),
                               [0.67399263633843818507, 0.32600736366156181493, 0.0], rtol=2e-16, atol=0)
    # sparsemax([1, 0.5, -2]): tau = (1 + 0.5 - 1) / 2 = 0.25
    np.testing.assert_array_equal(smk.sparsemax([1.0, 0.5, -2.0]), [0.75, 0.25, 0.0])
    np.testing.assert_array_equal(smk.sparsemax([0.0, 0.0, 0.0, 0.0]), [0.25] * 4)
    np.testing.assert_array_equal(smk.sparsemax([5.0]), [1.0])
    assert smk.sparsemax_loss([[1.0, 0.5, -2.0]], [1]) == 0.5625  # 0.5 (1 - 0.625) + 0.75 * 0.5


@pytest.mark.parametrize("alpha", ALPHAS)
def test_matches_sort_based_twin(alpha):
    x = np.concatenate([rows(1), rows(2, scale=0.1), rows(3, scale=30.0)])
    x[0, :5] = x[0, 5]  # ties
    got = smk.entmax_bisect(x, alpha=alpha)
    for i in range(x.shape[0]):
        if alpha == 2.0:
            ref = twin.sparsemax(x[i])
        elif alpha == 1.5:
            ref = twin.entmax15(x[i])
        else:
            ref = twin.entmax_bisect(x[i], alpha)
        np.testing.assert_allclose(got[i], ref, rtol=1e-12, atol=1e-15)
        if alpha > 1:  # the same support
            np.testing.assert_array_equal(got[i] > 0, ref > 1e-15)


def test_alpha_one_is_softmax_and_two_is_sparsemax():
    x = rows(4)
    np.testing.assert_array_equal(smk.entmax_bisect(x, alpha=1), smk.softmax(x))
    np.testing.assert_array_equal(smk.entmax_bisect(x, alpha=2), smk.sparsemax(x))
    np.testing.assert_array_equal(smk.entmax_bisect(x, alpha=1.5), smk.entmax15(x))
    # continuity: alpha slightly above 1 approaches softmax (the entmax package gives
    # a uniform distribution at alpha = 1 itself)
    np.testing.assert_allclose(smk.entmax_bisect(x, alpha=1 + 1e-6), smk.softmax(x), atol=1e-5)


@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-50, 50)),
       st.sampled_from(ALPHAS))
def test_properties(x, alpha):
    p = smk.entmax_bisect(x, alpha=alpha)
    assert (p >= 0).all() and abs(p.sum() - 1) < 1e-12
    assert p[np.argmax(x)] == p.max()
    np.testing.assert_allclose(smk.entmax_bisect(x + 3.25, alpha=alpha), p, atol=1e-12)  # shift invariant
    if alpha > 1:  # tau >= -1 on u = (alpha - 1)(x - max): logits this far below the max get 0
        np.testing.assert_array_equal(p[x < x.max() - 1.0 / (alpha - 1) - 1e-9], 0)


# ---------------------------------------------------------------- the entmax package

@pytest.mark.parametrize("alpha", [1.25, 1.5, 2.0, 3.0])
def test_agrees_with_entmax_package(alpha):
    entmax_pkg = pytest.importorskip("entmax")  # the test extra installs it
    torch = pytest.importorskip("torch")
    x = rows(5)
    xt = torch.tensor(x, requires_grad=True)
    if alpha == 1.5:
        yt = entmax_pkg.entmax15(xt, dim=-1)
        tol = 1e-13
    elif alpha == 2.0:
        yt = entmax_pkg.sparsemax(xt, dim=-1)
        tol = 1e-13
    else:  # the package stops bisecting after n_iter steps
        yt = entmax_pkg.entmax_bisect(xt, alpha=alpha, n_iter=100)
        tol = 1e-12
    y = smk.entmax_bisect(x, alpha=alpha)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=tol)
    g = rows(6)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(smk.entmax_bisect_backward(y, g, alpha=alpha), xt.grad.numpy(), atol=1e-10)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 1.7])
def test_losses_agree_with_entmax_package(alpha):
    entmax_pkg = pytest.importorskip("entmax")
    torch = pytest.importorskip("torch")
    x = rows(7)
    t = np.random.default_rng(8).integers(0, x.shape[1], size=x.shape[0])
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t)
    if alpha == 2.0:
        lt = entmax_pkg.sparsemax_loss(xt, tt)
        loss, grad = smk.sparsemax_loss_and_grad(x, t, reduction="none")
    elif alpha == 1.5:
        lt = entmax_pkg.entmax15_loss(xt, tt)
        loss, grad = smk.entmax_loss_and_grad(x, t, alpha=1.5, reduction="none")
    else:
        lt = entmax_pkg.entmax_bisect_loss(xt, tt, alpha=alpha, n_iter=100)
        loss, grad = smk.entmax_loss_and_grad(x, t, alpha=alpha, reduction="none")
    np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-10, atol=1e-12)
    lt.sum().backward()
    np.testing.assert_allclose(grad, xt.grad.numpy(), atol=1e-10)


def test_loss_at_alpha_one_is_cross_entropy():
    x = rows(9)
    t = np.arange(x.shape[0]) % x.shape[1]
    np.testing.assert_allclose(smk.entmax_loss(x, t, alpha=1.0, reduction="none"),
                               smk.cross_entropy(x, t, reduction="none"), rtol=1e-13)
    np.testing.assert_allclose(smk.entmax_loss_grad(x, t, alpha=1.0), smk.cross_entropy_grad(x, t), atol=1e-16)


# ---------------------------------------------------------------- gradients

def fd(f, x, h=1e-5):
    """4th-order central differences of a scalar function."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h)
    return g


@pytest.mark.parametrize("alpha", ALPHAS)
def test_backward_matches_finite_differences(alpha):
    x = rows(10, shape=(3, 6), scale=1.0)
    w = rows(11, shape=(3, 6))
    y = smk.entmax_bisect(x, alpha=alpha)
    # stay away from the kinks where an entry enters the support
    got = smk.entmax_bisect_backward(y, w, alpha=alpha)
    num = fd(lambda z: float((w * smk.entmax_bisect(z, alpha=alpha)).sum()), x)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)
    for i in range(3):
        np.testing.assert_allclose(got[i], twin.entmax_backward(y[i], w[i], alpha), atol=1e-14)


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 2.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_gradient_matches_finite_differences(alpha, reduction):
    x = rows(12, shape=(4, 5), scale=1.0)
    t = np.array([0, 3, 2, 4])
    got_loss, got = smk.entmax_loss_and_grad(x, t, alpha=alpha, reduction=reduction)
    num = fd(lambda z: float(smk.entmax_loss(z, t, alpha=alpha, reduction=reduction)), x)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-9)
    assert got_loss == smk.entmax_loss(x, t, alpha=alpha, reduction=reduction)


def test_loss_zero_at_a_confident_correct_prediction_and_ignore_index():
    x = np.array([[10.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    t = np.array([0, 1, -100])
    per = smk.sparsemax_loss(x, t, reduction="none", ignore_index=-100)
    assert per[0] == 0 and per[1] == 0 and per[2] == 0
    g = smk.sparsemax_loss_grad(x, t, ignore_index=-100)
    np.testing.assert_array_equal(g, 0.0)
    x[1, 1] = 0.2  # now wrong-ish: positive loss, mean over the 2 live rows
    per = smk.sparsemax_loss(x, t, reduction="none", ignore_index=-100)
    assert per[1] > 0
    assert smk.sparsemax_loss(x, t, ignore_index=-100) == pytest.approx(per[:2].mean())


# ---------------------------------------------------------------- conventions, plumbing, errors

def test_nonfinite_rows():
    x = np.array([[np.nan, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, np.inf], [0.0, -np.inf, 1.0]])
    for alpha in [1.5, 2.0, 3.0]:
        y = smk.entmax_bisect(x, alpha=alpha)
        assert np.isnan(y[0]).all()
        np.testing.assert_array_equal(y[1], 0.0)
        np.testing.assert_array_equal(y[2], [0.5, 0.0, 0.5])
        assert y[3, 1] == 0 and abs(y[3].sum() - 1) < 1e-15


def test_dtypes_axes_layouts_threads(num_threads):
    x = rows(13, shape=(40, 1000))
    ref = smk.entmax15(x)
    y32 = smk.entmax15(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, ref, atol=2e-6)
    np.testing.assert_array_equal(smk.entmax15(x.T, axis=0), ref.T)
    np.testing.assert_array_equal(smk.entmax15(np.asfortranarray(x)), ref)
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(smk.entmax15(ro), ref)
    before = x.copy()
    smk.sparsemax_backward(smk.sparsemax(x), x)
    np.testing.assert_array_equal(x, before)
    assert smk.sparsemax(np.arange(3)).dtype == np.float64
    assert smk.entmax15_backward(y32, x.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(smk.sparsemax(np.zeros((2, 0))), np.zeros((2, 0)))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: smk.entmax_bisect([1.0], alpha=0.5), ValueError, "alpha must be a finite number >= 1"),
    (lambda: smk.entmax_bisect([1.0], alpha=np.nan), ValueError, "alpha must be"),
    (lambda: smk.entmax_bisect([1.0], alpha="2"), TypeError, "alpha must be a real number"),
    (lambda: smk.sparsemax(1.0), ValueError, "at least one dimension"),
    (lambda: smk.sparsemax([[1.0]], axis=(0, 1)), TypeError, "axis must be a single int"),
    (lambda: smk.sparsemax_backward([1.0, 0.0], [1.0]), ValueError, "grad_output has shape"),
    (lambda: smk.sparsemax_loss([[1.0, 2.0]], [2]), ValueError, r"target\[0\] = 2 is not a class index"),
    (lambda: smk.sparsemax_loss([[1.0, 2.0]], [0.5]), TypeError, "target must hold integer class indices"),
    (lambda: smk.entmax_loss([[1.0, 2.0]], [0], reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: ext.entmax(np.zeros(2), np.zeros(2), 1, 2, 1.0, 1), ValueError, "alpha must be finite and > 1"),
    (lambda: ext.entmax(np.zeros(2), np.zeros(1), 1, 2, 2.0, 1), ValueError, "'out' holds 1 items, 2 needed"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
