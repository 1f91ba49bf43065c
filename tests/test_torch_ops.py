"""softmaxkit.torch's functions and modules: derivatives of every order (gradcheck and
gradgradcheck in float64, random upstream gradients for reduction="none"), torch's
semantics at the edges (negative class weights, 0-d inputs, negated views), the
custom ops' registrations (torch.library.opcheck) and the routing to torch."""
import itertools

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
smt = pytest.importorskip("softmaxkit.torch")

from softmaxkit.torch import _ops  # noqa: E402

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def ce_inputs(g, shape, soft, dtype=F64):
    """Logits (requiring grad) and a target: class indices with ignored entries, or
    class probabilities."""
    c = shape[1] if len(shape) > 1 else shape[0]
    x = (2 * torch.randn(shape, generator=g, dtype=dtype)).requires_grad_(True)
    if soft:
        t = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), dim=1 if len(shape) > 1 else 0)
    else:
        t = torch.randint(0, c, shape[:1] + shape[2:] if len(shape) > 1 else (), generator=g)
        if t.dim():
            t.view(-1)[1::3] = -100
    return x, t


# Every function and module, as (name, ours, torch's, inputs(generator)) with inputs
# giving (differentiable input, other args, kwargs).
def _cases():
    cases = []
    for shape, soft, weighted, eps, reduction in itertools.product(
            [(5,), (6, 4), (3, 4, 2)], [False, True], [None, "pos", "neg"], [0.0, 0.2],
            ["mean", "sum", "none"]):
        def make(g, shape=shape, soft=soft, weighted=weighted, eps=eps, reduction=reduction):
            x, t = ce_inputs(g, shape, soft)
            c = x.shape[1] if x.dim() > 1 else x.shape[0]
            w = None
            if weighted:
                w = torch.rand(c, generator=g, dtype=F64) + 0.5
                if weighted == "neg":
                    w[0] = -0.7  # torch accepts negative class weights
            return x, (t,), dict(weight=w, label_smoothing=eps, reduction=reduction)
        cases.append((f"cross_entropy-{shape}-{soft}-{weighted}-{eps}-{reduction}",
                      smt.cross_entropy, F.cross_entropy, make))
    for shape, weighted, reduction in itertools.product([(5,), (6, 4), (3, 4, 2)], [None, "neg"],
                                                        ["mean", "sum", "none"]):
        def make(g, shape=shape, weighted=weighted, reduction=reduction):
            x, t = ce_inputs(g, shape, False)
            x = torch.log_softmax(x.detach(), 1 if x.dim() > 1 else 0).requires_grad_(True)
            c = x.shape[1] if x.dim() > 1 else x.shape[0]
            w = torch.rand(c, generator=g, dtype=F64) - 0.3 if weighted else None
            return x, (t,), dict(weight=w, reduction=reduction)
        cases.append((f"nll_loss-{shape}-{weighted}-{reduction}", smt.nll_loss, F.nll_loss, make))
    for shape, weighted, reduction in itertools.product([(), (7,), (4, 3)], [False, True],
                                                        ["mean", "sum", "none"]):
        def make(g, shape=shape, weighted=weighted, reduction=reduction):
            x = (3 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True)
            y = torch.rand(shape, generator=g, dtype=F64)
            kw = dict(reduction=reduction)
            if weighted:  # broadcast weights, some negative
                wshape = shape[-1:] if shape else ()
                kw["weight"] = torch.randn(wshape, generator=g, dtype=F64)
                kw["pos_weight"] = torch.rand(wshape, generator=g, dtype=F64) * 3
            return x, (y,), kw
        cases.append((f"bce_with_logits-{shape}-{weighted}-{reduction}",
                      smt.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, make))
    for log_target, reduction in itertools.product([False, True], ["mean", "sum", "none", "batchmean"]):
        def make(g, log_target=log_target, reduction=reduction):
            x = torch.log_softmax(torch.randn(5, 4, generator=g, dtype=F64), 1).requires_grad_(True)
            p = torch.softmax(torch.randn(5, 4, generator=g, dtype=F64), 1)
            if not log_target:
                p[0, 1] = 0.0  # 0 log 0
            return x, (p.log() if log_target else p,), dict(reduction=reduction, log_target=log_target)
        cases.append((f"kl_div-{log_target}-{reduction}", smt.kl_div, F.kl_div, make))
    for fn, ref in [(smt.softmax, F.softmax), (smt.log_softmax, F.log_softmax)]:
        for shape, dim in [((5,), 0), ((4, 6), 1), ((4, 6), 0), ((2, 3, 4), -2)]:
            def make(g, shape=shape, dim=dim):
                return (3 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True), (), dict(dim=dim)
            cases.append((f"{fn.__name__}-{shape}-{dim}", fn, ref, make))
    return cases


