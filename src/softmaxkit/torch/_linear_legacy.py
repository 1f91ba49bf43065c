"""``linear_cross_entropy`` with :func:`torch.nn.functional.linear_cross_entropy`'s
signature, on the fused linear head's custom operators.

The drop-in face of :mod:`._linear`: torch's argument names and defaults mapped onto
its options (no z-loss, softcap or temperature here), torch's function called for
what the kernels do not take. Being the same operators, it has the same autograd:
one pass for a reduced loss, a recomputing pass for ``reduction="none"``, an exact
double backward, and ``torch.compile(fullgraph=True)`` support.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _linear

__all__ = ["linear_cross_entropy"]

_KERNEL_DTYPES = (torch.float32, torch.float64)


def _on_kernels(*tensors: torch.Tensor | None) -> bool:
    """True when every given tensor is a plain strided CPU tensor softmaxkit can read
    (real dtypes only reach here, so no conjugate bit; a negative bit is resolved by
    the operator's NumPy view)."""
    return all(t is None or (t.device.type == "cpu" and t.layout == torch.strided)
               for t in tensors)


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
    without ``options``. Differentiable twice (``create_graph=True``: the backward is
    then recomputed in torch operations, see :mod:`softmaxkit.torch._linear`).

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
    opts = _linear._Opts(
        -100 if ignore_index is None else int(ignore_index), float(label_smoothing), reduction,
        0.0, None, 1.0, (), getattr(options, "batch_chunk_size", None),
    )
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    loss = _linear._apply(input, linear_weight, target, linear_bias, weight, opts).loss
    return loss.squeeze(0) if unbatched and reduction == "none" else loss
