"""softmaxkit.torch (the fused linear head): the autograd Function, the functional forms and the
module, against torch's own composition of the same operations (float64 to 1e-12),
gradcheck and gradgradcheck (double backward), the per-row outputs' gradients,
torch.compile(fullgraph=True), and the documented limits."""
import doctest
import logging
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from softmaxkit.torch import _linear as _torch_linear  # noqa: E402
from softmaxkit.torch import (  # noqa: E402
    LinearCrossEntropyLoss,
    fused_linear_cross_entropy,
    fused_linear_cross_entropy_full,
    linear_cross_entropy,
)


def case(seed=0, n=13, h=4, v=9, dtype=torch.float64, ignore=-100):
    g = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(n, h, generator=g, dtype=dtype)).requires_grad_(True)
    w = torch.randn(v, h, generator=g, dtype=dtype).requires_grad_(True)
    b = torch.randn(v, generator=g, dtype=dtype).requires_grad_(True)
    t = torch.randint(0, v, (n,), generator=g)
    if ignore is not None:
        t[::5] = ignore
    cw = torch.rand(v, generator=g, dtype=dtype) + 0.2
    return x, w, b, t, cw


def reference(x, w, b, t, cw=None, ignore=-100, eps=0.0, reduction="mean", z_loss=0.0,
              softcap=None, temperature=1.0):
    """torch's own ops: (loss incl. z-loss, z-loss, lse, logprob, entropy)."""
    a = F.linear(x, w, b)
    z = softcap * torch.tanh(a / softcap) if softcap is not None else a
    z = z / temperature
    ce = F.cross_entropy(z, t, weight=cw, ignore_index=ignore, label_smoothing=eps,
                         reduction="none")
    counted = t != ignore
    ts = torch.where(counted, t, 0)
    rw = torch.where(counted, (torch.ones_like(z[0]) if cw is None else cw)[ts], 0.0)
    lse = torch.logsumexp(z, 1)
    zt = z_loss * rw * lse**2
    logp = torch.log_softmax(z, 1)
    lp = torch.where(counted, logp.gather(1, ts[:, None])[:, 0], 0.0)
    ent = -(logp.exp() * logp).sum(1)

    def red(r):
        return {"none": r, "sum": r.sum(), "mean": r.sum() / rw.sum()}[reduction]

    return red(ce + zt), red(zt), lse, lp, ent


OPTIONS = [
    dict(),
    dict(eps=0.1, cw=True),
    dict(z_loss=0.02),
    dict(softcap=2.0, temperature=0.7),
    dict(softcap=3.0, z_loss=0.05, eps=0.2, cw=True, temperature=1.3),
]


def split(opts, cw):
    o = dict(opts)
    use_cw = o.pop("cw", False)
    ours = dict(class_weight=cw if use_cw else None, label_smoothing=o.pop("eps", 0.0), **o)
    ref = dict(cw=cw if use_cw else None, eps=ours["label_smoothing"], **o)
    return ours, ref


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_and_gradients_equal_torch_float64(opts, reduction):
    x, w, b, t, cw = case()
    ours_kw, ref_kw = split(opts, cw)
    loss = fused_linear_cross_entropy(x, w, t, bias=b, reduction=reduction, chunk_size=4, **ours_kw)
    up = torch.linspace(-1.0, 2.0, t.numel(), dtype=x.dtype) if reduction == "none" else torch.tensor(1.7, dtype=x.dtype)
    gx, gw, gb = torch.autograd.grad((loss * up).sum(), (x, w, b))
    ref = reference(x, w, b, t, reduction=reduction, **ref_kw)[0]
    rx, rw, rb = torch.autograd.grad((ref * up).sum(), (x, w, b))
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-14)
    for got, want in ((gx, rx), (gw, rw), (gb, rb)):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)