CASES = _cases()
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


@pytest.mark.parametrize("name, ours, theirs, make", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_of_every_order_match_torch(name, ours, theirs, make):
    """Value, gradient (with a random upstream gradient), and the second derivative
    through a gradient penalty, against torch's function on the same inputs."""
    g = gen(hash(name) % 2**31)
    x, args, kw = make(g)
    out, ref = ours(x, *args, **kw), theirs(x, *args, **kw)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-13)
    w = torch.randn(ref.shape, generator=g, dtype=F64)  # loss.backward(w), any w
    (g1,) = torch.autograd.grad(out, x, w, create_graph=True)
    (r1,) = torch.autograd.grad(ref, x, w, create_graph=True)
    torch.testing.assert_close(g1, r1, rtol=1e-12, atol=1e-13)
    # the backward is itself differentiable (nll_loss's and kl_div's gradients do not
    # depend on the input: their second derivative is 0)
    assert g1.requires_grad or name.startswith(("nll_loss", "kl_div"))
    v = torch.randn(x.shape, generator=g, dtype=F64)

    def second(g1):
        if not g1.requires_grad:
            return torch.zeros_like(x)
        (g2,) = torch.autograd.grad((g1 * v).sum() + (g1 ** 2).sum(), x, allow_unused=True)
        return torch.zeros_like(x) if g2 is None else g2

    g2, r2 = second(g1), second(r1)
    torch.testing.assert_close(g2, r2, rtol=1e-10, atol=1e-12)


# gradcheck/gradgradcheck are slower: a representative subset of the cases above
# (gradgradcheck draws random upstream gradients for every output, "none" included).
GRADCHECK = [c for c in CASES if c[0].startswith(("softmax", "log_softmax", "kl_div", "nll_loss-(6, 4)"))
             or c[0] in {
                 "cross_entropy-(6, 4)-False-neg-0.2-none", "cross_entropy-(6, 4)-True-pos-0.2-mean",
                 "cross_entropy-(3, 4, 2)-False-pos-0.0-none", "cross_entropy-(5,)-False-None-0.2-sum",
                 "cross_entropy-(3, 4, 2)-True-None-0.0-none",
                 "bce_with_logits-(4, 3)-True-none", "bce_with_logits-()-True-mean",
                 "bce_with_logits-(7,)-False-sum"}]


