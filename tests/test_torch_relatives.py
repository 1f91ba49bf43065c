"""softmaxkit.torch's relatives of softmax (issue 12): softplus, logsigmoid,
multi_margin_loss, sigmoid_focal_loss, gumbel_softmax, focal_loss,
poly1_cross_entropy, sparsemax, entmax15, entmax_bisect and the modules Softplus,
LogSigmoid, MultiMarginLoss.

Values and gradients (random upstream gradients, and second derivatives through a
gradient penalty) against torch's functions on random inputs; sigmoid_focal_loss
against torchvision 0.28's formula transcribed below (the PyPI torchvision wheel is
built against CUDA torch and does not import with the CPU torch of this venv);
sparsemax/entmax against the ``entmax`` package; gradcheck and gradgradcheck in
float64; the custom ops' registrations (opcheck); torch.compile(fullgraph=True); the
routing (which path ran) and the fall-through paths."""
import itertools

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
smt = pytest.importorskip("softmaxkit.torch")

from softmaxkit.torch import _ops  # noqa: E402
from softmaxkit.torch import _relatives as rel  # noqa: E402
from losses_reference import torchvision_sigmoid_focal_loss  # noqa: E402

F64 = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ references


def _ce_terms(x, t, ignore_index):
    """(p_y, log p_y, live) from plain torch ops, classes in dimension 1."""
    lsm = torch.log_softmax(x, 1 if x.dim() > 1 else 0)
    live = t != ignore_index
    safe = torch.where(live, t, 0)
    lp = lsm.gather(1, safe.unsqueeze(1)).squeeze(1) if x.dim() > 1 else lsm[safe]
    return lp.exp(), lp, live


