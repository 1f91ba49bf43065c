"""PyTorch interop: drop-in ``cross_entropy`` and ``linear_cross_entropy`` on softmaxkit's
C kernels.

``softmaxkit.torch.cross_entropy`` and ``softmaxkit.torch.linear_cross_entropy`` take
exactly the arguments of :func:`torch.nn.functional.cross_entropy` and
:func:`torch.nn.functional.linear_cross_entropy` (class dimension 1,
``ignore_index=-100``, ...) and return the same values and gradients. They are
:class:`torch.autograd.Function`\\ s: on CPU float32/float64 tensors the forward pass
runs softmaxkit's fused kernels on NumPy views of the tensors' memory (no copy for
contiguous tensors) and computes the gradient in the same pass; ``backward`` only
scales it by the incoming gradient. Anything else (other devices, bfloat16/float16,
a target or class weight that itself requires grad, shapes torch supports and we do
not) is passed to torch's own function, so the call always works.

This module imports torch; ``import softmaxkit`` never does (torch is the optional
``softmaxkit[torch]`` dependency). Second derivatives are not supported on the fast
path (``backward`` is once-differentiable).

Examples
--------
>>> import torch
>>> import softmaxkit.torch as smt
>>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
>>> target = torch.tensor([0, 1])
>>> loss = smt.cross_entropy(logits, target)
>>> loss.backward()
>>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, target))
True
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import _linear_ce, _losses

__all__ = ["cross_entropy", "linear_cross_entropy"]

_KERNEL_DTYPES = (torch.float32, torch.float64)


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    """A NumPy view of a CPU tensor's memory (no copy; strides kept)."""
    return None if t is None else t.detach().numpy()


def _tensor(a) -> torch.Tensor:
    """A NumPy result as a tensor sharing its memory (0-d for scalars)."""
    return torch.from_numpy(np.asarray(a))


def _on_kernels(*tensors: torch.Tensor | None) -> bool:
    """True when every given tensor is a plain strided CPU tensor softmaxkit can read."""
    return all(
        t is None or (t.device.type == "cpu" and t.layout == torch.strided and not t.is_conj())
        for t in tensors
    )


# ------------------------------------------------------------------ cross_entropy


class _CEOptions(NamedTuple):
    soft: bool
    ignore_index: int
    reduction: str
    label_smoothing: float
    want_grad: bool


class _CrossEntropy(torch.autograd.Function):
    """Cross-entropy of (N, C, ...) logits; forward forms the gradient, backward scales it."""

    @staticmethod
    def forward(ctx, input, target, weight, opts: _CEOptions):
        kw = dict(axis=1, weight=_numpy(weight), label_smoothing=opts.label_smoothing,
                  reduction=opts.reduction)
        if not opts.soft:
            kw["ignore_index"] = opts.ignore_index
        x, t = _numpy(input), _numpy(target)
        ctx.reduction = opts.reduction
        if opts.want_grad:
            # The fused kernel gives d(reduced loss)/d(input) (for "none": of the sum of
            # the per-row losses) in the same pass as the loss; keep it for backward.
            loss, grad = _losses.cross_entropy_and_grad(x, t, **kw)
            ctx.save_for_backward(torch.from_numpy(grad))
        else:
            loss = _losses.cross_entropy(x, t, **kw)
        return _tensor(loss)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        if ctx.reduction == "none":
            # Row i's loss depends on row i only, so its gradient row just scales.
            grad_output = grad_output.unsqueeze(1)
        return grad * grad_output, None, None, None


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    r"""Drop-in :func:`torch.nn.functional.cross_entropy` on softmaxkit's fused kernel.

    Same signature, defaults and results: ``input`` is (C,), (N, C) or
    (N, C, d1, ..., dK) logits with the classes in dimension 1; ``target`` holds class
    indices (int64, ``input``'s shape without dimension 1) or class probabilities
    (``input``'s shape and dtype).

    .. math:: \ell_n = \operatorname{logsumexp}(x_n) - x_{n, y_n}

    with PyTorch's conventions for ``weight``, ``ignore_index`` (index targets only),
    ``label_smoothing`` and ``reduction`` ("mean": weighted mean over the counted
    rows; an all-ignored batch is NaN with a zero gradient). ``size_average`` and
    ``reduce`` are PyTorch's deprecated aliases of ``reduction``.

    Runs on the C kernel for CPU float32/float64 tensors, else calls torch's
    function. Out-of-range class indices raise ValueError (torch raises its own
    error).

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.tensor([[0.0, 120.0]])
    >>> float(smt.cross_entropy(x, torch.tensor([0])))  # exp(120) overflows float32
    120.0
    """
    if size_average is not None or reduce is not None:
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
    soft = target.is_floating_point()
    fast = (
        input.dtype in _KERNEL_DTYPES
        and input.dim() >= 1
        and _on_kernels(input, target, weight)
        and (target.dtype == input.dtype if soft else target.dtype == torch.int64)
        and not target.requires_grad
        and (weight is None or (not weight.requires_grad and weight.dim() == 1))
        and reduction in ("none", "mean", "sum")
        and not torch.jit.is_tracing()
    )
    if not fast:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    unbatched = input.dim() == 1
    if unbatched:  # (C,): a batch of one, class dimension 1
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    opts = _CEOptions(soft, int(ignore_index), reduction, float(label_smoothing),
                      torch.is_grad_enabled() and input.requires_grad)
    loss = _CrossEntropy.apply(input, target, weight, opts)
    return loss.squeeze(0) if unbatched and reduction == "none" else loss