def test_outputs_and_their_gradients_equal_torch():
    # an RL-style objective: per-row weights on logprob, an entropy bonus, the z-loss
    x, w, b, t, cw = case(seed=1)
    kw = dict(bias=b, softcap=4.0, temperature=0.9, z_loss=0.01, chunk_size=5)
    out = fused_linear_cross_entropy_full(x, w, t, outputs=("lse", "logprob", "entropy", "argmax"), **kw)
    loss, zl, lse, lp, ent = reference(x, w, b, t, softcap=4.0, temperature=0.9, z_loss=0.01)
    for got, want in ((out.loss, loss), (out.z_loss, zl), (out.lse, lse), (out.logprob, lp),
                      (out.entropy, ent)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    adv = torch.linspace(-1, 1, t.numel(), dtype=x.dtype)
    obj = lambda o: 0.3 * o[0] + 2.0 * o[1] - (adv * o[3]).sum() - 0.05 * o[4].sum()  # noqa: E731
    got = torch.autograd.grad(obj([out.loss, out.z_loss, None, out.logprob, out.entropy]), (x, w, b))
    want = torch.autograd.grad(obj([loss, zl, None, lp, ent]), (x, w, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-11, atol=1e-13)
    z = F.linear(x, w, b)
    z = 4.0 * torch.tanh(z / 4.0) / 0.9
    assert torch.equal(out.argmax, z.argmax(1))
    kept = t != -100
    assert out.accuracy == pytest.approx((z.argmax(1)[kept] == t[kept]).double().mean().item())


@pytest.mark.parametrize("opts", [OPTIONS[1], OPTIONS[4]])
def test_gradcheck(opts):
    x, w, b, t, cw = case(n=6, h=3, v=5)
    ours_kw, _ = split(opts, cw)

    def fn(x, w, b):
        out = fused_linear_cross_entropy_full(x, w, t, bias=b, reduction="none", chunk_size=2,
                                              outputs=("logprob", "entropy"), **ours_kw)
        return out.loss, out.z_loss, out.logprob, out.entropy

    assert torch.autograd.gradcheck(fn, (x, w, b))


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradgradcheck(opts, reduction):
    # issue 10: the backward is differentiable again. gradgradcheck draws random
    # upstream gradients (for "none": a random weight per row) and differentiates
    # the backward with respect to them and to hidden, weight and bias.
    x, w, b, t, cw = case(n=5, h=3, v=4)
    ours_kw, _ = split(opts, cw)
    fn = lambda x, w, b: fused_linear_cross_entropy(  # noqa: E731
        x, w, t, bias=b, reduction=reduction, chunk_size=2, **ours_kw)
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_gradgradcheck_of_every_output():
    x, w, b, t, cw = case(n=5, h=3, v=4, seed=2)

    def fn(x, w, b):
        out = fused_linear_cross_entropy_full(
            x, w, t, bias=b, class_weight=cw, reduction="none", z_loss=0.1, softcap=2.5,
            temperature=1.2, label_smoothing=0.1, outputs=("lse", "logprob", "entropy"),
            chunk_size=3)
        return out.loss, out.z_loss, out.lse, out.logprob, out.entropy

    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_gradgradcheck_of_the_module():
    head = LinearCrossEntropyLoss(3, 4, bias=True, z_loss=0.05, softcap=3.0, label_smoothing=0.1,
                                  reduction="none", chunk_size=2, dtype=torch.float64)
    x, w, b, t, _ = case(n=5, h=3, v=4, seed=3)

    def fn(x, w, b):
        return torch.func.functional_call(head, {"weight": w, "bias": b}, (x, t))

    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[4]])
def test_gradient_penalty_and_hessian_vector_product_equal_torch(opts):
    x, w, b, t, cw = case(seed=4)
    ours_kw, ref_kw = split(opts, cw)
    ours = lambda x, w, b: fused_linear_cross_entropy(  # noqa: E731
        x, w, t, bias=b, chunk_size=4, **ours_kw)
    ref = lambda x, w, b: reference(x, w, b, t, **ref_kw)[0]  # noqa: E731
    got, want = [], []
    for fn, into in ((ours, got), (ref, want)):
        loss = fn(x, w, b)
        gx, gw = torch.autograd.grad(loss, (x, w), create_graph=True)
        into.extend(torch.autograd.grad(loss + 10 * (gx**2).sum() + (gw**2).sum(), (x, w, b)))
        vecs = tuple(torch.linspace(-1, 1, a.numel(), dtype=a.dtype).reshape(a.shape) for a in (x, w, b))
        into.extend(torch.autograd.functional.hvp(fn, (x, w, b), vecs)[1])
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_ordinary_backward_stays_on_the_fused_pass(monkeypatch):
    # only create_graph=True takes the torch-ops backward
    calls = []
    real = _torch_linear._torch_grads
    monkeypatch.setattr(_torch_linear, "_torch_grads", lambda *a: (calls.append(1), real(*a))[1])
    x, w, b, t, _ = case(n=6, h=3, v=5)
    for reduction in ("mean", "none"):
        loss = fused_linear_cross_entropy(x, w, t, bias=b, reduction=reduction)
        torch.autograd.grad(loss.sum(), (x, w, b))
    assert calls == []
    (gx,) = torch.autograd.grad(fused_linear_cross_entropy(x, w, t, bias=b), x, create_graph=True)
    assert calls == [1] and gx.grad_fn is not None