def _reduce_ref(loss, live, reduction):
    loss = torch.where(live, loss, 0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / live.sum()


def focal_ref(x, t, gamma=2.0, ignore_index=-100, reduction="mean"):
    """Lin et al.'s formula written plainly: -(1 - p_y)^gamma log p_y."""
    p, lp, live = _ce_terms(x, t, ignore_index)
    return _reduce_ref(-(1 - p) ** gamma * lp, live, reduction)


def poly1_ref(x, t, epsilon=1.0, ignore_index=-100, reduction="mean"):
    """Leng et al.'s poly-1: cross_entropy(reduction='none') + epsilon (1 - p_y)."""
    p, _, live = _ce_terms(x, t, ignore_index)
    ce = F.cross_entropy(x, t, ignore_index=ignore_index, reduction="none")
    return _reduce_ref(ce + epsilon * (1 - p), live, reduction)


def multi_margin_ref(x, t, p=1, margin=1.0, weight=None, reduction="mean"):
    """torch's multi_margin_loss formula in plain torch ops (aten's own backward has no
    derivative: the second-order reference)."""
    x2, t2 = (x.unsqueeze(0), t.reshape(1)) if x.dim() == 1 else (x, t)
    h = margin - x2.gather(1, t2.unsqueeze(1)) + x2
    h = torch.where(torch.arange(x2.shape[1]) == t2.unsqueeze(1), 0, torch.clamp(h, min=0)) ** p
    loss = h.sum(1) / x2.shape[1]
    if weight is not None:
        loss = loss * weight[t2]
    loss = loss.reshape(t.shape)
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


entmax_pkg = pytest.importorskip("entmax")


def entmax_ref(x, alpha=1.5, dim=-1):
    if alpha == 2.0:
        return entmax_pkg.sparsemax(x, dim=dim)
    if alpha == 1.5:
        return entmax_pkg.entmax15(x, dim=dim)
    return entmax_pkg.entmax_bisect(x, alpha=alpha, dim=dim, n_iter=80)


# ------------------------------------------------------------------ the cases


def _labels(g, c, shape, ignore=True):
    t = torch.randint(0, c, shape, generator=g)
    if ignore and t.dim():
        t.view(-1)[1::3] = -100
    return t


def _cases():
    """(name, ours, reference, make(g) -> (x requiring grad, args, kwargs), tolerance)."""
    cases = []
    for shape, (beta, threshold) in itertools.product([(), (7,), (4, 5)], [(1.0, 20.0), (2.0, 3.0), (0.5, 1.0)]):
        def make(g, shape=shape, beta=beta, threshold=threshold):
            return (6 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True), (beta, threshold), {}
        cases.append((f"softplus-{shape}-{beta}-{threshold}", smt.softplus, F.softplus, make, 1e-12))
    for shape in [(), (9,), (3, 4)]:
        def make(g, shape=shape):
            return (6 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True), (), {}
        cases.append((f"logsigmoid-{shape}", smt.logsigmoid, F.logsigmoid, make, 1e-12))
    for shape, p, margin, weighted, reduction in itertools.product(
            [(5,), (6, 4)], [1, 2], [1.0, 0.3], [None, "neg"], ["mean", "sum", "none"]):
        def make(g, shape=shape, p=p, margin=margin, weighted=weighted, reduction=reduction):
            x = torch.randn(shape, generator=g, dtype=F64).requires_grad_(True)
            c = shape[-1]
            t = torch.randint(0, c, shape[:-1], generator=g)
            w = None
            if weighted:
                w = torch.rand(c, generator=g, dtype=F64) + 0.2
                w[0] = -0.6  # torch accepts negative class weights
            return x, (t,), dict(p=p, margin=margin, weight=w, reduction=reduction)
        cases.append((f"multi_margin_loss-{shape}-{p}-{margin}-{weighted}-{reduction}",
                      smt.multi_margin_loss, F.multi_margin_loss, make, 1e-12))
    for shape, alpha, gamma, soft, reduction in itertools.product(
            [(), (7,), (3, 4)], [0.25, -1, 1.0], [2.0, 0.5, 0.0], [False, True], ["none", "mean", "sum"]):
        def make(g, shape=shape, alpha=alpha, gamma=gamma, soft=soft, reduction=reduction):
            x = (4 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True)
            t = torch.rand(shape, generator=g, dtype=F64)
            if not soft:
                t = (t > 0.5).to(F64)
            return x, (t,), dict(alpha=alpha, gamma=gamma, reduction=reduction)
        cases.append((f"sigmoid_focal_loss-{shape}-{alpha}-{gamma}-{soft}-{reduction}",
                      smt.sigmoid_focal_loss, torchvision_sigmoid_focal_loss, make, 1e-11))
    for shape, opt, reduction in itertools.product([(5,), (6, 4), (3, 4, 2)], [0.0, 0.5, 2.0],
                                                   ["mean", "sum", "none"]):
        def make(g, shape=shape, opt=opt, reduction=reduction):
            x = (2 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True)
            c = shape[1] if len(shape) > 1 else shape[0]
            t = _labels(g, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
            return x, (t,), dict(gamma=opt, reduction=reduction)
        cases.append((f"focal_loss-{shape}-{opt}-{reduction}", smt.focal_loss, focal_ref, make, 1e-12))

        def make_poly(g, make=make):
            x, args, kw = make(g)
            return x, args, dict(epsilon=kw["gamma"] - 1.0, reduction=kw["reduction"])
        cases.append((f"poly1_cross_entropy-{shape}-{opt - 1.0}-{reduction}", smt.poly1_cross_entropy,
                      poly1_ref, make_poly, 1e-12))
    for alpha, (shape, dim) in itertools.product([1.5, 2.0, 1.25, 3.0], [((7,), 0), ((4, 6), 1), ((4, 6), 0),
                                                                         ((2, 3, 5), -2)]):
        def make(g, shape=shape, dim=dim, alpha=alpha):
            x = (2 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True)
            kw = dict(dim=dim) if alpha in (1.5, 2.0) else dict(alpha=alpha, dim=dim)
            return x, (), kw
        ours = {1.5: smt.entmax15, 2.0: smt.sparsemax}.get(alpha, smt.entmax_bisect)
        ref = (lambda x, dim, alpha=alpha: entmax_ref(x, alpha, dim)) if alpha in (1.5, 2.0) else \
            (lambda x, alpha, dim: entmax_ref(x, alpha, dim))
        cases.append((f"entmax-{alpha}-{shape}-{dim}", ours, ref, make, 1e-9 if alpha in (1.5, 2.0) else 1e-7))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name, ours, theirs, make, tol", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_the_reference(name, ours, theirs, make, tol):
    """Value, gradient with a random upstream gradient (reduction="none" included), and
    the second derivative through a gradient penalty, against the reference."""
    g = gen(sum(map(ord, name)))
    x, args, kw = make(g)
    out, ref = ours(x, *args, **kw), theirs(x, *args, **kw)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    w = torch.randn(ref.shape, generator=g, dtype=F64)
    (g1,) = torch.autograd.grad(out, x, w, create_graph=True)
    (r1,) = torch.autograd.grad(ref, x, w, create_graph=True)
    torch.testing.assert_close(g1, r1, rtol=tol, atol=tol)
    if name.startswith("entmax"):
        return  # the entmax package's backward is not differentiable again; gradgradcheck below
    v = torch.randn(x.shape, generator=g, dtype=F64)

    def second(g1):
        if not g1.requires_grad:  # multi_margin p=1: the gradient does not depend on x
            return torch.zeros_like(x)
        (g2,) = torch.autograd.grad((g1 * v).sum() + (g1 ** 2).sum(), x, allow_unused=True)
        return torch.zeros_like(x) if g2 is None else g2

    if name.startswith("multi_margin"):  # aten's multi_margin_loss_backward has no derivative
        (r1,) = torch.autograd.grad(multi_margin_ref(x, *args, **kw), x, w, create_graph=True)
    torch.testing.assert_close(second(g1), second(r1), rtol=100 * tol, atol=100 * tol)


SEAM = {"softplus": "_np_softplus", "logsigmoid": "_np_log_sigmoid", "multi_margin_loss": "_np_margin_rows",
        "sigmoid_focal_loss": "_np_sigmoid_focal", "focal_loss": "_np_ce_rows", "poly1_cross_entropy": "_np_ce_rows",
        "entmax": "_np_entmax"}


def test_every_case_ran_its_kernel_op(monkeypatch):
    """The comparisons above are not torch against torch: each case's float64 call
    goes through its softmaxkit seam function."""
    seen = []
    for seam in set(SEAM.values()):
        module = _ops if seam == "_np_ce_rows" else rel
        real = getattr(module, seam)
        monkeypatch.setattr(module, seam, lambda *a, _r=real, _s=seam, **k: (seen.append(_s), _r(*a, **k))[1])
    for name, ours, _, make, _ in CASES:
        seen.clear()
        x, args, kw = make(gen(1))
        ours(x, *args, **kw)
        assert seen == [SEAM[name.split("-")[0]]], name


# gradcheck/gradgradcheck (float64; random upstream gradients for every output)
GRADCHECK = [
    ("softplus", lambda x: smt.softplus(x, 2.0, 3.0), (3, 5)),
    ("logsigmoid", smt.logsigmoid, (3, 5)),
    ("multi_margin_loss-p2-none", lambda x: smt.multi_margin_loss(
        x, torch.tensor([0, 3, 1]), p=2, margin=0.7, weight=torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=F64),
        reduction="none"), (3, 4)),
    ("multi_margin_loss-p1-mean", lambda x: smt.multi_margin_loss(x, torch.tensor([0, 3, 1])), (3, 4)),
    ("sigmoid_focal_loss-none", lambda x: smt.sigmoid_focal_loss(
        x, torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.9]], dtype=F64), gamma=1.5), (2, 3)),
    ("sigmoid_focal_loss-gamma0.5-mean", lambda x: smt.sigmoid_focal_loss(
        x, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=F64), alpha=-1, gamma=0.5, reduction="mean"),
     (2, 3)),
    ("focal_loss-none", lambda x: smt.focal_loss(x, torch.tensor([[0, -100], [2, 1]]), gamma=0.5,
                                                 reduction="none"), (2, 3, 2)),
    ("focal_loss-mean", lambda x: smt.focal_loss(x, torch.tensor([0, 2, -100, 1])), (4, 3)),
    ("poly1_cross_entropy-none", lambda x: smt.poly1_cross_entropy(x, torch.tensor([0, 2, -100, 1]),
                                                                   epsilon=-0.5, reduction="none"), (4, 3)),
    ("sparsemax", lambda x: smt.sparsemax(x, dim=1), (3, 5)),
    ("entmax15", lambda x: smt.entmax15(x, dim=0), (5, 3)),
    ("entmax_bisect-1.3", lambda x: smt.entmax_bisect(x, 1.3), (3, 5)),
    ("entmax_bisect-1", lambda x: smt.entmax_bisect(x, 1.0), (3, 5)),
]


