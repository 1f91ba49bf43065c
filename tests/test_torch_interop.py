"""softmaxkit.torch: same signatures, values and gradients as torch.nn.functional,
zero-copy kernels on CPU, torch's own ops elsewhere, and a real training loop."""
import inspect
import itertools
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
smt = pytest.importorskip("softmaxkit.torch")

from softmaxkit import _linear_ce  # noqa: E402


def test_import_softmaxkit_does_not_import_torch():
    code = (
        "import sys, softmaxkit, softmaxkit.app.cli; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "KLDivLoss"])
def test_modules_are_torchs_with_our_forward(name):
    ours, theirs = getattr(smt, name), getattr(torch.nn, name)
    assert issubclass(ours, theirs) and ours.forward is not theirs.forward
    assert _params(ours.__init__) == _params(theirs.__init__)


def _params(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
                                  "kl_div", "softmax", "log_softmax", "linear_cross_entropy"])
def test_signatures_are_torchs(name):
    if not hasattr(F, name):
        pytest.skip(f"this torch has no F.{name}")
    assert _params(getattr(smt, name)) == _params(getattr(F, name))


# ------------------------------------------------------------------ cross_entropy


def make_case(gen, shape, dtype, soft):
    c = shape[1] if len(shape) > 1 else shape[0]
    x = (3 * torch.randn(shape, generator=gen, dtype=dtype)).requires_grad_(True)
    if soft:
        t = torch.softmax(torch.randn(shape, generator=gen, dtype=dtype), dim=1 if len(shape) > 1 else 0)
    else:
        tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        t = torch.randint(0, c, tshape, generator=gen)
        if t.dim():
            t.view(-1)[::3] = -100  # ignored rows
    return x, t


CE_GRID = list(itertools.product(
    [(5,), (7, 5), (4, 5, 3, 2)],  # (C,), (N, C), (N, C, d1, d2)
    [False, True],  # soft labels
    [False, True],  # class weights
    [0.0, 0.2],  # label smoothing
    ["mean", "sum", "none"],
))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cross_entropy_matches_torch(dtype):
    gen = torch.Generator().manual_seed(0)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    for shape, soft, weighted, eps, reduction in CE_GRID:
        x, t = make_case(gen, shape, dtype, soft)
        c = shape[1] if len(shape) > 1 else shape[0]
        w = torch.rand(c, generator=gen, dtype=dtype) + 0.5 if weighted else None
        kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
        ours = smt.cross_entropy(x, t, **kw)
        ref = F.cross_entropy(x, t, **kw)
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        torch.testing.assert_close(ours, ref, **tol)
        go = torch.rand(ref.shape, generator=gen, dtype=dtype) + 0.5  # a non-trivial upstream gradient
        (g_ours,) = torch.autograd.grad(ours, x, go)
        (g_ref,) = torch.autograd.grad(ref, x, go)
        torch.testing.assert_close(g_ours, g_ref, **tol)


def test_cross_entropy_gradcheck():
    gen = torch.Generator().manual_seed(1)
    for shape, soft, reduction in [((6, 4), False, "mean"), ((6, 4), True, "none"),
                                   ((3, 4, 2), False, "none"), ((4,), False, "sum")]:
        x, t = make_case(gen, shape, torch.float64, soft)
        w = torch.rand(4, generator=gen, dtype=torch.float64) + 0.5
        fn = lambda x: smt.cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction=reduction)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))


def test_legacy_reduction_arguments():
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1, 0])
    with pytest.warns(UserWarning):
        ours = smt.cross_entropy(x, t, size_average=False)
    torch.testing.assert_close(ours, F.cross_entropy(x, t, reduction="sum"))
    with pytest.warns(UserWarning):
        ours = smt.cross_entropy(x, t, reduce=False)
    torch.testing.assert_close(ours, F.cross_entropy(x, t, reduction="none"))


def test_all_ignored_mean_is_nan_with_zero_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.full((3,), -100)
    loss = smt.cross_entropy(x, t)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(x, t))
    loss.backward()
    assert not x.grad.any()


def test_stable_in_float32():
    x = torch.tensor([[0.0, 120.0]], requires_grad=True)
    loss = smt.cross_entropy(x, torch.tensor([0]))
    loss.backward()
    assert loss.item() == 120.0 and torch.isfinite(x.grad).all()


def test_bad_label_is_a_value_error():
    with pytest.raises(ValueError, match="target"):
        smt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 3]))


def test_no_copy_of_the_input():
    # NumPy's allocations are traced, torch's are not: on the kernel path the only
    # traced array is the gradient; a copy of the logits would double the peak.
    x = torch.randn(512, 1000).requires_grad_(True)
    t = torch.randint(0, 1000, (512,))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        smt.cross_entropy(x, t).backward()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * x.numel() * 4, peak


# ----------------------------------------------------------- linear_cross_entropy