def test_lse_is_differentiable():
    x, w, b, t, _ = case(seed=5)
    out = fused_linear_cross_entropy_full(x, w, t, bias=b, softcap=3.0, outputs=("lse",))
    up = torch.linspace(-1, 1, t.numel(), dtype=x.dtype)
    got = torch.autograd.grad((up * out.lse).sum(), (x, w, b))
    want = torch.autograd.grad((up * reference(x, w, b, t, softcap=3.0)[2]).sum(), (x, w, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-11, atol=1e-13)


def test_vocab_parallel_path_refuses_a_double_backward():
    # one process, no torch.distributed: the communicator path itself (a _Parallel)
    from softmaxkit._linear_ce import _Local

    class Comm(_Local):
        def sum_inplace(self, a):
            return a

    x, w, b, t, _ = case(n=4, h=2, v=3)
    par = _torch_linear._Parallel(Comm(), 0, 3, 3, False)
    o = _torch_linear._opts(-100, 0.0, "mean", 0.0, None, 1.0, (), None)
    loss = _torch_linear._apply(x, w, t, b, None, o, par).loss
    torch.testing.assert_close(loss, reference(x, w, b, t)[0], rtol=1e-12, atol=0)
    with pytest.raises(RuntimeError, match="has no double backward"):
        torch.autograd.grad(loss, (x,), create_graph=True)


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh())
        self.head = LinearCrossEntropyLoss(8, 11, bias=True, z_loss=1e-3, label_smoothing=0.1)

    def forward(self, x, y):
        h = self.body(x)
        return (self.head(h, y)
                + 0.1 * fused_linear_cross_entropy(h, self.head.weight, y, reduction="none",
                                                   softcap=3.0).mean()
                + 0.2 * linear_cross_entropy(h, self.head.weight, y, linear_bias=self.head.bias,
                                             label_smoothing=0.05))


def test_fullgraph_compile_of_the_module(monkeypatch, caplog):
    calls = []
    real = _torch_linear._linear_ce._pass
    monkeypatch.setattr(_torch_linear._linear_ce, "_pass", lambda *a: (calls.append(1), real(*a))[1])
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Model()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    gen = torch.Generator().manual_seed(1)
    for n in (10, 7):  # a second batch size: the fake implementations take symbolic shapes
        x, y = torch.randn(n, 6, generator=gen), torch.randint(0, 11, (n,), generator=gen)
        y[0] = -100
        with warnings.catch_warnings(record=True) as record, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            loss = compiled(x, y)
        assert [str(w.message) for w in record] == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        ref = model(x, y)
        ref.backward()
        torch.testing.assert_close(loss, ref)
        for g, p in zip(grads, model.parameters()):
            torch.testing.assert_close(g, p.grad)
        model.zero_grad()
    assert not torch._dynamo.utils.counters["graph_break"]
    assert calls  # our pass ran, not a torch fallback


def test_float32_within_tolerance_and_half_dtypes():
    x, w, b, t, _ = case(n=40, h=16, v=50, dtype=torch.float32)
    loss = fused_linear_cross_entropy(x, w, t, bias=b, z_loss=1e-3, softcap=5.0)
    gx, gw = torch.autograd.grad(loss, (x, w))
    x64, w64, b64 = (a.detach().double().requires_grad_(True) for a in (x, w, b))
    ref = reference(x64, w64, b64, t, z_loss=1e-3, softcap=5.0)[0]
    rx, rw = torch.autograd.grad(ref, (x64, w64))
    assert loss.dtype == torch.float32 and gx.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(gx.double(), rx, rtol=0, atol=1e-5 * rx.abs().max().item())
    torch.testing.assert_close(gw.double(), rw, rtol=0, atol=1e-5 * rw.abs().max().item())
    xb, wb = x.detach().bfloat16().requires_grad_(True), w.detach().bfloat16().requires_grad_(True)
    lb = fused_linear_cross_entropy(xb, wb, t)
    lb.backward()
    assert lb.dtype == torch.bfloat16 and xb.grad.dtype == torch.bfloat16 and wb.grad.dtype == torch.bfloat16