@pytest.mark.parametrize("name, fn, shape", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_gradcheck_and_gradgradcheck(name, fn, shape):
    g = gen(sum(map(ord, name)))
    x = (2 * torch.randn(shape, generator=g, dtype=F64)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,))
    out = fn(x)
    up = torch.randn(out.shape, generator=g, dtype=F64)
    assert torch.autograd.gradgradcheck(fn, (x,), grad_outputs=(up,))


OPCHECK = {
    "softplus": lambda g: (torch.randn(4, 5, generator=g, requires_grad=True), 2.0, 3.0),
    "log_sigmoid": lambda g: (torch.randn(4, 5, generator=g, dtype=F64, requires_grad=True),),
    "multi_margin_rows": lambda g: (torch.randn(4, 5, generator=g, requires_grad=True),
                                    torch.tensor([0, 4, 2, 2]), 2, 0.5),
    "sigmoid_focal_loss": lambda g: (torch.randn(4, 5, generator=g, requires_grad=True),
                                     torch.rand(4, 5, generator=g), 0.25, 2.0),
    "entmax": lambda g: (torch.randn(4, 5, generator=g, dtype=F64, requires_grad=True), 1.5, 0),
    # the backward kernel ops (no autograd of their own: create_graph takes torch ops)
    "softplus_backward": lambda g: (torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g), 2.0, 3.0),
    "log_sigmoid_backward": lambda g: (torch.randn(4, 5, generator=g, dtype=F64),
                                       torch.randn(4, 5, generator=g, dtype=F64)),
    "multi_margin_rows_backward": lambda g: (torch.randn(4, generator=g, dtype=F64), torch.randn(4, 5, generator=g),
                                             torch.tensor([0, 4, 2, 2]), 1, 0.5),
    "sigmoid_focal_loss_backward": lambda g: (torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g),
                                              torch.rand(4, 5, generator=g), 0.25, 1.5),
}


@pytest.mark.parametrize("name", sorted(OPCHECK))
def test_custom_op_registrations(name):
    """torch.library.opcheck: schema, fake implementation, autograd registration."""
    torch.library.opcheck(getattr(torch.ops.softmaxkit, name).default, OPCHECK[name](gen(5)))


# ------------------------------------------------------------------ float32, routing, fall-through


def test_float32_matches_torch():
    g = gen(3)
    x = (5 * torch.randn(64, 10, generator=g)).requires_grad_(True)
    t = torch.randint(0, 10, (64,), generator=g)
    tol = dict(rtol=2e-6, atol=2e-6)
    for ours, ref in [(smt.softplus(x), F.softplus(x)), (smt.logsigmoid(x), F.logsigmoid(x)),
                      (smt.multi_margin_loss(x, t, p=2), F.multi_margin_loss(x, t, p=2)),
                      (smt.sigmoid_focal_loss(x, (x > 0).float().detach()),
                       torchvision_sigmoid_focal_loss(x, (x > 0).float().detach())),
                      (smt.focal_loss(x, t), focal_ref(x, t)),
                      (smt.poly1_cross_entropy(x, t), poly1_ref(x, t)),
                      (smt.sparsemax(x), entmax_pkg.sparsemax(x))]:
        assert ours.dtype == ref.dtype == torch.float32
        torch.testing.assert_close(ours, ref, **tol)
        w = torch.randn(ref.shape, generator=g)
        torch.testing.assert_close(torch.autograd.grad(ours, x, w)[0], torch.autograd.grad(ref, x, w)[0], **tol)


def test_stable_where_torchvisions_formula_is_not():
    """float32 logit 20, target 1, gamma 0.5: 1 - p_t = sigmoid(-20) = e^-20, and the loss
    is about e^-20 sqrt(e^-20) = e^-30; torchvision's formula rounds sigmoid(20) to 1
    and gives 0. Large logits stay exact (BCE = |x| when (1 - p_t) = 1)."""
    x = torch.tensor([20.0, -200.0, 200.0])
    t = torch.tensor([1.0, 1.0, 0.0])
    ours = smt.sigmoid_focal_loss(x, t, alpha=-1, gamma=0.5)
    ref = torchvision_sigmoid_focal_loss(x, t, alpha=-1, gamma=0.5)
    exact = torchvision_sigmoid_focal_loss(x.double(), t.double(), alpha=-1, gamma=0.5)
    assert float(ref[0]) == 0.0
    torch.testing.assert_close(ours.double(), exact, rtol=1e-6, atol=0)
    torch.testing.assert_close(ours[1:], torch.tensor([200.0, 200.0]))
    z = torch.tensor([[0.0, 120.0]])  # exp(120) overflows float32
    torch.testing.assert_close(smt.focal_loss(z, torch.tensor([0])), torch.tensor(120.0))
    assert float(smt.poly1_cross_entropy(z, torch.tensor([0]))) == pytest.approx(121.0)


