"""cross_entropy's LLM options (issue 11: the unfused path takes the same z_loss,
softcap and temperature as linear_cross_entropy, with the same definitions):
against a torch autograd reference, finite differences, and bad values."""
from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as smk

torch = pytest.importorskip("torch")

CASES = [(1e-2, None, 1.0), (0.0, 5.0, 1.0), (0.0, None, 0.7), (0.1, 4.0, 1.3)]


def _torch_reference(z, t, w, sw, eps, reduction, z_loss, softcap, temperature, soft=None):
    zz = torch.tensor(z, requires_grad=True)
    zp = zz if softcap is None else softcap * torch.tanh(zz / softcap)
    zp = zp / temperature
    lse = torch.logsumexp(zp, 1)
    if soft is None:
        tt = torch.tensor(t)
        ce = torch.nn.functional.cross_entropy(zp, tt, weight=torch.tensor(w), ignore_index=-100,
                                               label_smoothing=eps, reduction="none")
        wy = torch.tensor(w)[tt.clamp(min=0)] * (tt != -100).double()
    else:
        ce = torch.nn.functional.cross_entropy(zp, torch.tensor(soft), label_smoothing=eps,
                                               reduction="none")
        wy = torch.ones(len(z), dtype=torch.float64)
    rows = (ce + z_loss * wy * lse**2) * torch.tensor(sw)
    if reduction == "mean":
        value = rows.sum() / (wy * torch.tensor(sw)).sum()
    elif reduction == "sum":
        value = rows.sum()
    else:
        value = rows
    (grad,) = torch.autograd.grad(value.sum(), zz)
    return value.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("z_loss,softcap,temperature", CASES)
def test_options_match_torch(dtype, reduction, eps, z_loss, softcap, temperature):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 5)) * 3
    t = np.array([0, 1, 2, 3, 4, -100])
    w, sw = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 6)
    want, want_g = _torch_reference(z, t, w, sw, eps, reduction, z_loss, softcap, temperature)
    loss, grad = smk.cross_entropy_and_grad(
        z.astype(dtype), t, weight=w, sample_weight=sw, ignore_index=-100, label_smoothing=eps,
        reduction=reduction, z_loss=z_loss, softcap=softcap, temperature=temperature)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(loss, want, rtol=rtol)
    np.testing.assert_allclose(grad, want_g, rtol=rtol * 10, atol=rtol / 10)
    assert grad.dtype == dtype


@pytest.mark.parametrize("z_loss,softcap,temperature", CASES)
def test_options_soft_labels_match_torch(z_loss, softcap, temperature):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 6)) * 2
    q = smk.softmax(rng.normal(size=(4, 6)))
    sw = np.ones(4)
    want, want_g = _torch_reference(z, None, None, sw, 0.05, "mean", z_loss, softcap,
                                    temperature, soft=q)
    loss, grad = smk.cross_entropy_and_grad(z, q, label_smoothing=0.05, z_loss=z_loss,
                                            softcap=softcap, temperature=temperature)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_g, rtol=1e-10, atol=1e-14)


def test_options_finite_differences():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(3, 4)) * 4
    t = np.array([1, 0, 3])
    kw = dict(z_loss=0.05, softcap=3.0, temperature=0.8, label_smoothing=0.1)
    grad = smk.cross_entropy_grad(z, t, **kw)
    h = 1e-4
    num = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = h
        f = [float(smk.cross_entropy(z + k * e, t, **kw)) for k in (2, 1, -1, -2)]
        num[idx] = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-7, atol=1e-10)


def test_options_on_the_loss_object_and_its_fast_path():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 7))
    t = rng.integers(0, 7, 5)
    ce = smk.CrossEntropyLoss(z_loss=1e-3, softcap=2.0, temperature=1.5, reduction="sum")
    loss, grad = ce.loss_gradient(np.ascontiguousarray(z), t.astype(np.int64))
    want, want_g = smk.cross_entropy_and_grad(z, t, z_loss=1e-3, softcap=2.0, temperature=1.5,
                                              reduction="sum")
    assert loss == pytest.approx(float(want), rel=1e-14)
    np.testing.assert_allclose(grad, want_g, rtol=1e-14)
    assert "softcap=2.0" in repr(ce)


@pytest.mark.parametrize("kwargs,match", [
    (dict(z_loss=-1.0), "z_loss must be a finite number >= 0"),
    (dict(z_loss=np.inf), "z_loss"),
    (dict(softcap=0.0), "softcap must be a finite number > 0 or None"),
    (dict(softcap=-2.0), "softcap"),
    (dict(temperature=0.0), "temperature"),
    (dict(softcap=1.0, from_logits=False), "apply to logits"),
])
def test_options_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        smk.cross_entropy(np.full((1, 2), 0.5), [0], **kwargs)