def test_frozen_weight_and_no_grad():
    x, w, b, t, _ = case()
    w.requires_grad_(False)
    loss = fused_linear_cross_entropy(x, w, t, bias=b)
    loss.backward()
    assert w.grad is None and x.grad is not None and b.grad is not None
    with torch.no_grad():
        assert not fused_linear_cross_entropy(x, w, t).requires_grad


def test_negative_bit_views_are_resolved():
    x, w, b, t, _ = case()
    neg_view = getattr(torch, "_neg_view", None)
    if neg_view is None:
        pytest.skip("torch._neg_view is not available")
    xn = neg_view(x.detach())
    assert xn.is_neg()
    want = F.cross_entropy(F.linear(-x.detach(), w.detach()), t)
    torch.testing.assert_close(fused_linear_cross_entropy(xn, w.detach(), t), want, rtol=1e-12, atol=0)


def test_module_equals_functional_and_trains():
    torch.manual_seed(0)
    head = LinearCrossEntropyLoss(4, 9, bias=True, z_loss=1e-3, label_smoothing=0.1,
                                  dtype=torch.float64)
    assert [n for n, _ in head.named_parameters()] == ["weight", "bias"]
    assert "z_loss=0.001" in repr(head)
    x, _, _, t, _ = case()
    loss = head(x, t)
    want = fused_linear_cross_entropy(x, head.weight, t, bias=head.bias, z_loss=1e-3,
                                      label_smoothing=0.1)
    torch.testing.assert_close(loss, want, rtol=0, atol=0)
    full = head.full(x, t, outputs=("entropy",))
    torch.testing.assert_close(full.loss, loss, rtol=0, atol=0)
    assert full.entropy.shape == (t.numel(),) and full.lse is None
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = head(x.detach(), t)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.7 * first


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(z_loss=-1.0), ValueError, "z_loss must be"),
        (dict(softcap=0.0), ValueError, "softcap must be"),
        (dict(reduction="avg"), ValueError, "reduction must be one of"),
        (dict(outputs=("probs",)), ValueError, "outputs must be names from"),
    ],
)
def test_bad_options(kwargs, exc, match):
    x, w, b, t, _ = case()
    with pytest.raises(exc, match=match):
        fused_linear_cross_entropy_full(x, w, t, **kwargs)


def test_bad_tensors():
    x, w, b, t, cw = case()
    with pytest.raises(ValueError, match="hidden is on meta"):
        fused_linear_cross_entropy(torch.empty(3, 4, device="meta"), w, t[:3])
    with pytest.raises(ValueError, match="class_weight must not require grad"):
        fused_linear_cross_entropy(x, w, t, class_weight=cw.requires_grad_(True))
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        fused_linear_cross_entropy(x, w.detach().numpy(), t)
    with pytest.raises(ValueError, match=r"target\[1\] = 9 is not a class index"):
        fused_linear_cross_entropy(x, w, torch.tensor([0, 9] + [1] * 11))
    with pytest.raises(ValueError, match="z_loss must be"):
        LinearCrossEntropyLoss(3, 4, z_loss=-1)


def test_doc_examples():
    result = doctest.testmod(_torch_linear, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 9 and result.failed == 0


def test_opcheck_of_the_custom_operators():
    # schema, fake implementation and registered autograd, as torch.library checks them
    x, w, b, t, cw = case(n=6, h=3, v=5)
    base = (x, w, b, t, cw, -100, 0.1, "mean", 0.05, 3.0, 0.8)
    torch.library.opcheck(torch.ops.softmaxkit.linear_cross_entropy.default,
                          base + ("logprob,entropy", 4, [False, False, False]))
    torch.library.opcheck(torch.ops.softmaxkit.linear_cross_entropy.default,
                          base + ("", None, [True, True, True]))
    g = torch.ones((), dtype=x.dtype)
    rows = torch.linspace(-1, 1, 6, dtype=x.dtype)
    empty = x.new_empty(0)
    torch.library.opcheck(torch.ops.softmaxkit.linear_cross_entropy_backward.default,
                          (g, None, rows, rows, None, x.detach(), w.detach(), b.detach(), t, cw,
                           torch.tensor(3.0, dtype=torch.float64), empty, empty, empty, -100,
                           0.1, "mean", 0.05, 3.0, 0.8, 4, [True, True, True], False))