def _count(monkeypatch, seam):
    """Counts calls of a seam function (``_np_ce_rows`` is _ops's) while passing them through."""
    calls = []
    module = _ops if seam == "_np_ce_rows" else rel
    real = getattr(module, seam)
    monkeypatch.setattr(module, seam, lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    return calls


def test_fall_through_bfloat16_and_float16(monkeypatch):
    """16-bit tensors take torch's function (or the torch-ops composite), not the ops."""
    seams = {s: _count(monkeypatch, s) for s in ["_np_softplus", "_np_log_sigmoid", "_np_margin_rows",
                                                 "_np_sigmoid_focal", "_np_entmax", "_np_ce_rows"]}
    g = gen(4)
    x64 = 3 * torch.randn(6, 5, generator=g, dtype=F64)
    t = torch.tensor([0, 4, 2, -100, 1, 3])
    tm = torch.tensor([0, 4, 2, 0, 1, 3])
    for dt in (torch.bfloat16, torch.float16):
        x = x64.to(dt)
        torch.testing.assert_close(smt.softplus(x, 2.0), F.softplus(x, 2.0))
        torch.testing.assert_close(smt.logsigmoid(x), F.logsigmoid(x))
        with pytest.raises(NotImplementedError):  # torch has no 16-bit CPU kernel: its own error
            F.multi_margin_loss(x, tm)
        with pytest.raises(NotImplementedError):
            smt.multi_margin_loss(x, tm)
        tb = (x64 > 0).to(dt)
        torch.testing.assert_close(smt.sigmoid_focal_loss(x, tb), torchvision_sigmoid_focal_loss(x, tb))
        for ours, ref in [(smt.focal_loss(x, t), smt.focal_loss(x64, t)),
                          (smt.poly1_cross_entropy(x, t), smt.poly1_cross_entropy(x64, t)),
                          (smt.entmax15(x), smt.entmax15(x64)), (smt.sparsemax(x), smt.sparsemax(x64)),
                          (smt.entmax_bisect(x, 1.7), smt.entmax_bisect(x64, 1.7))]:
            assert ours.dtype == dt
            torch.testing.assert_close(ours.to(F64), ref, rtol=3e-2, atol=3e-2)
    n64 = {k: len(v) for k, v in seams.items()}
    assert n64 == {"_np_softplus": 0, "_np_log_sigmoid": 0, "_np_margin_rows": 0, "_np_sigmoid_focal": 0,
                   "_np_entmax": 6, "_np_ce_rows": 4}  # only the float64 references above


def test_composites_equal_the_ops():
    """The torch-ops composites (other devices and dtypes) equal the kernel ops in
    float64: values, gradients and the entmax bisection."""
    g = gen(6)
    x = (3 * torch.randn(8, 6, generator=g, dtype=F64)).requires_grad_(True)
    t = torch.tensor([0, 5, -100, 3, 3, 1, 2, 4])
    v = torch.randn(x.shape, generator=g, dtype=F64)
    for fn, opt in [(smt.focal_loss, dict(gamma=2.0)), (smt.focal_loss, dict(gamma=0.3)),
                    (smt.poly1_cross_entropy, dict(epsilon=-0.5))]:
        results = []
        for kernels in (True, False):
            with pytest.MonkeyPatch.context() as mp:
                if not kernels:
                    mp.setattr(rel, "_on_kernels", lambda *a: False)
                out = fn(x, t, reduction="none", **opt)
                w = torch.randn(8, generator=gen(1), dtype=F64)
                (g1,) = torch.autograd.grad(out, x, w, create_graph=True)
                (g2,) = torch.autograd.grad((g1 * v).sum(), x)
                results.append((out, g1, g2))
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
    for alpha in (1.5, 2.0, 1.2, 4.0):
        for dim in (0, 1):
            a = rel._entmax_op(x, alpha, dim)
            b = rel._EntmaxComposite.apply(x, alpha, dim)
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
            w = torch.randn(x.shape, generator=g, dtype=F64)
            torch.testing.assert_close(torch.autograd.grad(a, x, w)[0], torch.autograd.grad(b, x, w)[0],
                                       rtol=1e-9, atol=1e-11)
    xc = x.detach().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda z: rel._EntmaxComposite.apply(z, 1.5, 1), (xc,))


def test_sigmoid_focal_loss_composite_paths():
    """A target that requires grad, or gamma < 0 (torchvision accepts it), runs
    torchvision's formula in torch ops: the target gets its gradient."""
    g = gen(7)
    x = torch.randn(4, 3, generator=g, dtype=F64, requires_grad=True)
    t = torch.rand(4, 3, generator=g, dtype=F64, requires_grad=True)
    ours = smt.sigmoid_focal_loss(x, t, reduction="sum")
    ref = torchvision_sigmoid_focal_loss(x, t, reduction="sum")
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, t)[0], torch.autograd.grad(ref, t)[0])
    td = t.detach()
    torch.testing.assert_close(smt.sigmoid_focal_loss(x, td, gamma=-0.5),
                               torchvision_sigmoid_focal_loss(x, td, gamma=-0.5))