@pytest.mark.parametrize("name, ours, theirs, make", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_gradcheck_and_gradgradcheck(name, ours, theirs, make):
    x, args, kw = make(gen(7))
    fn = lambda x: ours(x, *args, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("module, kwargs, make_target", [
    (smt.CrossEntropyLoss, dict(weight=torch.tensor([0.5, -1.0, 2.0, 1.0], dtype=F64),
                                label_smoothing=0.1, reduction="none"),
     lambda g: torch.tensor([0, 1, -100, 3, 2])),
    (smt.CrossEntropyLoss, dict(ignore_index=1), lambda g: torch.tensor([0, 1, 2, 3, 2])),
    (smt.NLLLoss, dict(weight=torch.tensor([0.5, 1.0, 2.0, 1.0], dtype=F64), reduction="none"),
     lambda g: torch.tensor([0, 1, 2, 3, 2])),
    (smt.BCEWithLogitsLoss, dict(pos_weight=torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64), reduction="none"),
     lambda g: torch.rand(5, 4, generator=g, dtype=F64)),
    (smt.KLDivLoss, dict(reduction="batchmean"),
     lambda g: torch.softmax(torch.randn(5, 4, generator=g, dtype=F64), 1)),
])
def test_modules_gradgradcheck_and_match_torch(module, kwargs, make_target):
    g = gen(11)
    x = torch.randn(5, 4, generator=g, dtype=F64, requires_grad=True)
    if module is smt.NLLLoss or module is smt.KLDivLoss:
        x = torch.log_softmax(x.detach(), 1).requires_grad_(True)
    t = make_target(g)
    ours, ref = module(**kwargs), getattr(torch.nn, module.__name__)(**kwargs)
    assert isinstance(ours, type(ref))
    assert ours.state_dict().keys() == ref.state_dict().keys()
    torch.testing.assert_close(ours(x, t), ref(x, t), rtol=1e-12, atol=1e-13)
    assert torch.autograd.gradcheck(lambda x: ours(x, t), (x,))
    assert torch.autograd.gradgradcheck(lambda x: ours(x, t), (x,))


def test_gradient_penalty_from_the_issue():
    """Issue 10's example: with create_graph=True the old backward had no grad_fn and
    the penalty's gradient was -0.245 where torch's is -0.279."""
    def penalised_grad(ce):
        z = torch.tensor([[1.0, -0.5, 2.0], [0.3, 0.2, -1.0]], dtype=F64, requires_grad=True)
        t = torch.tensor([2, 0])
        loss = ce(z, t)
        (g,) = torch.autograd.grad(loss, z, create_graph=True)
        assert g.grad_fn is not None
        (loss + 10 * (g ** 2).sum()).backward()
        return z.grad

    torch.testing.assert_close(penalised_grad(smt.cross_entropy), penalised_grad(F.cross_entropy),
                               rtol=1e-13, atol=1e-14)


def test_hessian_vector_product_and_third_derivative():
    g = gen(3)
    x = torch.randn(4, 5, generator=g, dtype=F64, requires_grad=True)
    t = torch.tensor([1, 0, 4, 2])
    v = torch.randn(4, 5, generator=g, dtype=F64)
    fn = lambda x: smt.cross_entropy(x, t, label_smoothing=0.1)  # noqa: E731
    ref = lambda x: F.cross_entropy(x, t, label_smoothing=0.1)  # noqa: E731
    _, hvp = torch.autograd.functional.hvp(fn, x, v)
    _, hvp_ref = torch.autograd.functional.hvp(ref, x, v)
    torch.testing.assert_close(hvp, hvp_ref, rtol=1e-12, atol=1e-14)
    # a third derivative goes through the double backward's torch ops
    assert torch.autograd.gradgradcheck(
        lambda x: torch.autograd.grad(fn(x), x, create_graph=True)[0], (x,))


def test_all_ignored_mean_is_nan_with_zero_gradients_of_both_orders():
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    t = torch.full((3,), -100)
    loss = smt.cross_entropy(x, t)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(x, t))
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    assert not g.any()
    (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True)
    assert h is None or not h.any()


def test_zero_dim_input_with_zero_dim_weight_keeps_shape():
    x = torch.tensor(0.3, dtype=F64, requires_grad=True)
    y, w, pw = torch.tensor(1.0, dtype=F64), torch.tensor(2.0, dtype=F64), torch.tensor(3.0, dtype=F64)
    for reduction in ["none", "mean", "sum"]:
        ours = smt.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw)
        ref = F.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw)
        assert ours.shape == ref.shape == ()
        torch.testing.assert_close(ours, ref)
        (g,) = torch.autograd.grad(ours, x)
        assert g.shape == ()


def test_negated_views_are_resolved():
    """A tensor with the negative bit set (a lazily negated view) works as torch's."""
    base = torch.randn(4, 3, dtype=F64)
    x = base._neg_view()
    assert x.is_neg()
    t = torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(smt.cross_entropy(x, t), F.cross_entropy(x, t))
    torch.testing.assert_close(smt.softmax(x, 1), F.softmax(x, 1))
    q = torch.softmax(base, 1)._neg_view().neg()  # a target with the bit set too
    torch.testing.assert_close(smt.cross_entropy(base, q), F.cross_entropy(base, q))


def test_bad_label_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match=r"target\[1\] = 3"):
        smt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="target"):
        smt.nll_loss(torch.randn(2, 3), torch.tensor([-1, 0]))


