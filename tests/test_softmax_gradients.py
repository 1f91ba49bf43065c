"""Backward passes against 4th-order finite differences, and against PyTorch."""
import numpy as np
from fd import fd_grad
import pytest

import softmaxkit as smk




@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_backward_finite_differences(axis):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)) * 2
    w = rng.normal(size=(3, 5))  # the scalar is sum(w * softmax(x)), so g = w
    grad = smk.softmax_backward(smk.softmax(x, axis=axis), w, axis=axis)
    fd = fd_grad(lambda z: float((w * smk.softmax(z, axis=axis)).sum()), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_backward_finite_differences(axis):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3)) * 2
    w = rng.normal(size=(4, 3))
    grad = smk.log_softmax_backward(smk.log_softmax(x, axis=axis), w, axis=axis)
    fd = fd_grad(lambda z: float((w * smk.log_softmax(z, axis=axis)).sum()), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-8, atol=1e-10)


def test_masked_log_softmax_backward_matches_finite_differences_on_kept_entries():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5))
    mask = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1]], bool)
    w = rng.normal(size=(2, 5))

    def f(z):
        lp = smk.log_softmax(z, where=mask)
        return float((np.where(mask, w * lp, 0.0)).sum())

    grad = smk.log_softmax_backward(smk.log_softmax(x, where=mask), w)
    np.testing.assert_allclose(grad, fd_grad(f, x), rtol=1e-8, atol=1e-10)
    assert (grad[~mask] == 0).all()


def fd_elementwise(f, x, h=1e-3):
    """Derivative of an elementwise f, all points at once (same 4th-order stencil)."""
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


def test_sigmoid_and_log_sigmoid_and_softplus_derivatives():
    x = np.linspace(-30, 30, 41)
    s = smk.sigmoid(x)
    # Values near 1 (x > 0) leave the stencil an absolute rounding floor of about
    # eps / h = 2e-13; the x < 0 half checks the small derivatives relatively.
    np.testing.assert_allclose(smk.sigmoid_backward(s, np.ones_like(x)), fd_elementwise(smk.sigmoid, x), rtol=1e-7, atol=1e-12)
    # d softplus / dx = sigmoid(x); d log_sigmoid / dx = 1 - sigmoid(x) = sigmoid(-x)
    np.testing.assert_allclose(fd_elementwise(smk.softplus, x), s, rtol=1e-7)
    np.testing.assert_allclose(fd_elementwise(smk.log_sigmoid, x), smk.sigmoid(-x), rtol=1e-7, atol=1e-12)


def test_second_derivative_of_logsumexp_is_softmax_jacobian():
    # d^2 lse / dx_i dx_j = diag(p) - p p^T; check via finite differences of the
    # analytic first derivative (softmax) pushed through softmax_backward.
    rng = np.random.default_rng(3)
    x = rng.normal(size=4)
    p = smk.softmax(x)
    hess = np.diag(p) - np.outer(p, p)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1.0
        np.testing.assert_allclose(smk.softmax_backward(p, e), hess[j], rtol=1e-13, atol=1e-16)
        fd = fd_grad(lambda z: float(smk.softmax(z)[j]), x)
        np.testing.assert_allclose(fd, hess[j], rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(fd_grad(lambda z: float(smk.logsumexp(z)), x), p, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(6, 33)) * 5).astype(dtype)
    g = rng.normal(size=(6, 33)).astype(dtype)
    tol = dict(rtol=2e-6, atol=2e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for ours, theirs, back in (
        (smk.softmax, torch.softmax, smk.softmax_backward),
        (smk.log_softmax, torch.log_softmax, smk.log_softmax_backward),
    ):
        t = torch.tensor(x, requires_grad=True)
        y = theirs(t, -1)
        y.backward(torch.from_numpy(g))
        out = ours(x)
        np.testing.assert_allclose(out, y.detach().numpy(), **tol)
        np.testing.assert_allclose(back(out, g), t.grad.numpy(), **tol)
    t = torch.tensor(x, requires_grad=True)
    torch.logsumexp(t, -1).sum().backward()
    np.testing.assert_allclose(smk.logsumexp(x), torch.logsumexp(torch.from_numpy(x), -1).numpy(), **tol)
    np.testing.assert_allclose(smk.softmax(x), t.grad.numpy(), **tol)
    t = torch.tensor(x, requires_grad=True)
    s = torch.sigmoid(t)
    s.backward(torch.from_numpy(g))
    np.testing.assert_allclose(smk.sigmoid(x), s.detach().numpy(), **tol)
    np.testing.assert_allclose(smk.sigmoid_backward(smk.sigmoid(x), g), t.grad.numpy(), **tol)
    np.testing.assert_allclose(smk.log_sigmoid(x), torch.nn.functional.logsigmoid(torch.from_numpy(x)).numpy(), **tol)
    np.testing.assert_allclose(smk.softplus(x), torch.nn.functional.softplus(torch.from_numpy(x)).numpy(), **tol)