def test_multi_margin_loss_weight_requiring_grad_and_legacy_reduction():
    g = gen(8)
    x = torch.randn(5, 4, generator=g, dtype=F64, requires_grad=True)
    t = torch.tensor([0, 3, 1, 1, 2])
    w = torch.randn(4, generator=g, dtype=F64, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        F.multi_margin_loss(x, t, weight=w)  # torch refuses; ours gives the weight its gradient
    ours, ref = smt.multi_margin_loss(x, t, weight=w), multi_margin_ref(x, t, weight=w)
    torch.testing.assert_close(ours, F.multi_margin_loss(x, t, weight=w.detach()))
    torch.testing.assert_close(torch.autograd.grad(ours, w)[0], torch.autograd.grad(ref, w)[0])
    with pytest.warns(UserWarning):
        torch.testing.assert_close(smt.multi_margin_loss(x, t, size_average=False),
                                   F.multi_margin_loss(x, t, reduction="sum"))
    # shapes torch takes that the op does not: (C,) input with a (1,) target, empty batch
    torch.testing.assert_close(smt.multi_margin_loss(x[0], t[:1], reduction="none"),
                               F.multi_margin_loss(x[0], t[:1], reduction="none"))


def test_gumbel_softmax_draws_torchs_sample():
    """Same seed, same noise as torch's (its generator, consumed the same way); hard=True
    is the one-hot with the soft sample's gradient."""
    x = torch.randn(6, 5, dtype=F64, requires_grad=True)
    for hard, tau, dim in [(False, 1.0, -1), (True, 0.5, 0), (False, 2.0, 1)]:
        torch.manual_seed(11)
        ours = smt.gumbel_softmax(x, tau=tau, hard=hard, dim=dim)
        torch.manual_seed(11)
        ref = F.gumbel_softmax(x, tau=tau, hard=hard, dim=dim)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
        w = torch.randn(x.shape, dtype=F64)
        torch.testing.assert_close(torch.autograd.grad(ours, x, w)[0], torch.autograd.grad(ref, x, w)[0],
                                   rtol=1e-12, atol=1e-13)
    with pytest.warns(UserWarning, match="deprecated"):
        smt.gumbel_softmax(x, eps=1e-5)


def test_bad_arguments_name_themselves():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="label|target|7"):
        smt.focal_loss(x, torch.tensor([0, 7, 1]))
    with pytest.raises(ValueError, match="gamma"):
        smt.focal_loss(x, torch.tensor([0, 1, 1]), gamma=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        smt.poly1_cross_entropy(x, torch.tensor([0, 1, 1]), epsilon=-2.0)
    with pytest.raises(ValueError, match="reduction"):
        smt.focal_loss(x, torch.tensor([0, 1, 1]), reduction="batchmean")
    with pytest.raises(ValueError, match="int64 class indices"):
        smt.poly1_cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="alpha"):
        smt.sigmoid_focal_loss(x, torch.zeros(3, 4), alpha=2.0)
    with pytest.raises(ValueError, match="alpha"):
        smt.entmax_bisect(x, alpha=0.5)
    with pytest.raises(IndexError, match="dim"):
        smt.sparsemax(x, dim=2)
    with pytest.raises(ValueError, match="7"):
        smt.multi_margin_loss(x, torch.tensor([0, 7, 1]))


def test_all_ignored_mean_is_nan_with_zero_gradient():
    """torch's cross_entropy convention: the mean over no rows is NaN, the gradient 0."""
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([-100, -100])
    loss = smt.focal_loss(x, t)
    assert torch.isnan(loss)
    (gx,) = torch.autograd.grad(loss, x)
    assert torch.equal(gx, torch.zeros_like(x))


def test_modules_are_torchs_modules():
    sp, ls, mm = smt.Softplus(beta=2.0, threshold=5.0), smt.LogSigmoid(), smt.MultiMarginLoss(p=2, margin=0.5)
    assert isinstance(sp, torch.nn.Softplus) and isinstance(ls, torch.nn.LogSigmoid)
    assert isinstance(mm, torch.nn.MultiMarginLoss)
    x = torch.randn(4, 3, dtype=F64)
    t = torch.tensor([0, 2, 1, 0])
    torch.testing.assert_close(sp(x), torch.nn.Softplus(beta=2.0, threshold=5.0)(x))
    torch.testing.assert_close(ls(x), torch.nn.LogSigmoid()(x))
    torch.testing.assert_close(mm(x, t), torch.nn.MultiMarginLoss(p=2, margin=0.5)(x, t))


class RelativesModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 4)
        self.sp = smt.Softplus(beta=2.0)
        self.ls = smt.LogSigmoid()
        self.mm = smt.MultiMarginLoss(p=2, weight=torch.tensor([1.0, 2.0, -0.5, 1.0]))

    def forward(self, x, y, yb):
        z = self.lin(x)
        return (self.mm(z, y) + self.sp(z).mean() - self.ls(z).mean() + smt.focal_loss(z, y)
                + smt.poly1_cross_entropy(z, y) + smt.sigmoid_focal_loss(z, yb, reduction="mean")
                + (smt.sparsemax(z, 1) * z).sum() + (smt.entmax_bisect(z, 1.3, 1) * z).sum())


