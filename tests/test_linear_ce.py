"""Fused linear + cross-entropy: equal to the unfused computation, chunked memory,
PyTorch agreement, finite differences, edge cases and bad input."""
import doctest
import itertools
import tracemalloc

import numpy as np
import pytest

import softmaxkit as smk
from softmaxkit import _linear_ce

REDUCTIONS = ["mean", "sum", "none"]


def problem(rng, n=23, h=6, v=13, dtype=np.float64, ignore=None):
    hidden = rng.standard_normal((n, h)).astype(dtype)
    weight = rng.standard_normal((v, h)).astype(dtype)
    bias = rng.standard_normal(v).astype(dtype)
    target = rng.integers(0, v, size=n)
    if ignore is not None:
        target[::4] = ignore
    return hidden, weight, bias, target


def unfused(hidden, weight, target, bias=None, class_weight=None, **kw):
    """The reference: full logits, smk.cross_entropy_and_grad, then the chain rule."""
    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    loss, g = smk.cross_entropy_and_grad(logits, target, weight=class_weight, **kw)
    return loss, (g @ weight, g.T @ hidden, None if bias is None else g.sum(axis=0))


def assert_same(got, want, rtol, atol):
    loss, grads = got
    ref_loss, ref_grads = want
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol, atol=atol)
    for g, r in zip(grads, ref_grads):
        if r is None:
            assert g is None
        else:
            assert g.shape == r.shape
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- equal to unfused


@pytest.mark.parametrize(
    "reduction, smoothing, with_weight, ignore, with_bias",
    list(itertools.product(REDUCTIONS, [0.0, 0.25], [False, True], [None, -100], [False, True])),
)
def test_equals_unfused_float64(rng, reduction, smoothing, with_weight, ignore, with_bias):
    hidden, weight, bias, target = problem(rng, ignore=ignore)
    bias = bias if with_bias else None
    cw = rng.uniform(0.2, 2.0, size=weight.shape[0]) if with_weight else None
    kw = dict(ignore_index=ignore, label_smoothing=smoothing, reduction=reduction)
    want = unfused(hidden, weight, target, bias, cw, **kw)
    for chunk in (1, 5, None):
        got = smk.linear_cross_entropy_and_grad(
            hidden, weight, target, bias=bias, class_weight=cw, chunk_size=chunk, **kw
        )
        assert_same(got, want, rtol=1e-12, atol=1e-14)
        loss = smk.linear_cross_entropy(
            hidden, weight, target, bias=bias, class_weight=cw, chunk_size=chunk, **kw
        )
        np.testing.assert_allclose(loss, want[0], rtol=1e-12, atol=1e-14)


def test_float32_within_documented_tolerance(rng):
    # docs/linear_cross_entropy.md: float32 loss within 1e-5 relative of the float64
    # result, gradients within 1e-5 of each array's largest magnitude.
    hidden, weight, bias, target = problem(rng, n=300, h=64, v=1000, dtype=np.float32)
    hidden *= 0.5
    loss, grads = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, chunk_size=37)
    ref_loss, ref_grads = unfused(
        hidden.astype(np.float64), weight.astype(np.float64), target, bias.astype(np.float64)
    )
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * np.abs(r).max())


def test_chunk_size_does_not_change_the_result(rng):
    hidden, weight, bias, target = problem(rng, n=50, ignore=-1)
    ref = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, ignore_index=-1,
                                            chunk_size=50)
    for chunk in (1, 2, 7, 49, 1000):
        got = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias,
                                                ignore_index=-1, chunk_size=chunk)
        assert_same(got, ref, rtol=1e-12, atol=1e-14)


