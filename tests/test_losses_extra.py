"""focal_loss, sigmoid_focal_loss, poly1_cross_entropy, multi_margin_loss and the
backward passes of logsumexp / log_sigmoid / softplus: against PyTorch (its own
functions, or hand-written torch references where torch has none) on random inputs,
finite differences, worked examples, edge cases and errors."""
import numpy as np
from fd import fd_grad
from losses_reference import torchvision_sigmoid_focal_loss
import pytest

import softmaxkit as smk

torch = pytest.importorskip("torch")
F = torch.nn.functional


def data(seed=0, n=9, c=5, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)) * scale, rng.integers(0, c, size=n)



def fd(f, x, h=1e-5):
    return fd_grad(f, x, h)


def torch_loss_and_grad(fn, x, *args):
    xt = torch.tensor(x, requires_grad=True)
    loss = fn(xt, *args)
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


# ---------------------------------------------------------------- focal loss

def torch_focal(xt, t, gamma):
    """The multi-class focal loss as commonly written in torch (per row)."""
    lp = F.log_softmax(xt, dim=-1).gather(1, t[:, None])[:, 0]
    return -((1 - lp.exp()) ** gamma) * lp


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_loss_matches_torch(gamma):
    x, t = data(1)
    ref_loss, ref_grad = torch_loss_and_grad(torch_focal, x, torch.tensor(t), gamma)
    loss, grad = smk.focal_loss_and_grad(x, t, gamma=gamma, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
    mean_loss, mean_grad = smk.focal_loss_and_grad(x, t, gamma=gamma)
    assert mean_loss == pytest.approx(ref_loss.mean(), rel=1e-13)
    np.testing.assert_allclose(mean_grad, ref_grad / len(t), rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(
        mean_grad, fd(lambda z: float(smk.focal_loss(z, t, gamma=gamma)), x), rtol=1e-7, atol=1e-10)


def test_focal_loss_edges():
    x, t = data(2)
    np.testing.assert_allclose(smk.focal_loss(x, t, gamma=0.0), smk.cross_entropy(x, t), rtol=1e-14)
    # a confident correct row: p_y = 1 to float64, gamma < 1: gradient finite and ~0
    z = np.array([[60.0, 0.0, 0.0]])
    g = smk.focal_loss_grad(z, [0], gamma=0.5)
    assert np.isfinite(g).all() and np.abs(g).max() < 1e-20
    # float32 logits far apart: no overflow, loss = (1 - p)^gamma * 120 ~ 120
    assert smk.focal_loss(np.float32([[0.0, 120.0]]), [0], gamma=2.0) == pytest.approx(120.0)
    loss = smk.focal_loss(x, np.where(np.arange(9) < 3, -100, t), ignore_index=-100, reduction="none")
    assert (loss[:3] == 0).all() and (loss[3:] > 0).all()
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        smk.focal_loss(x, t, gamma=-1.0)


# ---------------------------------------------------------------- sigmoid focal loss



@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 0.5), (0.9, 3.0)])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_loss_matches_torchvision(alpha, gamma, soft, reduction):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 7)) * 3
    y = rng.uniform(size=x.shape) if soft else (rng.uniform(size=x.shape) < 0.3).astype(float)
    xt = torch.tensor(x, requires_grad=True)
    ref = torchvision_sigmoid_focal_loss(xt, torch.tensor(y), alpha, gamma, reduction)
    ref.sum().backward()
    loss, grad = smk.sigmoid_focal_loss_and_grad(x, y, alpha=alpha, gamma=gamma, reduction=reduction)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-11)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_sigmoid_focal_loss_gradient_and_large_logits():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4)) * 2
    y = rng.uniform(size=x.shape)
    np.testing.assert_allclose(
        smk.sigmoid_focal_loss_grad(x, y, reduction="sum"),
        fd(lambda z: float(smk.sigmoid_focal_loss(z, y, reduction="sum")), x), rtol=1e-7, atol=1e-10)
    # far from 0: the BCE term is softplus(x) - t x without overflow, 1 - p_t from sigmoid(+-x)
    big = smk.sigmoid_focal_loss(np.array([40.0, -800.0]), np.array([0.0, 1.0]), alpha=-1, gamma=1.0)
    np.testing.assert_allclose(big, [40.0 * 1.0, 800.0], rtol=1e-12)
    assert smk.sigmoid_focal_loss(np.float32(0), np.float32(1)).dtype == np.float32
    with pytest.raises(ValueError, match="targets has shape"):
        smk.sigmoid_focal_loss(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="alpha must be in"):
        smk.sigmoid_focal_loss(np.zeros(3), np.zeros(3), alpha=1.5)


# ---------------------------------------------------------------- PolyLoss