def test_legacy_arguments_and_implicit_softmax_dim_warn_as_torch():
    x = torch.randn(5, 3, dtype=F64)
    t = torch.tensor([0, 1, 2, 1, 0])
    with pytest.warns(UserWarning):
        ours = smt.nll_loss(x, t, size_average=False)
    torch.testing.assert_close(ours, F.nll_loss(x, t, reduction="sum"))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        ours = smt.softmax(x)
    torch.testing.assert_close(ours, F.softmax(x, 1))
    with pytest.warns(UserWarning, match="'mean' divides"):
        smt.kl_div(x, x.exp())


class Counter:
    """Counts calls of one of _ops's kernel-seam functions while passing them through."""

    def __init__(self, monkeypatch, name):
        self.calls = 0
        real = getattr(_ops, name)

        def spy(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(_ops, name, spy)


def test_kernels_on_cpu_floats_and_torch_elsewhere(monkeypatch):
    ce = Counter(monkeypatch, "_np_ce_rows")
    sm = Counter(monkeypatch, "_np_softmax")
    x = torch.randn(6, 5, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3, 4, 0])
    smt.cross_entropy(x, t).backward()
    assert ce.calls == 2  # the forward op and the backward op
    with torch.no_grad():
        smt.cross_entropy(x, t)
    assert ce.calls == 3  # no backward under no_grad
    smt.softmax(x, 1)
    assert sm.calls == 1
    # bfloat16 runs the 16-bit kernel (tests/test_bf16_api.py)
    xb = x.detach().bfloat16().requires_grad_(True)
    torch.testing.assert_close(smt.cross_entropy(xb, t), F.cross_entropy(xb, t))
    assert ce.calls == 4
    # passed to torch (and still right): a meta-device tensor (standing in
    # for CUDA/MPS), a target or class weight that requires grad, a weight of another
    # dtype, a uint8 target, an unknown reduction, a label_smoothing out of [0, 1]
    assert smt.cross_entropy(x.to("meta"), t.to("meta")).device.type == "meta"
    assert smt.softmax(x.to("meta"), 1).device.type == "meta"
    q = torch.softmax(torch.randn(6, 5), 1).requires_grad_(True)
    smt.cross_entropy(x, q).backward()
    assert q.grad is not None
    w = torch.ones(5, requires_grad=True)  # torch's own error: not differentiable in weight
    with pytest.raises(RuntimeError, match="weight"):
        smt.cross_entropy(x, t, weight=w).backward()
    with pytest.raises(RuntimeError, match="scalar type"):  # torch's own error
        smt.cross_entropy(x, t, weight=torch.ones(5, dtype=F64))
    torch.testing.assert_close(smt.cross_entropy(x, t.byte()), F.cross_entropy(x, t.byte()))
    with pytest.raises(ValueError, match="reduction"):
        smt.cross_entropy(x, t, reduction="avg")
    with pytest.raises(IndexError):
        smt.softmax(x, 2)
    with pytest.raises(RuntimeError, match="label_smoothing"):
        smt.cross_entropy(x, t, label_smoothing=2.0)
    assert (ce.calls, sm.calls) == (4, 1)


def test_no_copy_of_contiguous_input(monkeypatch):
    """The kernel reads the tensor's own memory."""
    seen = []
    real = _ops._np_ce_rows

    def spy(x, *args, **kwargs):
        seen.append(x)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(_ops, "_np_ce_rows", spy)
    x = torch.randn(8, 5)
    smt.cross_entropy(x, torch.zeros(8, dtype=torch.int64))
    assert seen[0].ctypes.data == x.data_ptr()