def lce_case(gen, n=11, h=6, v=9, dtype=torch.float64):
    x = torch.randn(n, h, generator=gen, dtype=dtype).requires_grad_(True)
    w = torch.randn(v, h, generator=gen, dtype=dtype).requires_grad_(True)
    b = torch.randn(v, generator=gen, dtype=dtype).requires_grad_(True)
    t = torch.randint(0, v, (n,), generator=gen)
    t[::4] = -100
    return x, w, b, t


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_linear_cross_entropy_matches_torch(dtype):
    gen = torch.Generator().manual_seed(2)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for reduction, eps, weighted, with_bias in itertools.product(
            ["mean", "sum", "none"], [0.0, 0.1], [False, True], [False, True]):
        x, w, b, t = lce_case(gen, dtype=dtype)
        b = b if with_bias else None
        cw = torch.rand(9, generator=gen, dtype=dtype) + 0.5 if weighted else None
        kw = dict(linear_bias=b, weight=cw, reduction=reduction, label_smoothing=eps)
        ours = smt.linear_cross_entropy(x, w, t, **kw)
        ref = F.linear_cross_entropy(x, w, t, **kw)
        torch.testing.assert_close(ours, ref, **tol)
        go = torch.rand(ref.shape, generator=gen, dtype=dtype) + 0.5
        params = [p for p in (x, w, b) if p is not None]
        for g1, g2 in zip(torch.autograd.grad(ours, params, go), torch.autograd.grad(ref, params, go)):
            torch.testing.assert_close(g1, g2, **tol)


def test_linear_cross_entropy_gradcheck():
    gen = torch.Generator().manual_seed(3)
    for reduction in ["mean", "none"]:
        x, w, b, t = lce_case(gen, n=5, h=3, v=4)
        t[1] = -100
        fn = lambda x, w, b: smt.linear_cross_entropy(  # noqa: E731
            x, w, t, linear_bias=b, reduction=reduction, label_smoothing=0.1)
        assert torch.autograd.gradcheck(fn, (x, w, b))


def test_linear_cross_entropy_frozen_weight_unbatched_and_options(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    x, w, b, t = lce_case(gen)
    w.requires_grad_(False)
    needs = []
    real_pass = _linear_ce._pass
    monkeypatch.setattr(_linear_ce, "_pass",
                        lambda p, coef=None, need=(False,) * 3, *a: (needs.append(need), real_pass(p, coef, need, *a))[1])
    opts = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=3)
    loss = smt.linear_cross_entropy(x, w, t, linear_bias=b, options=opts)
    loss.backward()
    assert needs == [(True, False, True)]  # no grad_weight formed for a frozen weight
    ref_x = x.detach().clone().requires_grad_(True)
    F.cross_entropy(F.linear(ref_x, w, b), t).backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-14)
    # (H,) input with a () target, as torch allows
    x1 = x[2].detach().requires_grad_(True)
    for reduction in ["mean", "none"]:
        ours = smt.linear_cross_entropy(x1, w, t[2], reduction=reduction)
        assert ours.shape == ()
        torch.testing.assert_close(ours, F.linear_cross_entropy(x1, w, t[2], reduction=reduction))


def test_linear_cross_entropy_falls_back_for_soft_targets():
    gen = torch.Generator().manual_seed(5)
    x, w, b, _ = lce_case(gen)
    q = torch.softmax(torch.randn(11, 9, generator=gen, dtype=torch.float64), 1)
    torch.testing.assert_close(smt.linear_cross_entropy(x, w, q), F.linear_cross_entropy(x, w, q))


# -------------------------------------------------------------- training loops


def train(loss_fn, steps=25, seed=0):
    """A small two-layer classifier trained with SGD; returns the loss per step."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(99)
    x = torch.randn(64, 10, generator=gen, dtype=torch.float64)
    y = (x[:, :3].argmax(1) + 2 * (x[:, 3] > 0)).long()  # 6 classes, learnable
    body = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh()).double()
    head = torch.nn.Linear(32, 6).double()
    opt = torch.optim.SGD(list(body.parameters()) + list(head.parameters()), lr=0.5)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(body(x), head, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


@pytest.mark.parametrize("kind", ["cross_entropy", "linear_cross_entropy"])
def test_training_loop_matches_torch(kind):
    if kind == "cross_entropy":
        ours = train(lambda h, head, y: smt.cross_entropy(head(h), y, label_smoothing=0.05))
        ref = train(lambda h, head, y: F.cross_entropy(head(h), y, label_smoothing=0.05))
    else:
        ours = train(lambda h, head, y: smt.linear_cross_entropy(h, head.weight, y, linear_bias=head.bias))
        ref = train(lambda h, head, y: F.linear_cross_entropy(h, head.weight, y, linear_bias=head.bias))
    assert ours[-1] < 0.6 * ours[0]  # it learns
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_doc_examples():
    import doctest

    from softmaxkit.torch import _functional, _linear_legacy, _modules

    attempted = 0
    for module in (smt, _functional, _modules, _linear_legacy):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0
        attempted += result.attempted
    assert attempted >= 20


def test_linear_cross_entropy_double_backward_equals_torch():
    # issue 10: create_graph=True used to return a gradient with no grad_fn, so a
    # gradient penalty through it was silently wrong; now it is exact.
    torch.manual_seed(0)
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 4, 2])
    grads = []
    for fn in (smt.linear_cross_entropy, F.linear_cross_entropy):
        loss = fn(h, w, t, label_smoothing=0.1)
        (g,) = torch.autograd.grad(loss, h, create_graph=True)
        assert g.grad_fn is not None
        grads.append(torch.autograd.grad(loss + 10 * (g**2).sum(), (h, w)))
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    fn = lambda h, w: smt.linear_cross_entropy(h, w, t, reduction="none")  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (h, w))
