"""Today's ``linear_cross_entropy`` (moved here unchanged from ``softmaxkit/torch.py``).

A ``torch.autograd.Function`` over :mod:`softmaxkit._linear_ce`'s chunked pass. Another
change replaces it with the custom-op version (``softmaxkit._torch_linear``); until
then it keeps working as before, once-differentiable.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .. import _linear_ce

__all__ = ["linear_cross_entropy"]

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