def test_fullgraph_compile(monkeypatch, caplog):
    """torch.compile(fullgraph=True) (aot_eager, as tests/test_torch_compile.py) traces a
    model using the modules and functions through our ops, at two batch sizes (the fake
    implementations take symbolic shapes): same loss and gradients as eager, no
    warning, no graph break, and every seam ran inside the compiled graph."""
    import logging
    import warnings
    seams = ["_np_softplus", "_np_log_sigmoid", "_np_margin_rows", "_np_sigmoid_focal", "_np_entmax", "_np_ce_rows"]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    torch.manual_seed(0)
    model = RelativesModel()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    g = gen(9)
    with warnings.catch_warnings(record=True) as record, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        for n in (8, 5):
            x, y = torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)
            yb = torch.rand(n, 4, generator=g).round()
            eager = model(x, y, yb)
            ge = torch.autograd.grad(eager, model.lin.weight)[0]
            calls = {s: _count(monkeypatch, s) for s in seams}
            out = compiled(x, y, yb)
            gc = torch.autograd.grad(out, model.lin.weight)[0]
            assert all(calls.values()), {s: len(c) for s, c in calls.items()}
            monkeypatch.undo()
            torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(gc, ge, rtol=1e-6, atol=1e-6)
    assert [str(w.message) for w in record] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not torch._dynamo.utils.counters["graph_break"]