@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 1.0, 4.5])
def test_poly1_matches_torch(epsilon):
    x, t = data(5)
    tt = torch.tensor(t)

    def ref(xt):  # Leng et al.'s poly1_cross_entropy, hard labels
        ce = F.cross_entropy(xt, tt, reduction="none")
        pt = F.softmax(xt, dim=-1).gather(1, tt[:, None])[:, 0]
        return ce + epsilon * (1 - pt)

    ref_loss, ref_grad = torch_loss_and_grad(ref, x)
    loss, grad = smk.poly1_cross_entropy_and_grad(x, t, epsilon=epsilon, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(
        smk.poly1_cross_entropy_grad(x, t, epsilon=epsilon),
        fd(lambda z: float(smk.poly1_cross_entropy(z, t, epsilon=epsilon)), x), rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= -1"):
        smk.poly1_cross_entropy(x, t, epsilon=-2.0)


# ---------------------------------------------------------------- multi-class hinge

@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multi_margin_loss_matches_torch(p, margin, weighted, reduction):
    x, t = data(6, scale=0.7)
    w = np.random.default_rng(7).uniform(0.5, 2.0, size=5) if weighted else None
    xt = torch.tensor(x, requires_grad=True)
    ref = F.multi_margin_loss(xt, torch.tensor(t), p=p, margin=margin,
                              weight=None if w is None else torch.tensor(w), reduction=reduction)
    ref.sum().backward()
    loss, grad = smk.multi_margin_loss_and_grad(x, t, p=p, margin=margin, weight=w, reduction=reduction)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_multi_margin_loss_errors():
    x, t = data(8)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        smk.multi_margin_loss(x, t, p=3)
    with pytest.raises(ValueError, match="weight has shape"):
        smk.multi_margin_loss(x, t, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="margin must be finite"):
        smk.multi_margin_loss(x, t, margin=np.inf)
    with pytest.raises(ValueError, match=r"target\[0\] = 9 is not a class index"):
        smk.multi_margin_loss(x, np.full(9, 9))


# ---------------------------------------------------------------- backward passes

@pytest.mark.parametrize("beta, threshold", [(1.0, None), (1.0, 20.0), (2.5, 3.0), (0.5, 1.0)])
def test_softplus_beta_threshold_matches_torch(beta, threshold):
    x = np.concatenate([np.linspace(-50, 50, 41), [-800.0, 800.0]])
    g = np.random.default_rng(9).normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.softplus(xt, beta=beta, threshold=20.0 if threshold is None else threshold)
    yt.backward(torch.tensor(g))
    y = smk.softplus(x, beta=beta, threshold=threshold)
    if threshold is None:  # exact everywhere, torch switches to x at 20: within exp(-20)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-8, atol=0)
        np.testing.assert_allclose(smk.softplus_backward(x, g, beta=beta), xt.grad.numpy(), atol=3e-9)
    else:
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15)
        np.testing.assert_allclose(smk.softplus_backward(x, g, beta=beta, threshold=threshold),
                                   xt.grad.numpy(), rtol=1e-15)
    np.testing.assert_array_equal(smk.softplus(x), smk.softplus(x))
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        smk.softplus_backward(x, g, beta=0.0)


def test_log_sigmoid_and_logsumexp_backward_match_torch():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.normal(size=20) * 5, [-1000.0, 1000.0]])
    g = rng.normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    F.logsigmoid(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(smk.log_sigmoid_backward(x, g), xt.grad.numpy(), rtol=1e-15)
    a = rng.normal(size=(3, 4, 5)) * 3
    for axis, keep in [(-1, False), (1, True), ((0, 2), False)]:
        at = torch.tensor(a, requires_grad=True)
        dims = axis if isinstance(axis, tuple) else (axis,)
        out = torch.logsumexp(at, dim=dims, keepdim=keep)
        go = rng.normal(size=tuple(out.shape))
        out.backward(torch.tensor(go))
        np.testing.assert_allclose(smk.logsumexp_backward(a, go, axis, keepdims=keep), at.grad.numpy(),
                                   rtol=1e-13, atol=1e-16)
    np.testing.assert_array_equal(smk.logsumexp_backward([np.inf, 0.0, np.inf], 1.0), [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(smk.logsumexp_backward([-np.inf, -np.inf], 1.0), [0.0, 0.0])
    with pytest.raises(ValueError, match=r"grad_output has shape \(2,\), expected \(3,\)"):
        smk.logsumexp_backward(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="grad_output has shape"):
        smk.log_sigmoid_backward(np.zeros(3), np.zeros(2))
    assert smk.log_sigmoid_backward(np.float32([0.0]), np.float32([1.0])).dtype == np.float32


# ---------------------------------------------------------------- binary label smoothing

@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_label_smoothing_is_keras(eps, reduction):
    """Keras: y_true * (1 - label_smoothing) + 0.5 * label_smoothing, then the loss;
    checked against torch on the smoothed targets (values and gradients)."""
    rng = np.random.default_rng(11)
    z = rng.normal(size=(4, 6)) * 3
    y = (rng.uniform(size=z.shape) < 0.4).astype(float)
    pw = rng.uniform(0.5, 2.0, size=6)
    ys = torch.tensor(y * (1 - eps) + 0.5 * eps)
    zt = torch.tensor(z, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(zt, ys, pos_weight=torch.tensor(pw), reduction=reduction)
    ref.sum().backward()
    loss, grad = smk.binary_cross_entropy_with_logits_and_grad(z, y, pos_weight=pw, reduction=reduction,
                                                               label_smoothing=eps)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-16)
    assert smk.binary_cross_entropy_with_logits(z, y, label_smoothing=eps, reduction=reduction) == pytest.approx(
        smk.binary_cross_entropy_with_logits(z, y * (1 - eps) + 0.5 * eps, reduction=reduction), rel=1e-14)
    p = 1 / (1 + np.exp(-z))
    pt = torch.tensor(p, requires_grad=True)
    ref = F.binary_cross_entropy(pt, ys, reduction=reduction)
    ref.sum().backward()
    loss, grad = smk.binary_cross_entropy_and_grad(p, y, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(smk.BCEWithLogitsLoss(label_smoothing=eps, reduction=reduction).grad(z, y),
                               smk.binary_cross_entropy_with_logits_grad(z, y, label_smoothing=eps,
                                                                         reduction=reduction))


def test_binary_label_smoothing_errors():
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        smk.binary_cross_entropy_with_logits([0.0], [1.0], label_smoothing=1.5)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        smk.binary_cross_entropy([0.5], [1.0], label_smoothing="0.1")