def test_threads(rng, num_threads):
    hidden, weight, bias, target = problem(rng, n=400, h=8, v=300)
    got = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, chunk_size=128)
    assert_same(got, unfused(hidden, weight, target, bias), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------- oracles


def test_matches_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    hidden, weight, bias, target = problem(rng, ignore=-100)
    cw = rng.uniform(0.2, 2.0, size=weight.shape[0])
    for reduction, eps in itertools.product(REDUCTIONS, [0.0, 0.1]):
        ht, wt, bt = (torch.tensor(a, requires_grad=True) for a in (hidden, weight, bias))
        loss_t = F.cross_entropy(F.linear(ht, wt, bt), torch.tensor(target), weight=torch.tensor(cw),
                                 ignore_index=-100, label_smoothing=eps, reduction=reduction)
        loss_t.sum().backward()
        got = smk.linear_cross_entropy_and_grad(
            hidden, weight, target, bias=bias, class_weight=cw, ignore_index=-100,
            label_smoothing=eps, reduction=reduction, chunk_size=4,
        )
        want = (loss_t.detach().numpy(), (ht.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()))
        assert_same(got, want, rtol=1e-12, atol=1e-14)


def fd4(f, x, idx, step=1e-3):
    """4th-order central difference of scalar f at x along coordinate idx."""
    def at(d):
        y = x.copy()
        y[idx] += d
        return f(y)
    return (-at(2 * step) + 8 * at(step) - 8 * at(-step) + at(-2 * step)) / (12 * step)


def test_gradients_against_finite_differences(rng):
    hidden, weight, bias, target = problem(rng, n=9, h=4, v=7, ignore=3)
    kw = dict(ignore_index=3, label_smoothing=0.1, chunk_size=2)
    _, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, **kw)
    loss = lambda h=hidden, w=weight, b=bias: float(  # noqa: E731
        smk.linear_cross_entropy(h, w, target, bias=b, **kw))
    for idx in [(1, 0), (5, 3), (8, 2)]:
        assert fd4(lambda h: loss(h=h), hidden, idx) == pytest.approx(gh[idx], abs=1e-9)
    for idx in [(0, 0), (6, 3), (4, 1)]:
        assert fd4(lambda w: loss(w=w), weight, idx) == pytest.approx(gw[idx], abs=1e-9)
    for idx in [(0,), (6,)]:
        assert fd4(lambda b: loss(b=b), bias, idx) == pytest.approx(gb[idx], abs=1e-9)


def test_doc_examples():
    result = doctest.testmod(_linear_ce, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6 and result.failed == 0


# ----------------------------------------------------------- memory and edges


def test_extra_memory_is_a_chunk_not_the_logits(rng):
    # N x V float64 logits would be 64 MiB; a 64-row chunk is 2 MiB. The unfused
    # path peaks above the logits' size; the fused one must stay near the chunk.
    n, h, v = 2048, 8, 4096
    hidden, weight, bias, target = problem(rng, n=n, h=h, v=v)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        loss, grads = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, chunk_size=64)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    extra = peak - sum(g.nbytes for g in grads)
    logits_bytes = n * v * 8
    assert extra < 0.1 * logits_bytes, (extra, logits_bytes)


def test_stable_where_the_naive_form_overflows():
    # logits [0, 120] in float32: exp(120) overflows, logsumexp(z) - z[y] does not.
    hidden = np.array([[1.0]], dtype=np.float32)
    weight = np.array([[0.0], [120.0]], dtype=np.float32)
    loss, (gh, gw, _) = smk.linear_cross_entropy_and_grad(hidden, weight, [0])
    assert loss == pytest.approx(120.0, rel=1e-6)
    assert np.isfinite(gh).all() and np.isfinite(gw).all()
    assert gh[0, 0] == pytest.approx(120.0, rel=1e-6)  # (p - onehot) @ W = 1 * 120


def test_all_ignored_and_empty(rng):
    hidden, weight, bias, target = problem(rng, n=5)
    target[:] = -100
    loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias,
                                                           ignore_index=-100)
    assert np.isnan(loss)
    assert not gh.any() and not gw.any() and not gb.any()
    assert smk.linear_cross_entropy(hidden, weight, target, ignore_index=-100, reduction="sum") == 0
    empty = np.empty((0, weight.shape[1]))
    loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(empty, weight, np.empty(0, int), bias=bias)
    assert np.isnan(loss) and gh.shape == (0, weight.shape[1])
    assert not gw.any() and not gb.any() and gw.shape == weight.shape
    out = smk.linear_cross_entropy(empty, weight, np.empty(0, int), reduction="none")
    assert out.shape == (0,)


def test_ignored_rows_have_zero_gradient_and_loss(rng):
    hidden, weight, bias, target = problem(rng, ignore=7)
    kept = target != 7
    loss, (gh, _, _) = smk.linear_cross_entropy_and_grad(
        hidden, weight, target, bias=bias, ignore_index=7, reduction="none", chunk_size=3)
    assert not gh[~kept].any() and not loss[~kept].any()
    # and the kept rows alone give the same sum
    ref = smk.linear_cross_entropy(hidden[kept], weight, target[kept], bias=bias, reduction="sum")
    assert loss.sum() == pytest.approx(ref, rel=1e-13)