def _params(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", ["multi_margin_loss", "gumbel_softmax"])
def test_signatures_are_torchs(name):
    assert _params(getattr(smt, name)) == _params(getattr(F, name))


def test_builtin_signatures_and_torchvisions():
    """F.softplus and F.logsigmoid are builtins (no inspect.signature): their documented
    signatures; sigmoid_focal_loss's is torchvision's (transcribed above)."""
    import inspect
    P = inspect.Parameter
    assert F.softplus.__doc__.lstrip().startswith("softplus(input, beta=1, threshold=20)")
    assert _params(smt.softplus) == [("input", P.POSITIONAL_OR_KEYWORD, P.empty),
                                     ("beta", P.POSITIONAL_OR_KEYWORD, 1), ("threshold", P.POSITIONAL_OR_KEYWORD, 20)]
    assert F.logsigmoid.__doc__.lstrip().startswith("logsigmoid(input)")
    assert _params(smt.logsigmoid) == [("input", P.POSITIONAL_OR_KEYWORD, P.empty)]
    assert _params(smt.sigmoid_focal_loss) == _params(torchvision_sigmoid_focal_loss)
    for name in ["Softplus", "LogSigmoid", "MultiMarginLoss"]:
        ours, theirs = getattr(smt, name), getattr(torch.nn, name)
        assert issubclass(ours, theirs) and ours.forward is not theirs.forward


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch.func's own
def test_torch_func_transforms_take_the_composites(monkeypatch):
    """torch.func has no rules for custom ops: inside a transform the composites run,
    and give the op path's derivatives."""
    rows_calls, entmax_calls = _count(monkeypatch, "_np_ce_rows"), _count(monkeypatch, "_np_entmax")
    g = gen(12)
    x = torch.randn(4, 3, generator=g, dtype=F64)
    t = torch.tensor([0, 2, -100, 1])
    h = torch.func.hessian(lambda z: smt.focal_loss(z, t, gamma=1.5))(x)
    assert len(rows_calls) == 0
    xr = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(smt.focal_loss(xr, t, gamma=1.5), xr, create_graph=True)
    rows = [torch.autograd.grad(g1.reshape(-1)[i], xr, retain_graph=True)[0] for i in range(12)]
    torch.testing.assert_close(h.reshape(12, 12), torch.stack(rows).reshape(12, 12), rtol=1e-9, atol=1e-11)
    assert len(rows_calls) > 0  # the reference ran the op
    jac = torch.func.jacrev(lambda z: smt.entmax15(z, dim=1))(x)
    jac_op = torch.autograd.functional.jacobian(lambda z: smt.entmax15(z, dim=1), x)
    torch.testing.assert_close(jac, jac_op, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(torch.vmap(lambda r: smt.sparsemax(r, 0))(x), smt.sparsemax(x, 1))
    assert len(entmax_calls) == 2  # the op-path references only (jacobian: one forward)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_torchs_opinfo_samples_match_or_pass_through(monkeypatch):
    """torch's own OpInfo sample inputs for softplus, logsigmoid and multi_margin_loss
    (CPU float32/float64/bfloat16): each runs on our op and matches torch (value, and
    the gradient for a random upstream gradient), or is passed to torch."""
    common = pytest.importorskip("torch.testing._internal.common_methods_invocations")
    ours = {"nn.functional.softplus": smt.softplus, "nn.functional.logsigmoid": smt.logsigmoid,
            "nn.functional.multi_margin_loss": smt.multi_margin_loss}
    calls = {s: _count(monkeypatch, s) for s in ["_np_softplus", "_np_log_sigmoid", "_np_margin_rows"]}
    counts = {}
    g = gen(13)
    for op in [op for op in common.op_db if op.name in ours]:
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            if dtype not in op.supported_dtypes("cpu"):
                continue
            for sample in op.sample_inputs("cpu", dtype, requires_grad=True):
                x, args, kwargs = sample.input, sample.args, sample.kwargs
                before = sum(map(len, calls.values()))
                out = ours[op.name](x, *args, **kwargs)
                route = "op" if sum(map(len, calls.values())) > before else "torch"
                ref = op.op(x, *args, **kwargs)
                where = f"{op.name} {dtype} {sample}"
                assert out.shape == ref.shape and out.dtype == ref.dtype, where
                tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
                torch.testing.assert_close(out, ref, equal_nan=True, msg=where, **tol)
                if out.requires_grad:
                    w = torch.randn(ref.shape, generator=g, dtype=torch.float64).to(dtype)
                    a = torch.autograd.grad(out, x, w, allow_unused=True)[0]
                    b = torch.autograd.grad(ref, x, w, allow_unused=True)[0]
                    torch.testing.assert_close(a, b, equal_nan=True, msg=where, **tol)
                key = (op.name, str(dtype).replace("torch.", ""), route)
                counts[key] = counts.get(key, 0) + 1
    print("\n".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for name in ours:
        assert counts.get((name, "float64", "op"), 0) > 0 and counts.get((name, "float32", "op"), 0) > 0, name


def test_ignore_index_type():
    x = torch.randn(3, 4)
    with pytest.raises(TypeError, match="ignore_index"):
        smt.focal_loss(x, torch.tensor([0, 1, 1]), ignore_index=None)
    with pytest.raises(TypeError, match="ignore_index"):
        smt.poly1_cross_entropy(x, torch.tensor([0, 1, 1]), ignore_index=1.5)


def test_strided_and_negated_views():
    """Non-contiguous inputs and lazily negated views (torch's neg bit) give the values
    of their contiguous copies."""
    g = gen(14)
    base = torch.randn(6, 5, generator=g, dtype=F64)
    t = torch.tensor([0, 4, 2, 1, 3])
    tb = (torch.rand(5, 6, generator=g) > 0.5).to(F64)
    for view in (base.t(), base.t()[:, ::2].t().t(), torch._neg_view(base).t()):
        dense = view.contiguous()
        for fn in (smt.softplus, smt.logsigmoid, lambda z: smt.sparsemax(z, 0), lambda z: smt.entmax15(z, 1)):
            torch.testing.assert_close(fn(view), fn(dense), rtol=0, atol=0)
        if view.shape == (5, 6):
            torch.testing.assert_close(smt.multi_margin_loss(view, t, p=2), smt.multi_margin_loss(dense, t, p=2),
                                       rtol=0, atol=0)
            torch.testing.assert_close(smt.sigmoid_focal_loss(view, tb), smt.sigmoid_focal_loss(dense, tb),
                                       rtol=0, atol=0)
            torch.testing.assert_close(smt.focal_loss(view, t), smt.focal_loss(dense, t), rtol=0, atol=0)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 6), c=st.integers(2, 5), extra=st.sampled_from([(), (2,)]),
       gamma=st.sampled_from([0.0, 0.5, 2.0]), reduction=st.sampled_from(["mean", "sum", "none"]),
       f32=st.booleans(), seed=st.integers(0, 2**16))
def test_hypothesis_focal_and_poly1(n, c, extra, gamma, reduction, f32, seed):
    """Random shapes (empty batches included), ignored rows, gammas, reductions, float32
    and float64: value and gradient (random upstream) equal the plain formulas'. (The
    plain formula's gradient is NaN where p_y rounds to 1 and gamma < 1, hence C >= 2
    and moderate logits here; test_focal_loss_at_certainty covers that point.)"""
    dtype = torch.float32 if f32 else F64
    g = gen(seed)
    x = (2 * torch.randn((n, c) + extra, generator=g, dtype=dtype)).requires_grad_(True)
    t = torch.randint(0, c, (n,) + extra, generator=g)
    t.view(-1)[::3] = -100
    tol = dict(rtol=1e-4, atol=1e-5) if f32 else dict(rtol=1e-10, atol=1e-12)
    for ours, ref in [(smt.focal_loss(x, t, gamma=gamma, reduction=reduction),
                       focal_ref(x, t, gamma=gamma, reduction=reduction)),
                      (smt.poly1_cross_entropy(x, t, epsilon=gamma - 1, reduction=reduction),
                       poly1_ref(x, t, epsilon=gamma - 1, reduction=reduction))]:
        torch.testing.assert_close(ours, ref.to(dtype), equal_nan=True, **tol)
        up = torch.randn(ref.shape, generator=g, dtype=dtype)
        a = torch.autograd.grad(ours, x, up, allow_unused=True)[0]
        b = torch.autograd.grad(ref, x, up, allow_unused=True)[0]
        a = torch.zeros_like(x) if a is None else a
        b = torch.zeros_like(x) if b is None else b
        torch.testing.assert_close(a, b, equal_nan=True, **tol)


def test_focal_loss_at_certainty():
    """p_y = 1 exactly (one class, or a float32 logit gap of 120): loss 0 and gradient 0
    for every gamma, also gamma < 1 where d/dp (1 - p)^gamma is infinite (the plain
    formula's gradient is NaN there)."""
    for x in (torch.zeros(3, 1, dtype=F64), torch.tensor([[120.0, 0.0]]).repeat(3, 1)):
        x.requires_grad_(True)
        t = torch.zeros(3, dtype=torch.int64)
        for gamma in (0.0, 0.5, 2.0):
            loss = smt.focal_loss(x, t, gamma=gamma, reduction="sum")
            (gx,) = torch.autograd.grad(loss, x, create_graph=True)
            assert float(loss.detach()) == 0.0 and torch.equal(gx, torch.zeros_like(x))
            assert torch.isfinite(torch.autograd.grad(gx.sum(), x, allow_unused=True)[0] if gx.requires_grad
                                  else torch.zeros(1)).all()


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.integers(1, 5), c=st.integers(1, 7), alpha=st.sampled_from([1.0, 1.2, 1.5, 2.0, 3.0]),
       scale=st.sampled_from([0.1, 1.0, 30.0]), seed=st.integers(0, 2**16))