# ----------------------------------------------------------- linear_cross_entropy


class _LCEOptions(NamedTuple):
    ignore_index: int
    reduction: str
    label_smoothing: float
    chunk_size: int | None
    need: tuple[bool, bool, bool]  # gradients wanted for input, linear_weight, linear_bias


class _LinearCrossEntropy(torch.autograd.Function):
    """Chunked linear + cross-entropy of (N, H) inputs; see softmaxkit.linear_cross_entropy."""

    @staticmethod
    def forward(ctx, input, linear_weight, linear_bias, target, weight, opts: _LCEOptions):
        p = _linear_ce._prepare(
            _numpy(input), _numpy(linear_weight), _numpy(target), _numpy(linear_bias),
            _numpy(weight), opts.ignore_index, opts.label_smoothing, opts.reduction,
            opts.chunk_size,
        )
        ctx.opts = opts
        ctx.recompute = False
        if any(opts.need) and opts.reduction != "none":
            # One pass gives the loss and every gradient; backward scales them.
            rows, grads = _linear_ce._run(p, _linear_ce._grad_scale(p, opts.reduction), opts.need)
            ctx.save_for_backward(*(None if g is None else torch.from_numpy(g) for g in grads))
        else:
            # "none": the gradient depends on the per-row incoming gradient, so backward
            # recomputes the chunks with it (as torch's chunked path does).
            rows, _ = _linear_ce._run(p)
            if any(opts.need):
                ctx.recompute = True
                ctx.save_for_backward(input, linear_weight, linear_bias, target, weight)
        return _tensor(_linear_ce._reduce(p, rows, opts.reduction))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        opts = ctx.opts
        if ctx.recompute:
            input, linear_weight, linear_bias, target, weight = ctx.saved_tensors
            p = _linear_ce._prepare(
                _numpy(input), _numpy(linear_weight), _numpy(target), _numpy(linear_bias),
                _numpy(weight), opts.ignore_index, opts.label_smoothing, "none",
                opts.chunk_size,
            )
            scale = _numpy(grad_output).astype(np.float64)
            _, grads = _linear_ce._run(p, scale, opts.need)
            grads = [None if g is None else torch.from_numpy(g) for g in grads]
        else:
            grads = [None if g is None else g * grad_output for g in ctx.saved_tensors]
        return grads[0], grads[1], grads[2], None, None, None


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0,
                         options=None):
    r"""Drop-in :func:`torch.nn.functional.linear_cross_entropy`, chunked on softmaxkit.

    ``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)`` without
    the (N, V) logits: input (N, H) or (H,), linear_weight (V, H), int64 class indices
    (N,) or (); ``ignore_index=None`` means -100 as in torch. The loss and the
    gradients of ``input``, ``linear_weight`` and ``linear_bias`` come from
    :func:`softmaxkit.linear_cross_entropy_and_grad`'s chunked pass (only the gradients
    autograd asks for are formed), so extra memory is one (chunk, V) block, with or
    without ``options``.

    ``options`` (a ``torch.nn.LinearCrossEntropyOptions``) is accepted for
    compatibility: its ``batch_chunk_size``, when set, is the chunk size; its other
    fields are torch-specific and ignored. Calls torch's function for other devices
    and dtypes, class-probability targets, K-dimensional weights, and a class
    ``weight`` that requires grad.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> h = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    >>> w = torch.tensor([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]], requires_grad=True)
    >>> t = torch.tensor([0, 2])
    >>> loss = smt.linear_cross_entropy(h, w, t)
    >>> loss.backward()
    >>> torch.allclose(loss, torch.nn.functional.cross_entropy(h @ w.T, t))
    True
    """
    fast = (
        input.dtype in _KERNEL_DTYPES
        and linear_weight.dtype == input.dtype
        and (linear_bias is None or (linear_bias.dtype == input.dtype and linear_bias.dim() == 1))
        and input.dim() in (1, 2)
        and linear_weight.dim() == 2
        and target.dtype == torch.int64
        and target.shape == input.shape[:-1]
        and _on_kernels(input, linear_weight, linear_bias, target, weight)
        and (weight is None or (not weight.requires_grad and weight.dim() == 1))
        and reduction in ("none", "mean", "sum")
        and not torch.jit.is_tracing()
    )
    if not fast:
        return F.linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=weight,
            reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
            options=options,
        )
    grad_on = torch.is_grad_enabled()
    need = (
        grad_on and input.requires_grad,
        grad_on and linear_weight.requires_grad,
        grad_on and linear_bias is not None and linear_bias.requires_grad,
    )
    opts = _LCEOptions(
        -100 if ignore_index is None else int(ignore_index), reduction, float(label_smoothing),
        getattr(options, "batch_chunk_size", None), need,
    )
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    loss = _LinearCrossEntropy.apply(input, linear_weight, linear_bias, target, weight, opts)
    return loss.squeeze(0) if unbatched and reduction == "none" else loss