OPCHECK = {
    "cross_entropy_rows": lambda g: (torch.randn(5, 4, generator=g, dtype=F64, requires_grad=True),
                                     torch.tensor([0, 3, -100, 1, 2]), torch.rand(4, dtype=F64), -100, 0.1),
    "cross_entropy_rows_backward": lambda g: (
        torch.rand(5, dtype=F64, requires_grad=True), torch.randn(5, 4, generator=g, dtype=F64, requires_grad=True),
        torch.softmax(torch.randn(5, 4, generator=g, dtype=F64), 1), None, -100, 0.0),
    "nll_loss_rows": lambda g: (torch.randn(5, 4, generator=g, requires_grad=True), torch.tensor([0, 3, -100, 1, 2]),
                                None, -100),
    "bce_with_logits": lambda g: (torch.randn(5, 4, generator=g, requires_grad=True), torch.rand(5, 4, generator=g),
                                  torch.rand(4, generator=g), None),
    "kl_div_pointwise": lambda g: (torch.randn(5, 4, generator=g, requires_grad=True), torch.rand(5, 4, generator=g),
                                   False),
    "softmax": lambda g: (torch.randn(5, 4, generator=g, requires_grad=True), 0),
    "log_softmax": lambda g: (torch.randn(3, 5, 4, generator=g, requires_grad=True), 1),
}


@pytest.mark.parametrize("name", sorted(OPCHECK))
def test_custom_op_registrations(name):
    """torch.library.opcheck: schema, fake (meta) implementation, autograd registration
    and AOT dispatch agree with the real op."""
    torch.library.opcheck(getattr(torch.ops.softmaxkit, name).default, OPCHECK[name](gen(5)))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's own
def test_torch_func_transforms_go_to_torch(monkeypatch):
    """torch.func (grad, hessian, vmap) has no rules for custom ops: inside a transform
    the call is torch's, and right."""
    ce = Counter(monkeypatch, "_np_ce_rows")
    x = torch.randn(4, 3, dtype=F64)
    t = torch.tensor([0, 2, 1, 1])
    h = torch.func.hessian(lambda x: smt.cross_entropy(x, t))(x)
    torch.testing.assert_close(h, torch.func.hessian(lambda x: F.cross_entropy(x, t))(x))
    torch.testing.assert_close(torch.vmap(lambda r: smt.softmax(r, 0))(x), F.softmax(x, 1))
    assert ce.calls == 0
    smt.cross_entropy(x, t)
    assert ce.calls == 1


def test_bce_with_logits_at_infinities_and_nan():
    """A NaN logit is NaN whatever the weights (torch's result); an infinite logit with
    the matching label costs 0 (torch: NaN, a documented difference)."""
    x = torch.tensor([float("nan"), float("nan"), float("inf"), -float("inf")], dtype=F64)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64)
    ours = smt.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=torch.zeros(4, dtype=F64))
    ref = F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=torch.zeros(4, dtype=F64))
    assert torch.isnan(ours[:2]).all() and torch.isnan(ref[:2]).all()
    assert ours[2:].tolist() == [0.0, 0.0]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 6), c=st.integers(1, 5), extra=st.sampled_from([(), (2,), (1, 3)]),
       soft=st.booleans(), weighted=st.sampled_from([None, "pos", "mixed"]),
       eps=st.sampled_from([0.0, 0.1, 1.0]), reduction=st.sampled_from(["mean", "sum", "none"]),
       f32=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis_cross_entropy_value_and_gradients(n, c, extra, soft, weighted, eps, reduction, f32, seed):
    """Random shapes (empty batches included), targets, class weights of any sign,
    smoothing and reductions: value and gradient (random upstream) equal torch's."""
    dtype = torch.float32 if f32 else F64
    g = gen(seed)
    x = (4 * torch.randn((n, c) + extra, generator=g, dtype=dtype)).requires_grad_(True)
    if soft:
        t = torch.softmax(torch.randn((n, c) + extra, generator=g, dtype=dtype), 1)
    else:
        t = torch.randint(0, c, (n,) + extra, generator=g)
        t.view(-1)[::4] = -100
    w = None
    if weighted:
        w = torch.rand(c, generator=g, dtype=dtype) + 0.1
        if weighted == "mixed":
            w = w - 0.6
    kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
    ours, ref = smt.cross_entropy(x, t, **kw), F.cross_entropy(x, t, **kw)
    tol = dict(rtol=1e-4, atol=1e-5) if f32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours, ref, equal_nan=True, **tol)
    up = torch.randn(ref.shape, generator=g, dtype=dtype)
    (g1,) = torch.autograd.grad(ours, x, up)
    (r1,) = torch.autograd.grad(ref, x, up)
    torch.testing.assert_close(g1, r1, equal_nan=True, **tol)