def test_reductions_are_consistent(rng):
    hidden, weight, bias, target = problem(rng, ignore=0)
    cw = rng.uniform(0.5, 1.5, size=weight.shape[0])
    kw = dict(bias=bias, class_weight=cw, ignore_index=0, chunk_size=4)
    rows = smk.linear_cross_entropy(hidden, weight, target, reduction="none", **kw)
    total = smk.linear_cross_entropy(hidden, weight, target, reduction="sum", **kw)
    mean = smk.linear_cross_entropy(hidden, weight, target, reduction="mean", **kw)
    assert rows.sum() == pytest.approx(total, rel=1e-13)
    assert mean == pytest.approx(total / cw[target[target != 0]].sum(), rel=1e-13)


def test_zero_gradient_at_the_optimum_of_a_smoothed_target():
    # With eps = 1 the target is uniform; zero logits are its optimum: every
    # gradient vanishes and the loss is log V.
    v, h = 5, 3
    hidden = np.ones((4, h))
    weight = np.zeros((v, h))
    loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(
        hidden, weight, [0, 1, 2, 3], bias=np.zeros(v), label_smoothing=1.0)
    assert loss == pytest.approx(np.log(v), rel=1e-15)
    assert np.abs(gh).max() < 1e-15 and np.abs(gw).max() < 1e-15 and np.abs(gb).max() < 1e-15