def test_hypothesis_entmax_properties(rows, c, alpha, scale, seed):
    """On the simplex, sparser as alpha grows past 1, equal to the entmax package (and to
    softmax at alpha 1), and its Jacobian-vector product is orthogonal to ones."""
    g = gen(seed)
    x = (scale * torch.randn(rows, c, generator=g, dtype=F64)).requires_grad_(True)
    p = smt.entmax_bisect(x, alpha)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(rows, dtype=F64), rtol=0, atol=1e-12)
    ref = torch.softmax(x, -1) if alpha == 1.0 else entmax_ref(x.detach(), alpha, -1)
    torch.testing.assert_close(p, ref, rtol=1e-7, atol=1e-9)
    (gx,) = torch.autograd.grad(p, x, torch.randn(rows, c, generator=g, dtype=F64))
    torch.testing.assert_close(gx.sum(-1), torch.zeros(rows, dtype=F64), rtol=0, atol=1e-10)


def test_benchmark_script_runs(capsys):
    """benchmarks/torch_relatives_bench.py at a tiny size (a check of the code, not numbers)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "torch_relatives_bench.py"
    spec = importlib.util.spec_from_file_location("torch_relatives_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    import softmaxkit
    threads, smk_threads = torch.get_num_threads(), softmaxkit.get_num_threads()
    try:
        bench.main(["--quick", "--rows", "16", "--cols", "50", "--repeat", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
        softmaxkit.set_num_threads(smk_threads)
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("| `") for line in lines) >= 7


# ------------------------------------------------------------------ dtypes and the kernel backward ops

KERNEL_SEAMS = ["_np_softplus", "_np_softplus_backward", "_np_log_sigmoid", "_np_log_sigmoid_backward",
                "_np_sigmoid_focal", "_np_sigmoid_focal_backward", "_np_margin_rows", "_np_margin_backward"]


def _spy(monkeypatch):
    """Records (seam, dtype of its first array, dtypes of the others) per call."""
    import numpy as np

    seen = []
    for name in KERNEL_SEAMS:
        real = getattr(rel, name)

        def spy(*a, _real=real, _name=name):
            arrays = [v.dtype for v in a if isinstance(v, np.ndarray)]
            seen.append((_name, arrays[0], arrays[1:]))
            return _real(*a)
        monkeypatch.setattr(rel, name, spy)
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_no_widening_and_plain_backward_runs_the_kernel_ops(monkeypatch, dtype):
    """float32 stays float32 from the op to the kernel and back, forward and backward;
    a plain backward runs each backward kernel op once, with the same gradient as torch."""
    import numpy as np

    seen = _spy(monkeypatch)
    g = gen(3)
    x = torch.randn(6, 5, generator=g, dtype=dtype) * 4
    t = (torch.rand(6, 5, generator=g) > 0.5).to(dtype)
    lab = torch.randint(0, 5, (6,), generator=g)
    cases = [(lambda z: smt.softplus(z, 2.0, 3.0).sum(), lambda z: F.softplus(z, 2.0, 3.0).sum()),
             (lambda z: smt.logsigmoid(z).sum(), lambda z: F.logsigmoid(z).sum()),
             (lambda z: smt.sigmoid_focal_loss(z, t, reduction="mean"),
              lambda z: torchvision_sigmoid_focal_loss(z, t, reduction="mean")),
             (lambda z: smt.multi_margin_loss(z, lab, p=2), lambda z: F.multi_margin_loss(z, lab, p=2))]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-14)
    for ours, ref in cases:
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        la, lb = ours(a), ref(b)
        assert la.dtype == dtype
        la.backward()
        lb.backward()
        assert a.grad.dtype == dtype
        torch.testing.assert_close(la, lb, **tol)
        torch.testing.assert_close(a.grad, b.grad, **tol)
    assert sorted({s for s, _, _ in seen}) == sorted(KERNEL_SEAMS)
    assert len(seen) == len(KERNEL_SEAMS)  # one call each
    want = np.float32 if dtype == torch.float32 else np.float64
    for name, first, rest in seen:
        assert first == want, name
        # the hinge's per-row upstream gradient is float64 (its rows are), labels int64
        assert all(d in (want, np.float64, np.int64) for d in rest), name
        if name != "_np_margin_backward":
            assert all(d in (want, np.int64) for d in rest), name


def test_create_graph_takes_the_torch_formula_and_is_exact(monkeypatch):
    """Under create_graph the backward runs in torch ops (no kernel backward op), so the
    second derivative is torch's (the hinge's: its formula's, torch has none)."""
    seen = _spy(monkeypatch)
    g = gen(4)
    x = torch.randn(4, 3, generator=g, dtype=F64) * 3
    t = (torch.rand(4, 3, generator=g) > 0.5).to(F64)
    lab = torch.randint(0, 3, (4,), generator=g)

    def hinge2(z):  # torch has no double backward for multi_margin_loss: the formula
        h = (1 - z.gather(1, lab[:, None]) + z).clamp(min=0)
        return (h.pow(2) * (1 - F.one_hot(lab, 3).to(F64))).sum(1) / 3

    cases = [(lambda z: smt.softplus(z, 2.0), lambda z: F.softplus(z, 2.0)),
             (smt.logsigmoid, F.logsigmoid),
             (lambda z: smt.sigmoid_focal_loss(z, t), lambda z: torchvision_sigmoid_focal_loss(z, t)),
             (lambda z: smt.multi_margin_loss(z, lab, p=2, reduction="none"), hinge2)]

    for ours, ref in cases:
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        (ga,) = torch.autograd.grad(ours(a).pow(2).sum(), a, create_graph=True)
        assert not [s for s, _, _ in seen if s.endswith("backward")]  # the torch formula ran
        (gb,) = torch.autograd.grad(ref(b).pow(2).sum(), b, create_graph=True)
        (hb,) = torch.autograd.grad(gb.sin().sum(), b)
        (ha,) = torch.autograd.grad(ga.sin().sum(), a)
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ha, hb, rtol=1e-10, atol=1e-12)
        seen.clear()  # (ha's pass may run the kernel ops: a first derivative of ours(a))
