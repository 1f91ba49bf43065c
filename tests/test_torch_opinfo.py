"""PyTorch's own OpInfo sample inputs (torch.testing._internal.common_methods_invocations)
for the functions softmaxkit.torch replaces, run against ours: every CPU
float32/float64/bfloat16 sample either runs on softmaxkit's kernels and matches torch
(value and gradient with a random upstream gradient; bfloat16 on the 16-bit kernels:
no farther from the float64 result than torch's bfloat16 one, plus an ulp), or is
passed to torch. The counts
are printed (pytest -s)."""
import collections

import pytest

torch = pytest.importorskip("torch")
smt = pytest.importorskip("softmaxkit.torch")
common = pytest.importorskip("torch.testing._internal.common_methods_invocations")

from softmaxkit.torch import _ops  # noqa: E402

OURS = {
    "nn.functional.cross_entropy": smt.cross_entropy,
    "nn.functional.nll_loss": smt.nll_loss,
    "nn.functional.binary_cross_entropy_with_logits": smt.binary_cross_entropy_with_logits,
    "nn.functional.kl_div": smt.kl_div,
    # the OpInfos of torch.softmax / torch.log_softmax (dtype may come positionally)
    "softmax": lambda x, dim, dtype=None: smt.softmax(x, dim, dtype=dtype),
    "log_softmax": lambda x, dim, dtype=None: smt.log_softmax(x, dim, dtype=dtype),
    "nn.functional.softmax": None,  # filled below when torch has this OpInfo
    "nn.functional.log_softmax": None,
}
OURS["nn.functional.softmax"] = smt.softmax
OURS["nn.functional.log_softmax"] = smt.log_softmax
SEAMS = ["_np_ce_rows", "_np_nll_rows", "_np_bce_with_logits", "_np_kl_div", "_np_softmax"]
DTYPES = [torch.float32, torch.float64, torch.bfloat16]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _opinfos():
    return [op for op in common.op_db if op.name in OURS]


def _with_constant_targets(samples):
    """Each sample as given, and again with its tensor arguments (targets, weights)
    detached when some require grad: torch's samples make float targets require grad,
    which sends them to torch; the detached copy runs our kernels on the same data."""
    for sample in samples:
        yield sample, ""
        if any(isinstance(a, torch.Tensor) and a.requires_grad for a in sample.args):
            args = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in sample.args)
            kwargs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in sample.kwargs.items()}
            yield common.SampleInput(sample.input, args=args, kwargs=kwargs), " (targets detached)"


def _wide(a):
    """Floating tensors (in tuples and dicts too) in float64, detached."""
    if isinstance(a, torch.Tensor):
        return a.detach().double() if a.is_floating_point() else a
    if isinstance(a, tuple):
        return tuple(_wide(v) for v in a)
    if isinstance(a, dict):
        return {k: _wide(v) for k, v in a.items()}
    return a


def _no_worse(ours, theirs, exact, where):
    """A bfloat16 result from softmaxkit's 16-bit kernels (float32 inside, rounded
    once) against torch's bfloat16 one: each element no farther from the float64
    result than torch's, plus one bfloat16 ulp (2**-7 relative) and 2**-8 of the
    largest magnitude (the gradients cancel: both round differently rounded inputs)."""
    e = exact.double()
    err_ours, err_theirs = (ours.double() - e).abs(), (theirs.double() - e).abs()
    scale = float(e.abs().max()) if e.numel() else 0.0
    bad = ~(err_ours <= err_theirs + 2.0**-7 * e.abs() + 2.0**-8 * scale) & ~(e.isnan() & ours.isnan())
    assert not bad.any(), (where, ours[bad], theirs[bad], e[bad])


def test_opinfo_samples_match_or_pass_through(monkeypatch):
    kernel_calls = [0]
    for name in SEAMS:
        real = getattr(_ops, name)

        def spy(*args, _real=real, **kwargs):
            kernel_calls[0] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(_ops, name, spy)
    ops = _opinfos()
    assert {op.name for op in ops} >= {"nn.functional.cross_entropy", "nn.functional.nll_loss",
                                       "nn.functional.binary_cross_entropy_with_logits",
                                       "nn.functional.kl_div", "softmax", "log_softmax"}
    counts = collections.Counter()
    gen = torch.Generator().manual_seed(0)
    for op in ops:
        ours = OURS[op.name]
        label = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
        for dtype in DTYPES:
            if dtype not in op.supported_dtypes("cpu"):
                continue
            for sample, variant in _with_constant_targets(op.sample_inputs("cpu", dtype, requires_grad=True)):
                x, args, kwargs = sample.input, sample.args, sample.kwargs
                before = kernel_calls[0]
                out = ours(x, *args, **kwargs)
                route = "kernel" if kernel_calls[0] > before else "torch"
                ref = op.op(x, *args, **kwargs)
                where = f"{label} {dtype} {sample}"
                assert out.shape == ref.shape and out.dtype == ref.dtype, where
                half = route == "kernel" and dtype == torch.bfloat16
                if half:  # two different 16-bit roundings: ours no worse than torch's
                    exact = op.op(_wide(x), *_wide(args), **_wide(kwargs))
                    _no_worse(out, ref, exact, where)
                else:
                    torch.testing.assert_close(out, ref, equal_nan=True, msg=lambda m: f"{where}: {m}")
                if ref.requires_grad and x.requires_grad:
                    w = torch.randn(ref.shape, generator=gen, dtype=torch.float64).to(ref.dtype)
                    (g_ours,) = torch.autograd.grad(out, x, w, allow_unused=True)
                    (g_ref,) = torch.autograd.grad(ref, x, w, allow_unused=True)
                    if half:
                        xw = _wide(x).detach().requires_grad_()
                        (g_exact,) = torch.autograd.grad(op.op(xw, *_wide(args), **_wide(kwargs)), xw,
                                                         w.double())
                        _no_worse(g_ours, g_ref, g_exact, where + " (gradient)")
                    else:
                        torch.testing.assert_close(g_ours, g_ref, equal_nan=True,
                                                   msg=lambda m: f"{where} (gradient): {m}")
                counts[(label + variant, str(dtype).replace("torch.", ""), route)] += 1
    print("\nOpInfo samples (op, dtype, route): count")
    for key in sorted(counts):
        print("  ", *key, counts[key])
    total = collections.Counter()
    for (_, _, route), n in counts.items():
        total[route] += n
    print("   total:", dict(total))
    assert total["kernel"] > 0