def test_layouts_dtypes_and_no_writeback(rng):
    hidden, weight, bias, target = problem(rng)
    ref = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias)
    copies = [a.copy() for a in (hidden, weight, bias, target)]
    for arr in (hidden, weight, bias):
        arr.flags.writeable = False
    variants = [
        (np.asfortranarray(hidden), np.asfortranarray(weight)),  # F-order
        (np.repeat(hidden, 2, axis=1)[:, ::2], np.repeat(weight, 2, axis=1)[:, ::2]),  # strided
        (hidden, weight),  # read-only
    ]
    for h, w in variants:
        got = smk.linear_cross_entropy_and_grad(h, w, target.astype(np.int32), bias=bias, chunk_size=4)
        assert_same(got, ref, rtol=1e-12, atol=1e-14)
    for arr, orig in zip((hidden, weight, bias, target), copies):
        np.testing.assert_array_equal(arr, orig)
    # float16 is computed in float32 and returned as float16; ints become float64.
    loss16, grads16 = smk.linear_cross_entropy_and_grad(
        hidden.astype(np.float16), weight.astype(np.float16), target)
    assert loss16.dtype == np.float16 and all(g.dtype == np.float16 for g in grads16[:2])
    loss_int = smk.linear_cross_entropy(np.ones((2, 3), int), np.arange(12).reshape(4, 3), [0, 3])
    assert loss_int.dtype == np.float64


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(hidden=np.ones(3)), ValueError, r"hidden must have shape \(N, H\)"),
        (dict(weight=np.ones((4, 5))), ValueError, r"weight must have shape \(V, H\) with H = .* 3"),
        (dict(weight=np.ones((0, 3))), ValueError, "at least one row"),
        (dict(hidden=np.ones((2, 3), complex)), TypeError, "hidden must be an array of real"),
        (dict(target=[0.0, 1.0]), TypeError, "target must hold integer class indices"),
        (dict(target=[0, 1, 2]), ValueError, r"target has shape \(3,\), expected \(2,\)"),
        (dict(target=[0, 4]), ValueError, r"target\[1\] = 4 is not a class index in \[0, 4\)"),
        (dict(target=[-100, 1]), ValueError, r"target\[0\] = -100"),
        (dict(target=[-1, 1], ignore_index=-100), ValueError, r"target\[0\] = -1 .* ignore_index=-100"),
        (dict(bias=np.ones(3)), ValueError, r"bias must have shape \(V,\) = \(4,\)"),
        (dict(class_weight=np.ones(3)), ValueError, r"class_weight must have shape"),
        (dict(class_weight=[1.0, -1.0, 1.0, 1.0]), ValueError, r"class_weight\[1\] = -1.0"),
        (dict(class_weight=[1.0, np.nan, 1.0, 1.0]), ValueError, r"finite and >= 0"),
        (dict(label_smoothing=1.5), ValueError, "label_smoothing must be in"),
        (dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a real number"),
        (dict(reduction="batchmean"), ValueError, "reduction must be one of"),
        (dict(ignore_index=1.5), TypeError, "ignore_index must be an int"),
        (dict(chunk_size=0), ValueError, "chunk_size must be a positive int, got 0"),
        (dict(chunk_size=True), TypeError, "chunk_size must be a positive int"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(hidden=np.ones((2, 3)), weight=np.ones((4, 3)), target=[0, 1])
    args.update(kwargs)
    hidden, weight, target = args.pop("hidden"), args.pop("weight"), args.pop("target")
    with pytest.raises(exc, match=match):
        smk.linear_cross_entropy(hidden, weight, target, **args)
    with pytest.raises(exc, match=match):
        smk.linear_cross_entropy_and_grad(hidden, weight, target, **args)


# ------------------------------------------------- options and per-row outputs
#
# The references below are unfused and independent of the chunked pass: NumPy in
# float64 for the values, torch autograd (float64) for every gradient, and
# finite differences for softcap and z_loss.


def ref_values(hidden, weight, target, bias=None, cw=None, ignore=None, eps=0.0, z_loss=0.0,
               softcap=None, temperature=1.0):
    """Per-row (ce, z-term, lse, logprob, entropy, argmax, row weight), float64 NumPy."""
    from scipy.special import logsumexp

    a = hidden.astype(np.float64) @ weight.astype(np.float64).T
    if bias is not None:
        a = a + bias
    z = softcap * np.tanh(a / softcap) if softcap is not None else a
    z = z / temperature
    n, v = z.shape
    w = np.ones(v) if cw is None else np.asarray(cw, np.float64)
    counted = np.ones(n, bool) if ignore is None else target != ignore
    ts = np.where(counted, target, 0)
    lse = logsumexp(z, axis=1)
    logp = z - lse[:, None]
    rw = np.where(counted, w[ts], 0.0)
    nll = -logp[np.arange(n), ts]
    ce = np.where(counted, rw * (1 - eps) * nll + eps / v * (-(logp * w).sum(1)), 0.0)
    zt = z_loss * rw * lse**2
    p = np.exp(logp)
    ent = -(p * logp).sum(1)
    lp = np.where(counted, -nll, 0.0)
    return ce, zt, lse, lp, ent, z.argmax(1), rw


def torch_objective(hidden, weight, target, bias=None, cw=None, ignore=None, eps=0.0,
                    z_loss=0.0, softcap=None, temperature=1.0, coef=(1.0, 0.0, 0.0, 0.0)):
    """Gradients of sum(c_loss (ce + z) + c_z z + c_lp logprob + c_ent entropy), torch."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h = torch.tensor(hidden, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    b = None if bias is None else torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    a = F.linear(h, w, b)
    z = softcap * torch.tanh(a / softcap) if softcap is not None else a
    z = z / temperature
    t = torch.tensor(target)
    counted = torch.ones_like(t, dtype=torch.bool) if ignore is None else t != ignore
    ts = torch.where(counted, t, 0)
    cwt = None if cw is None else torch.tensor(cw, dtype=torch.float64)
    ce = F.cross_entropy(z, t, weight=cwt, ignore_index=-100 if ignore is None else ignore,
                         label_smoothing=eps, reduction="none")
    lse = torch.logsumexp(z, 1)
    rw = torch.where(counted, (torch.ones(z.shape[1], dtype=torch.float64) if cwt is None else cwt)[ts], 0.0)
    zt = z_loss * rw * lse**2
    logp = torch.log_softmax(z, 1)
    lp = torch.where(counted, logp.gather(1, ts[:, None])[:, 0], 0.0)
    ent = -(logp.exp() * logp).sum(1)
    c = [torch.as_tensor(x, dtype=torch.float64) for x in coef]
    obj = (c[0] * (ce + zt) + c[1] * zt + c[2] * lp + c[3] * ent).sum()
    obj.backward()
    return h.grad.numpy(), w.grad.numpy(), None if b is None else b.grad.numpy()


OPTION_CASES = [
    dict(),
    dict(z_loss=1e-2),
    dict(softcap=2.5),
    dict(temperature=0.7),
    dict(softcap=3.0, temperature=1.6, z_loss=0.05),
    dict(z_loss=0.1, eps=0.2, ignore=-100, cw=True),
    dict(softcap=1.5, eps=0.3, cw=True, temperature=0.5, ignore=4),
]


def _case(rng, spec, n=29, h=5, v=11, dtype=np.float64):
    spec = dict(spec)
    ignore = spec.pop("ignore", None)
    hidden, weight, bias, target = problem(rng, n=n, h=h, v=v, dtype=dtype, ignore=ignore)
    hidden *= 2.0  # logits of a few units: softcap and temperature matter
    cw = rng.uniform(0.2, 2.0, size=v) if spec.pop("cw", False) else None
    return hidden, weight, bias, target, dict(cw=cw, ignore=ignore, eps=spec.pop("eps", 0.0), **spec)


def _api_kw(o):
    return dict(class_weight=o["cw"], ignore_index=o["ignore"], label_smoothing=o["eps"],
                z_loss=o.get("z_loss", 0.0), softcap=o.get("softcap"),
                temperature=o.get("temperature", 1.0))


@pytest.mark.parametrize("spec", OPTION_CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_options_and_outputs_equal_the_unfused_reference_float64(rng, spec, reduction):
    hidden, weight, bias, target, o = _case(rng, spec)
    ce, zt, lse, lp, ent, am, rw = ref_values(hidden, weight, target, bias, **o)
    res = smk.linear_cross_entropy_full(hidden, weight, target, bias=bias, reduction=reduction,
                                        outputs=OUTPUTS_ALL, grad=True, chunk_size=7, **_api_kw(o))
    rows = ce + zt
    if reduction == "none":
        want, want_z = rows, zt
    elif reduction == "sum":
        want, want_z = rows.sum(), zt.sum()
    else:
        want, want_z = rows.sum() / rw.sum(), zt.sum() / rw.sum()
    np.testing.assert_allclose(res.loss, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.z_loss, want_z, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.lse, lse, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.logprob, lp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.entropy, ent, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(res.argmax, am)
    kept = rw > 0 if o["ignore"] is not None else np.ones(len(target), bool)
    assert res.accuracy == pytest.approx((am[kept] == target[kept]).mean(), abs=0)
    # gradients: torch autograd of the same objective, per-row coefficient of the
    # reduction (1, or 1 / total weight for "mean")
    scale = 1.0 / rw.sum() if reduction == "mean" else 1.0
    gh, gw, gb = torch_objective(hidden, weight, target, bias, coef=(scale, 0, 0, 0), **o)
    np.testing.assert_allclose(res.grad_hidden, gh, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(res.grad_weight, gw, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(res.grad_bias, gb, rtol=1e-11, atol=1e-13)
    # the loss-only and loss-and-grad entry points agree with the full pass
    kw = _api_kw(o)
    np.testing.assert_allclose(smk.linear_cross_entropy(hidden, weight, target, bias=bias,
                                                        reduction=reduction, **kw),
                               res.loss, rtol=1e-13, atol=0)
    loss2, (gh2, gw2, gb2) = smk.linear_cross_entropy_and_grad(
        hidden, weight, target, bias=bias, reduction=reduction, chunk_size=5, **kw)
    np.testing.assert_allclose(loss2, res.loss, rtol=1e-13, atol=0)
    np.testing.assert_allclose(gw2, res.grad_weight, rtol=1e-11, atol=1e-13)


OUTPUTS_ALL = ("lse", "logprob", "entropy", "argmax")


@pytest.mark.parametrize("spec", OPTION_CASES[1:])
def test_per_row_upstream_gradient_is_exact(rng, spec):
    # reduction="none" with an arbitrary per-row upstream gradient: the gradient of
    # sum_i g_i loss_i, not g_mean * gradient of the sum.
    hidden, weight, bias, target, o = _case(rng, spec)
    g = rng.standard_normal(len(target))
    loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(
        hidden, weight, target, bias=bias, reduction="none", grad_output=g, chunk_size=4,
        **_api_kw(o))
    rh, rwt, rb = torch_objective(hidden, weight, target, bias, coef=(g, 0, 0, 0), **o)
    np.testing.assert_allclose(gh, rh, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gw, rwt, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(gb, rb, rtol=1e-11, atol=1e-13)
    # and a scalar grad_output scales the reduced loss's gradient
    _, (gh1, _, _) = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias,
                                                       **_api_kw(o))
    _, (gh3, _, _) = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias,
                                                       grad_output=-3.0, **_api_kw(o))
    np.testing.assert_allclose(gh3, -3.0 * gh1, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("spec", [OPTION_CASES[4], OPTION_CASES[6]])
def test_gradients_of_outputs_through_the_core(rng, spec):
    # the core's gradient of c_loss*loss + c_z*zloss + c_lp*logprob + c_ent*entropy
    # (what softmaxkit.torch uses in backward) against torch autograd
    hidden, weight, bias, target, o = _case(rng, spec)
    n = len(target)
    coef = tuple(rng.standard_normal(n) for _ in range(4))
    p = _linear_ce._prepare(hidden, weight, target, bias, o["cw"], o["ignore"], o["eps"], "none",
                            6, z_loss=o.get("z_loss", 0.0), softcap=o.get("softcap"),
                            temperature=o.get("temperature", 1.0), grad_coef=True)
    res = _linear_ce._pass(p, _linear_ce._Coef(*coef), (True, True, True))
    want = torch_objective(hidden, weight, target, bias, coef=coef, **o)
    for got, ref in zip(res.grads, want):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", [dict(softcap=2.0), dict(z_loss=0.05), dict(softcap=1.0, z_loss=0.2,
                                                                          temperature=1.3)])
def test_softcap_and_z_loss_gradients_against_finite_differences(rng, spec):
    hidden, weight, bias, target, o = _case(rng, spec, n=7, h=3, v=5)
    kw = dict(bias=bias, chunk_size=3, **_api_kw(o))
    _, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(hidden, weight, target, **kw)
    f = lambda h=hidden, w=weight: float(smk.linear_cross_entropy(h, w, target, **kw))  # noqa: E731
    for idx in [(0, 0), (3, 2), (6, 1)]:
        assert fd4(lambda x: f(h=x), hidden, idx) == pytest.approx(gh[idx], abs=1e-9)
    for idx in [(0, 1), (4, 2)]:
        assert fd4(lambda x: f(w=x), weight, idx) == pytest.approx(gw[idx], abs=1e-9)


def test_options_float32_within_documented_tolerance(rng):
    # docs/linear_cross_entropy.md: float32 loss within 1e-5 relative, per-row lse,
    # logprob and entropy within 1e-5 * (1 + |value|), gradients within 1e-5 of each
    # array's largest magnitude, against the float64 computation.
    hidden, weight, bias, target = problem(rng, n=200, h=32, v=700, dtype=np.float32, ignore=-1)
    kw = dict(bias=bias, ignore_index=-1, label_smoothing=0.1, z_loss=1e-3, softcap=15.0,
              temperature=0.8)
    got = smk.linear_cross_entropy_full(hidden, weight, target, outputs=OUTPUTS_ALL, grad=True,
                                        chunk_size=33, **kw)
    ref = smk.linear_cross_entropy_full(hidden.astype(np.float64), weight.astype(np.float64),
                                        target, outputs=OUTPUTS_ALL, grad=True,
                                        **{**kw, "bias": bias.astype(np.float64)})
    assert got.loss.dtype == np.float32 and got.grad_weight.dtype == np.float32
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-5)
    for name in ("lse", "logprob", "entropy"):
        a, b = getattr(got, name), getattr(ref, name)
        assert np.all(np.abs(a - b) <= 1e-5 * (1 + np.abs(b))), name
    for name in ("grad_hidden", "grad_weight", "grad_bias"):
        a, b = getattr(got, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())


def test_result_type_is_fixed(rng):
    hidden, weight, bias, target = problem(rng)
    res = smk.linear_cross_entropy_full(hidden, weight, target)
    assert isinstance(res, smk.LinearCrossEntropyResult)
    assert res.lse is None and res.grad_weight is None and res.accuracy is None
    assert res.z_loss == 0.0
    res = smk.linear_cross_entropy_full(hidden, weight, target, outputs="entropy", grad=True,
                                        reduction="none")
    assert res.entropy.shape == (len(target),) and res.lse is None
    assert res.grad_hidden.shape == hidden.shape and res.grad_bias is None


def test_zero_temperature_limit_and_large_softcap(rng):
    # softcap -> inf is no capping; temperature 1 and no softcap take the C kernel
    hidden, weight, bias, target = problem(rng)
    base = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias)
    capped = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, softcap=1e9)
    assert_same(capped, base, rtol=1e-9, atol=1e-12)
    # temperature T equals scaling hidden and bias by 1/T
    t = 0.37
    hot = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, temperature=t)
    scaled = smk.linear_cross_entropy(hidden / t, weight, target, bias=bias / t)
    assert hot[0] == pytest.approx(scaled, rel=1e-12)


def test_uint64_label_does_not_wrap_to_ignore_index():
    # 2**64 - 1 as uint64 is not -1: it is rejected, not ignored
    hidden, weight = np.ones((2, 3)), np.ones((4, 3))
    target = np.array([0, 2**64 - 1], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"target\[1\] = 18446744073709551615"):
        smk.linear_cross_entropy(hidden, weight, target, ignore_index=-1)
    with pytest.raises(ValueError, match="ignore_index must fit in int64"):
        smk.linear_cross_entropy(hidden, weight, [0, 1], ignore_index=2**70)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(z_loss=-1.0), ValueError, "z_loss must be a finite number >= 0"),
        (dict(z_loss=np.inf), ValueError, "z_loss must be a finite number >= 0"),
        (dict(softcap=0.0), ValueError, "softcap must be a finite number > 0"),
        (dict(softcap="3"), TypeError, "softcap must be a real number"),
        (dict(temperature=0.0), ValueError, "temperature must be a finite number > 0"),
        (dict(outputs=("lse", "probs")), ValueError, "outputs must be names from"),
        (dict(grad=1), TypeError, "grad must be True or False"),
        (dict(grad=True, grad_output=np.ones(2)), ValueError, r"grad_output must have shape \(\)"),
        (dict(grad=True, reduction="none", grad_output=np.ones(3)), ValueError,
         r"grad_output must have shape \(2,\)"),
        (dict(grad=True, grad_output=np.nan), ValueError, "grad_output must be finite"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        smk.linear_cross_entropy_full(np.ones((2, 3)), np.ones((4, 3)), [0, 1], **kwargs)


@pytest.mark.parametrize("options", [dict(), dict(z_loss=1e-3, softcap=5.0, label_smoothing=0.1)])
def test_default_chunk_keeps_extra_memory_within_the_share_of_the_logits(rng, monkeypatch, options):
    # The default buffer budget is max(floor, 3% of the N x V logits); with the floor
    # set to 0 the tracemalloc peak beyond the gradients must stay within 3% of the
    # logits plus the O(N) per-row numbers.
    monkeypatch.setattr(_linear_ce, "CHUNK_FLOOR_BYTES", 0)
    monkeypatch.setattr(_linear_ce, "CHUNK_MIN_ROWS", 1)
    n, h, v = 2048, 8, 4096
    hidden, weight, bias, target = problem(rng, n=n, h=h, v=v)
    p = _linear_ce._prepare(hidden, weight, target, bias, None, None, 0.0, "mean", None,
                            z_loss=options.get("z_loss", 0.0), softcap=options.get("softcap"))
    assert 16 <= p.chunk < 100  # 3% of 64 MiB is ~61 rows of one buffer
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        loss, grads = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias, **options)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    extra = peak - sum(g.nbytes for g in grads)
    logits_bytes = n * v * 8
    assert extra <= 0.03 * logits_bytes + 64 * n * 8, (extra, 0.03 * logits_bytes)


def test_chunk_rule_from_the_shape(monkeypatch):
    mib = 2**20
    # small V: the 32 MiB floor; 4096 x 16384 float32 -> ~508 rows, evened to 456
    c = _linear_ce._chunk_rows(4096, 16384, 1024, 4, 1, None)
    assert c * 16384 * 4 <= 32 * mib and c == 456
    # large logits: 3% of 8192 x 262144 float32 (8 GiB) = 245.8 MiB, raised to the
    # 256-row minimum (8192 / 256 = 32 even chunks)
    assert _linear_ce._chunk_rows(8192, 262144, 2048, 4, 1, None) == 256
    # where the memory bound allows fewer rows the minimum applies: 1024 x 262144
    # float32 (32 MiB is 32 rows) and two buffers at 4096 x 32768 (~126 rows)
    assert _linear_ce._chunk_rows(1024, 262144, 512, 4, 1, None) == 256
    assert _linear_ce._chunk_rows(4096, 32768, 1024, 4, 2, None) == 256
    # without the minimum: the memory bound alone (the old rule)
    monkeypatch.setattr(_linear_ce, "CHUNK_MIN_ROWS", 1)
    assert _linear_ce._chunk_rows(1024, 262144, 512, 4, 1, None) == 31  # 32 MiB / (1 MiB + H + 64)
    assert _linear_ce._chunk_rows(4096, 32768, 1024, 4, 2, None) < 130
    # whole batch when it fits; an explicit chunk_size wins
    assert _linear_ce._chunk_rows(100, 1000, 10, 8, 1, None) == 100
    assert _linear_ce._chunk_rows(100, 1000, 10, 8, 1, 7) == 7


def _benchmark_module():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "linear_ce.py"
    spec = importlib.util.spec_from_file_location("linear_ce_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_a_sub_grid_within_a_budget(capsys):
    # the benchmark's plumbing at toy sizes (its numbers are not asserted: no timed tests)
    bench = _benchmark_module()
    assert bench.main(["--n", "64,32", "--h", "8", "--v", "300", "--rounds", "1", "--no-torch",
                       "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| N, H, V | GEMMs alone | fused | unfused | torch |")
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| 64, 8, 300", "| 32, 8, 300"]
    assert all("% of the logits" in r and "n/a" in r for r in rows[1:])
    # a tiny budget runs the cheapest point and names the ones it left out
    assert bench.main(["--n", "64,32", "--h", "8", "--v", "300", "--rounds", "1", "--no-torch",
                       "--threads", "1", "--budget", "1e-9"]) == 0
    out = capsys.readouterr().out
    assert "| 32, 8, 300 |" in out and "# not run: N=64 H=8 V=300" in out
    with pytest.raises(SystemExit):
        bench.main(["--v", "0"])


def test_benchmark_traced_last_round_and_scipy_gemms(capsys):
    bench = _benchmark_module()
    assert bench.main(["--points", "64,8,300", "--rounds", "2", "--no-torch", "--threads", "1",
                       "--gemms", "scipy", "--traced-last"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64, 8, 300")]
    assert len(row) == 1 and "MiB = " in row[0]
    # the memory measured inside the timed round is the same as in a separate call
    import softmaxkit

    r = bench.measure(64, 8, 3000, rounds=1, dtype=np.float64, smk=softmaxkit, torch=None,
                      skip={"gemms_numpy"}, traced_last=True, log=lambda *a, **k: None)
    s = bench.measure(64, 8, 3000, rounds=1, dtype=np.float64, smk=softmaxkit, torch=None,
                      log=lambda *a, **k: None)
    assert "gemms_numpy" not in r and "gemms_numpy" in s
    assert r["unfused_extra_MiB"] == pytest.approx(s["unfused_extra_MiB"], rel=0.05)
    assert r["fused_extra_MiB"] == pytest.approx(s["fused_extra_MiB"], rel=0.05)
    # a variant left out for memory reads "does not fit", one never available "n/a"
    # where the logits do not fit twice, the GEMMs alone run over row blocks: the same
    # products, grad_weight accumulated
    bench.BLOCK_ROWS = 100
    hidden, weight, target = bench._problem(250, 8, 300, np.float64)
    fns, (z, gh, gw) = bench._variants(hidden, weight, target, softmaxkit, None, None, True)
    assert set(fns) == {"gemms_scipy", "fused"}
    fns["gemms_scipy"]()
    logits = hidden @ weight.T
    np.testing.assert_allclose(gh, logits @ weight, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, logits.T @ hidden, rtol=1e-12, atol=1e-12)
    no_unfused = {k: v for k, v in r.items() if k != "unfused"}
    text = bench._fmt_row({**no_unfused, "skipped": ("unfused",), "blocked": True})
    assert "does not fit" in text and "n/a" in text
    assert "not run" in bench._fmt_row({**no_unfused, "skipped": ("unfused",)})


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_both_grad_hidden_layouts_and_temperature_as_alpha(dtype, tol):
    # chunks below and above GH_BLOCK_ROWS take the two layouts of grad_hidden's product
    rng = np.random.default_rng(11)
    n = _linear_ce.GH_BLOCK_ROWS + 40
    hidden, weight, bias, target = problem(rng, n=n, h=5, v=9, dtype=dtype)
    want = unfused(hidden / 0.5, weight, target, bias / 0.5, label_smoothing=0.1)
    for chunk in (n, 100):
        got = smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias,
                                                label_smoothing=0.1, temperature=0.5,
                                                chunk_size=chunk)
        # z = (h W^T + b) / T = h' W^T + b' with h' = h / T, b' = b / T: the chain rule
        # gives d/dh = (d/dh') / T, d/db = (d/db') / T, d/dW unchanged
        ref_loss, (rh, rw, rb) = want
        assert_same(got, (ref_loss, (rh / 0.5, rw, rb / 0.5)), rtol=tol, atol=tol * 0.1)
