r"""Softmax's relatives in PyTorch: softplus, logsigmoid, the multi-class hinge, focal
losses, PolyLoss, Gumbel-softmax, sparsemax and entmax (issue 12).

Where torch (or torchvision) has the function, ours has its exact signature and
defaults: :func:`softplus`, :func:`logsigmoid`, :func:`multi_margin_loss`,
:func:`gumbel_softmax` (``torch.nn.functional``) and :func:`sigmoid_focal_loss`
(``torchvision.ops``), with the modules :class:`Softplus`, :class:`LogSigmoid` and
:class:`MultiMarginLoss`. Torch has no function for :func:`focal_loss` (multi-class),
:func:`poly1_cross_entropy`, :func:`sparsemax`, :func:`entmax15` or
:func:`entmax_bisect`; theirs follow ``cross_entropy``'s conventions (classes in
dimension 1 for the losses, ``ignore_index=-100``) and the ``entmax`` package's
names.

Design, as in :mod:`._ops`:

a) On CPU float32/float64 tensors each function runs softmaxkit's NumPy/C code as a
   ``torch.library.custom_op`` (``torch.ops.softmaxkit.*``) with a fake
   implementation, so ``torch.compile(fullgraph=True)`` traces it. focal_loss and
   poly1_cross_entropy are functions of the row's cross-entropy, so they compose
   over _ops' fused ``cross_entropy_rows`` op instead of having ops of their own;
   gumbel_softmax's softmax is ``softmaxkit::softmax``.
b) Nothing is widened: float32 tensors run the float32 kernels. Per-row losses (the
   hinge) come back in float64, per-element ones (softplus, logsigmoid, the sigmoid
   focal loss) in the input's dtype, and are reduced here in torch ops.
c) Every registered backward has the formula in torch ops, so it is differentiable
   again: ``create_graph=True``, gradient penalties and gradgradcheck see exact second
   derivatives (entmax's backward is a function of the output, whose own grad_fn
   carries the chain rule). A plain backward (grad mode off inside it, the usual
   case) runs the formula's C kernel instead, as a custom op of its own
   (``softmaxkit::softplus_backward``, ``log_sigmoid_backward``,
   ``sigmoid_focal_loss_backward``, ``multi_margin_rows_backward``): one pass.
d) Everything else (other devices, bfloat16/float16, targets that require grad,
   options the kernels do not take, torch.func transforms) goes to torch's own
   function or to a composite of torch ops with the same formula.

The few ``_np_*`` functions are the seam to softmaxkit's core.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _activation_grads, _entmax, _kernels, _softmax
from .._validation import check_alpha, check_ignore_index, check_reduction, hard_target
from . import _functional as _f
from ._ops import _from_np, _np

__all__ = [
    "softplus",
    "logsigmoid",
    "multi_margin_loss",
    "sigmoid_focal_loss",
    "gumbel_softmax",
    "focal_loss",
    "poly1_cross_entropy",
    "sparsemax",
    "entmax15",
    "entmax_bisect",
    "Softplus",
    "LogSigmoid",
    "MultiMarginLoss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _on_kernels(*tensors: Optional[Tensor]) -> bool:
    """CPU float32/float64 strided tensors outside jit tracing and functorch transforms
    (``_functional._kernel_float``), whatever other dtypes that helper may learn."""
    x = tensors[0]
    return (x.dtype in (torch.float32, torch.float64) and _f._kernel_float(x)
            and _f._cpu(*tensors))


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _reduce_losses(loss: Tensor, reduction: str, denom, dtype: torch.dtype) -> Tensor:
    """Reduce float64 per-row losses in torch ops ("mean": ``sum / denom``)."""
    if reduction == "none":
        return loss.to(dtype)
    total = loss.sum()
    if reduction == "mean":
        total = total / denom
    return total.to(dtype)


# ------------------------------------------------------------------ the seam


def _np_softplus(x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    return np.asarray(_activation_grads.softplus_scaled(x, beta=beta, threshold=threshold))


def _np_softplus_backward(x: np.ndarray, g: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    return np.asarray(_activation_grads.softplus_backward(x, g, beta=beta, threshold=threshold))


def _np_log_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(_softmax.log_sigmoid(x))


def _np_log_sigmoid_backward(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.asarray(_activation_grads.log_sigmoid_backward(x, g))


def _np_margin_rows(x: np.ndarray, t: np.ndarray, p: int, margin: float) -> np.ndarray:
    """The unweighted multi-class hinge per row of (n, C) x in its dtype, float64 (n,),
    one C pass; a class index outside [0, C) raises ValueError naming it."""
    labels = hard_target(t, x.shape[1], (x.shape[0],), None)
    return _kernels.multi_margin_rows(np.ascontiguousarray(x), labels, margin=margin, p=p)


def _np_margin_backward(x: np.ndarray, t: np.ndarray, g: np.ndarray, p: int, margin: float) -> np.ndarray:
    """``g[i] * d row_i / dx`` of :func:`_np_margin_rows`, x's dtype (labels checked forward)."""
    return _kernels.multi_margin_backward_rows(np.ascontiguousarray(x), np.ascontiguousarray(t, dtype=np.int64),
                                               np.ascontiguousarray(g, dtype=np.float64), margin=margin, p=p)


def _np_sigmoid_focal(x: np.ndarray, t: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    """torchvision's sigmoid focal loss per element in x's dtype, one C pass (x and t
    of one float dtype, checked by the caller)."""
    xf, tf = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(t).reshape(-1)
    out = np.empty_like(xf)
    _kernels.sigmoid_focal_flat(xf, tf, out, alpha=alpha, gamma=gamma)
    return out.reshape(x.shape)


def _np_sigmoid_focal_backward(x: np.ndarray, t: np.ndarray, g: np.ndarray, alpha: float,
                               gamma: float) -> np.ndarray:
    """``g * d loss / dx`` of :func:`_np_sigmoid_focal`, one C pass."""
    xf, tf = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(t).reshape(-1)
    gf = np.ascontiguousarray(g, dtype=x.dtype).reshape(-1)
    out = np.empty_like(xf)
    _kernels.sigmoid_focal_backward_flat(xf, tf, gf, out, alpha=alpha, gamma=gamma)
    return out.reshape(x.shape)


def _np_entmax(x: np.ndarray, alpha: float, dim: int) -> np.ndarray:
    return np.ascontiguousarray(_entmax.entmax_bisect(x, alpha=alpha, axis=dim))


# ------------------------------------------------------------------ softplus, logsigmoid


@torch.library.custom_op("softmaxkit::softplus", mutates_args=(), device_types="cpu")
def _softplus_op(input: Tensor, beta: float, threshold: float) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, ``x`` where ``beta x > threshold`` (input's dtype)."""
    return _from_np(_np_softplus(_np(input), beta, threshold))


@_softplus_op.register_fake
def _(input, beta, threshold):
    return input.new_empty(input.shape)


def _softplus_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.options = inputs[1:]


@torch.library.custom_op("softmaxkit::softplus_backward", mutates_args=(), device_types="cpu")
def _softplus_backward_op(grad_output: Tensor, input: Tensor, beta: float, threshold: float) -> Tensor:
    """``grad_output * sigmoid(beta x)``, ``grad_output`` past the threshold (one C pass)."""
    return _from_np(_np_softplus_backward(_np(input), _np(grad_output), beta, threshold))


@_softplus_backward_op.register_fake
def _(grad_output, input, beta, threshold):
    return input.new_empty(input.shape)


def _softplus_bwd(ctx, g):
    """d/dx = sigmoid(beta x), 1 past the threshold (torch's softplus_backward): the
    kernel op, or under ``create_graph`` (grad mode on in the backward) the same
    formula in torch ops, so that it is differentiable again."""
    (x,) = ctx.saved_tensors
    beta, threshold = ctx.options
    if not torch.is_grad_enabled():
        return _softplus_backward_op(g, x, beta, threshold), None, None
    bx = x * beta
    return g * torch.where(bx > threshold, torch.ones_like(bx), torch.sigmoid(bx)), None, None


_softplus_op.register_autograd(_softplus_bwd, setup_context=_softplus_setup)


@torch.library.custom_op("softmaxkit::log_sigmoid", mutates_args=(), device_types="cpu")
def _log_sigmoid_op(input: Tensor) -> Tensor:
    """``log sigmoid(x) = -softplus(-x)`` (input's dtype), finite for every finite x."""
    return _from_np(_np_log_sigmoid(_np(input)))


@_log_sigmoid_op.register_fake
def _(input):
    return input.new_empty(input.shape)


def _log_sigmoid_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


@torch.library.custom_op("softmaxkit::log_sigmoid_backward", mutates_args=(), device_types="cpu")
def _log_sigmoid_backward_op(grad_output: Tensor, input: Tensor) -> Tensor:
    """``grad_output * sigmoid(-x)`` (one C pass)."""
    return _from_np(_np_log_sigmoid_backward(_np(input), _np(grad_output)))


@_log_sigmoid_backward_op.register_fake
def _(grad_output, input):
    return input.new_empty(input.shape)


def _log_sigmoid_bwd(ctx, g):
    """d/dx = sigmoid(-x): the kernel op, or the torch-ops formula under create_graph."""
    (x,) = ctx.saved_tensors
    if not torch.is_grad_enabled():
        return _log_sigmoid_backward_op(g, x)
    return g * torch.sigmoid(-x)


_log_sigmoid_op.register_autograd(_log_sigmoid_bwd, setup_context=_log_sigmoid_setup)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.softplus`.

    .. math:: \operatorname{softplus}(x) = \frac{1}{\beta}\log(1 + e^{\beta x}),
              \text{ and } x \text{ where } \beta x > \text{threshold}

    elementwise. CPU float32/float64 tensors with a finite ``beta > 0`` run
    ``torch.ops.softmaxkit.softplus`` (softmaxkit's vectorised softplus kernel in the
    input's dtype, ``beta x`` rounded to it as torch does; its backward is one kernel
    pass too); anything else calls torch's function.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> [round(v, 4) for v in smt.softplus(torch.tensor([-1.0, 0.0, 30.0]), beta=2.0).tolist()]
    [0.0635, 0.3466, 30.0]
    """
    fast = (_on_kernels(input) and _real(beta) and beta > 0
            and isinstance(threshold, numbers.Real) and not math.isnan(threshold))
    if not fast:
        return F.softplus(input, beta, threshold)
    return _softplus_op(input, float(beta), float(threshold))


def logsigmoid(input: Tensor) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.logsigmoid`: :math:`\log \sigma(x) = -\operatorname{softplus}(-x)`.

    CPU float32/float64 tensors run ``torch.ops.softmaxkit.log_sigmoid`` (one
    vectorised kernel pass in the input's dtype, forward and backward); anything
    else calls torch's function.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.tensor([-800.0, 0.0])  # log(sigmoid(-800)) would be log(0) in float32
    >>> [round(v, 4) for v in smt.logsigmoid(x).tolist()]
    [-800.0, -0.6931]
    """
    if not _on_kernels(input):
        return F.logsigmoid(input)
    return _log_sigmoid_op(input)


# ------------------------------------------------------------------ multi-class hinge


@torch.library.custom_op("softmaxkit::multi_margin_rows", mutates_args=(), device_types="cpu")
def _multi_margin_rows(input: Tensor, target: Tensor, p: int, margin: float) -> Tensor:
    """Unweighted per-row hinge ``sum_{i != y} max(0, margin - x_y + x_i)^p / C``, float64 (n,)."""
    return _from_np(_np_margin_rows(_np(input), _np(target), p, margin))


@_multi_margin_rows.register_fake
def _(input, target, p, margin):
    return input.new_empty((input.shape[0],), dtype=torch.float64)


@torch.library.custom_op("softmaxkit::multi_margin_rows_backward", mutates_args=(), device_types="cpu")
def _multi_margin_rows_backward(grad_output: Tensor, input: Tensor, target: Tensor, p: int,
                                margin: float) -> Tensor:
    """``grad_output[i] * d row_i / dx`` (grad_output float64 (n,)), input's dtype (one C pass)."""
    return _from_np(_np_margin_backward(_np(input), _np(target), _np(grad_output), p, margin))


@_multi_margin_rows_backward.register_fake
def _(grad_output, input, target, p, margin):
    return input.new_empty(input.shape)


def _onehot(x: Tensor, t: Tensor) -> Tensor:
    return torch.zeros_like(x).scatter(1, t.unsqueeze(1), 1.0)


def _margin_setup(ctx, inputs, output):
    input, target, p, margin = inputs
    ctx.save_for_backward(input, target)
    ctx.options = (p, margin)


def _margin_bwd(ctx, g):
    """d/dx_i = p h_i^(p-1) / C on active hinges (h = margin - x_y + x_i > 0, i != y),
    and x_y gets minus their sum; torch ops in x, so p = 2 has its second derivative."""
    x, t = ctx.saved_tensors
    p, margin = ctx.options
    if not torch.is_grad_enabled():  # a plain backward: the kernel op
        return _multi_margin_rows_backward(g.to(torch.float64), x, t, p, margin), None, None, None
    # create_graph: the same in torch ops, differentiable again
    c = x.shape[1]
    h = margin - x.gather(1, t.unsqueeze(1)) + x
    onehot = _onehot(x, t)
    active = (h > 0) & (onehot == 0)
    d = torch.where(active, h * (2.0 / c) if p == 2 else torch.full_like(h, 1.0 / c), torch.zeros_like(h))
    d = d - onehot * d.sum(1, keepdim=True)
    return g.to(x.dtype).unsqueeze(1) * d, None, None, None


_multi_margin_rows.register_autograd(_margin_bwd, setup_context=_margin_setup)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, size_average: bool | None = None,
                      reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.multi_margin_loss` (the multi-class hinge).

    .. math:: \ell_n = \frac{w_{y_n}}{C} \sum_{i \ne y_n} \max(0, \text{margin} - x_{n,y_n} + x_{n,i})^p

    for (N, C) or (C,) ``input`` and int64 class indices (N,) or (); ``p`` is 1 or 2;
    "mean" divides by N (not by the weights, as torch). CPU float32/float64 inputs
    run ``torch.ops.softmaxkit.multi_margin_rows`` (one C pass over the rows in the
    input's dtype, each row's sum in float64; the backward is one pass too; a NaN
    logit makes its row NaN, where torch's ``max(0, NaN)`` drops it); the class weight multiplies each row in torch ops (any sign, and
    it may require grad). Anything else calls torch's function. A class index outside
    ``[0, C)`` raises ValueError naming it. The gradient at a hinge's kink is 0, as
    torch's.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.tensor([[0.1, 0.2, 0.4, 0.8]], dtype=torch.float64)
    >>> round(float(smt.multi_margin_loss(x, torch.tensor([3]))), 12)  # (0.3 + 0.4 + 0.6) / 4
    0.325
    """
    reduction = _f._legacy(size_average, reduce, reduction)
    c = input.shape[-1] if input.dim() in (1, 2) else 0
    fast = (
        _on_kernels(input, target, weight)
        and reduction in _REDUCTIONS
        and isinstance(p, int) and not isinstance(p, bool) and p in (1, 2)
        and _real(margin)
        and c > 0 and input.numel() > 0
        and target.dtype == torch.int64
        and tuple(target.shape) == tuple(input.shape[:-1])
        and (weight is None or (weight.is_floating_point() and tuple(weight.shape) == (c,)))
    )
    if not fast:
        return F.multi_margin_loss(input, target, p=p, margin=margin, weight=weight,
                                   reduction=reduction)
    x2, t2 = (input.unsqueeze(0), target.reshape(1)) if input.dim() == 1 else (input, target)
    rows = _multi_margin_rows(x2, t2, p, float(margin))
    if weight is not None:
        rows = rows * weight.to(torch.float64)[t2]
    if input.dim() == 1:
        rows = rows.reshape(())
    return _reduce_losses(rows, reduction, rows.numel(), input.dtype)


# ------------------------------------------------------------------ sigmoid focal loss


@torch.library.custom_op("softmaxkit::sigmoid_focal_loss", mutates_args=(), device_types="cpu")
def _sigmoid_focal_op(input: Tensor, target: Tensor, alpha: float, gamma: float) -> Tensor:
    """torchvision's elementwise sigmoid focal loss, input's dtype and shape (one C pass)."""
    return _from_np(_np_sigmoid_focal(_np(input), _np(target), alpha, gamma))


@_sigmoid_focal_op.register_fake
def _(input, target, alpha, gamma):
    return input.new_empty(input.shape)


@torch.library.custom_op("softmaxkit::sigmoid_focal_loss_backward", mutates_args=(), device_types="cpu")
def _sigmoid_focal_backward_op(grad_output: Tensor, input: Tensor, target: Tensor, alpha: float,
                               gamma: float) -> Tensor:
    """``grad_output * d loss / dx`` of the sigmoid focal loss (one C pass, input's dtype)."""
    return _from_np(_np_sigmoid_focal_backward(_np(input), _np(target), _np(grad_output), alpha, gamma))


@_sigmoid_focal_backward_op.register_fake
def _(grad_output, input, target, alpha, gamma):
    return input.new_empty(input.shape)


def _sf_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.options = inputs[2:]


def _sf_bwd(ctx, g):
    """d/dx [a_t ce m^gamma] = a_t [(s - t) m^gamma - gamma ce m^(gamma-1) (2t - 1) s (1 - s)]
    with s = sigmoid(x), ce = softplus(x) - t x, m = 1 - p_t; torch ops, every factor
    from log-sigmoids so nothing cancels; the second term is 0 where m = 0."""
    x, t = ctx.saved_tensors
    alpha, gamma = ctx.options
    if not torch.is_grad_enabled():  # a plain backward: the kernel op
        return _sigmoid_focal_backward_op(g.to(x.dtype), x, t, alpha, gamma), None, None, None
    # create_graph: the same in torch ops, differentiable again
    s, s_neg = torch.sigmoid(x), torch.sigmoid(-x)
    ce = -t * F.logsigmoid(x) - (1 - t) * F.logsigmoid(-x)
    m = t * s_neg + (1 - t) * s
    pos = m > 0
    m_safe = torch.where(pos, m, torch.ones_like(m))
    mg = torch.where(pos, m_safe ** gamma, torch.full_like(m, 0.0 ** gamma))
    dm = torch.where(pos, gamma * ce * m_safe ** (gamma - 1), torch.zeros_like(m)) * (2 * t - 1) * s * s_neg
    d = (s - t) * mg - dm
    if alpha >= 0:
        d = (alpha * t + (1 - alpha) * (1 - t)) * d
    return g.to(x.dtype) * d, None, None, None


_sigmoid_focal_op.register_autograd(_sf_bwd, setup_context=_sf_setup)


def _sigmoid_focal_torch(inputs: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """torchvision 0.28's ``sigmoid_focal_loss`` body, ``reduction="none"`` (torch ops)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> Tensor:
    r"""Drop-in :func:`torchvision.ops.sigmoid_focal_loss` (RetinaNet's binary focal loss).

    .. math:: \ell = \alpha_t (1 - p_t)^\gamma \operatorname{BCE}(x, t),\quad
              p_t = s t + (1 - s)(1 - t),\ s = \sigma(x),\ \alpha_t = \alpha t + (1 - \alpha)(1 - t)

    elementwise (``alpha=-1``: no weighting); "mean" averages over all elements.
    ``alpha`` must be in [0, 1] or -1 (ValueError otherwise, as torchvision).
    CPU float32/float64 tensors with ``gamma >= 0`` and a target that needs no
    gradient run ``torch.ops.softmaxkit.sigmoid_focal_loss`` (one vectorised C pass in
    the input's dtype, forward and backward; ``1 - p_t`` and the cross-entropy formed
    from :math:`\sigma(\pm x)` and :math:`\log\sigma(\pm x)` so large logits do not cancel);
    anything else runs torchvision's formula in torch ops (torchvision itself is not
    needed).

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.tensor([0.0, 40.0], dtype=torch.float64)
    >>> smt.sigmoid_focal_loss(x, torch.tensor([1.0, 0.0], dtype=torch.float64))
    tensor([ 0.0433, 30.0000], dtype=torch.float64)
    """
    if not (isinstance(alpha, numbers.Real) and (0 <= alpha <= 1 or alpha == -1)):
        raise ValueError(f"Invalid alpha value: {alpha}. alpha must be in the range [0,1] or -1 for ignore.")
    check_reduction(reduction, _REDUCTIONS)
    fast = (
        _on_kernels(inputs, targets)
        and _f._constant(targets)
        and _real(gamma) and gamma >= 0
        and targets.shape == inputs.shape and targets.dtype == inputs.dtype
    )
    if fast:
        loss = _sigmoid_focal_op(inputs, targets, float(alpha), float(gamma))
    else:
        loss = _sigmoid_focal_torch(inputs, targets, alpha, gamma)
    return _reduce_losses(loss, reduction, loss.numel(), inputs.dtype)


# ------------------------------------------------------------------ focal loss, PolyLoss
# Both are functions of the row's cross-entropy ce = -log p_y alone, so they compose
# over softmaxkit's fused cross-entropy op (``torch.ops.softmaxkit.cross_entropy_rows``,
# whose backward and double backward are registered in _ops): one C pass forward,
# one fused pass backward, and exact derivatives of every order by the chain rule.


def _focal_from_ce(ce: Tensor, gamma: float) -> Tensor:
    """``(1 - p_y)^gamma ce`` with ``1 - p_y = -expm1(-ce)`` (no cancellation near
    p_y = 1); where ``p_y = 1`` the power is a constant, so no infinite derivative."""
    m = -torch.expm1(-ce)
    pos = m > 0
    m_safe = torch.where(pos, m, torch.ones_like(m))
    return torch.where(pos, m_safe ** gamma, torch.full_like(m, 0.0 ** gamma)) * ce


def _poly1_from_ce(ce: Tensor, epsilon: float) -> Tensor:
    """``ce + epsilon (1 - p_y)``, ``1 - p_y = -expm1(-ce)``."""
    return ce - epsilon * torch.expm1(-ce)


def _class_loss(from_ce, input, target, option, ignore_index, reduction):
    """A multi-class loss that is a function of the per-row cross-entropy: (C,), (N, C)
    or (N, C, d1, ...) logits, int64 class indices; "mean" over the rows not ignored."""
    check_reduction(reduction, _REDUCTIONS)
    if check_ignore_index(ignore_index) is None:  # the custom op's schema takes an int
        raise TypeError("ignore_index must be an int, got None")
    ignore_index = int(ignore_index)
    ok_shape = (input.dim() >= 1 and input.shape[0 if input.dim() == 1 else 1] > 0
                and target.dtype == torch.int64
                and tuple(target.shape) == (() if input.dim() == 1 else (input.shape[0],) + tuple(input.shape[2:])))
    if not ok_shape:
        raise ValueError(f"input of shape {tuple(input.shape)} needs int64 class indices of shape "
                         f"{tuple(input.shape[:1]) + tuple(input.shape[2:]) if input.dim() > 1 else ()}, "
                         f"got {target.dtype} of shape {tuple(target.shape)}")
    x2, t2, batch = _f._as_rows(input, target, soft=False)
    if _on_kernels(input, target) and x2.shape[0] > 0:
        ce = torch.ops.softmaxkit.cross_entropy_rows(x2, t2, None, ignore_index, 0.0)[0]  # float64
    else:  # torch's cross-entropy (0 on ignored rows), in its dtype
        ce = F.cross_entropy(x2, t2, ignore_index=ignore_index, reduction="none")
    rows = from_ce(ce, option)  # ignored rows: ce = 0, so the loss is 0 too
    if reduction == "none":
        return rows.reshape(batch).to(input.dtype)
    return _reduce_losses(rows, reduction, (t2 != ignore_index).sum(), input.dtype)


def focal_loss(input: Tensor, target: Tensor, gamma: float = 2.0, ignore_index: int = -100,
               reduction: str = "mean") -> Tensor:
    r"""Multi-class focal loss (Lin et al. 2017) with ``cross_entropy``'s conventions.

    .. math:: \ell_n = -(1 - p_{n,y_n})^\gamma \log p_{n,y_n},\quad p_n = \operatorname{softmax}(x_n)

    ``input`` is (C,), (N, C) or (N, C, d1, ..., dK) logits (classes in dimension 1),
    ``target`` int64 class indices of the batch shape; ``ignore_index`` rows count for
    nothing and "mean" divides by the counted rows (NaN if none). ``gamma >= 0``
    (0 is cross-entropy). The loss is a function of the row's cross-entropy ``ce =
    -log p_y``: ``(-expm1(-ce))^gamma ce`` (no cancellation near ``p_y = 1``), so CPU
    float32/float64 tensors compose it over softmaxkit's fused cross-entropy op
    ``torch.ops.softmaxkit.cross_entropy_rows`` (float64 rows; its registered
    backward makes every derivative exact), and anything else over torch's
    ``cross_entropy``. A class index outside ``[0, C)`` that is not ``ignore_index``
    raises ValueError on the kernel path.

    Examples
    --------
    >>> import math, torch, softmaxkit.torch as smt
    >>> x = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    >>> math.isclose(float(smt.focal_loss(x, torch.tensor([0]))), 0.25 * math.log(2))
    True
    """
    # plain Python (the core's NumPy checks would break torch.compile's graph here)
    if not (_real(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    return _class_loss(_focal_from_ce, input, target, float(gamma), ignore_index, reduction)


def poly1_cross_entropy(input: Tensor, target: Tensor, epsilon: float = 1.0, ignore_index: int = -100,
                        reduction: str = "mean") -> Tensor:
    r"""PolyLoss, poly-1 form (Leng et al. 2022), with ``cross_entropy``'s conventions.

    .. math:: \ell_n = -\log p_{n,y_n} + \epsilon (1 - p_{n,y_n})

    Shapes, ``ignore_index`` and reductions as :func:`focal_loss`; ``epsilon >= -1``
    (0 is cross-entropy). Computed as ``ce - epsilon expm1(-ce)`` over the per-row
    cross-entropy, routed as :func:`focal_loss`.

    Examples
    --------
    >>> import math, torch, softmaxkit.torch as smt
    >>> x = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    >>> math.isclose(float(smt.poly1_cross_entropy(x, torch.tensor([0]))), math.log(2) + 0.5)
    True
    """
    if not (_real(epsilon) and epsilon >= -1):
        raise ValueError(f"epsilon must be a finite number >= -1, got {epsilon!r}")
    return _class_loss(_poly1_from_ce, input, target, float(epsilon), ignore_index, reduction)


# ------------------------------------------------------------------ Gumbel-softmax


def gumbel_softmax(logits: Tensor, tau: float = 1, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.gumbel_softmax`, its softmax on softmaxkit's op.

    .. math:: y = \operatorname{softmax}((x + g) / \tau),\quad g = -\log E,\ E \sim \operatorname{Exp}(1)

    The noise is torch's, drawn exactly as torch draws it
    (``-empty_like(logits).exponential_().log()`` on torch's default generator), so
    after the same ``torch.manual_seed`` this returns torch's sample (to softmax's
    rounding); the softmax is :func:`softmaxkit.torch.softmax` (the kernel op on CPU
    float32/float64, torch's elsewhere). ``hard=True`` returns the one-hot of the
    argmax with the soft sample's gradient (straight-through). ``eps`` is deprecated
    and unused, as in torch (with its warning).

    Unlike :func:`softmaxkit.gumbel_softmax` (counter-based, keyed by ``seed``), the
    draw depends on torch's generator state.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> _ = torch.manual_seed(0)
    >>> y = smt.gumbel_softmax(torch.tensor([[1.0, 2.0, 3.0]]), tau=0.5, hard=True)
    >>> float(y.sum())
    1.0
    """
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    gumbels = -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_().log()
    gumbels = (logits + gumbels) / tau
    y_soft = _f.softmax(gumbels, dim)
    if hard:
        index = y_soft.max(dim, keepdim=True)[1]
        y_hard = torch.zeros_like(logits, memory_format=torch.legacy_contiguous_format).scatter_(dim, index, 1.0)
        return y_hard - y_soft.detach() + y_soft
    return y_soft


# ------------------------------------------------------------------ sparsemax, entmax


@torch.library.custom_op("softmaxkit::entmax", mutates_args=(), device_types="cpu")
def _entmax_op(input: Tensor, alpha: float, dim: int) -> Tensor:
    """alpha-entmax along ``dim`` (input's dtype; alpha 1 is softmax, 2 sparsemax)."""
    return _from_np(_np_entmax(_np(input), alpha, dim))


@_entmax_op.register_fake
def _(input, alpha, dim):
    return input.new_empty(input.shape)


def _entmax_grad(y: Tensor, g: Tensor, alpha: float, dim: int) -> Tensor:
    """Backward of alpha-entmax from its output: with s = y^(2 - alpha) on the support
    (0 off it), dx = s (g - sum(s g) / sum(s)). Torch ops in y and g: differentiating
    it through y's grad_fn gives the exact second derivative."""
    if alpha == 1.0:
        s = y
    else:
        pos = y > 0
        y_safe = torch.where(pos, y, torch.ones_like(y))
        s = torch.where(pos, y_safe ** (2.0 - alpha), torch.zeros_like(y))
    total = s.sum(dim, keepdim=True)
    total = torch.where(total > 0, total, torch.ones_like(total))  # an all -inf row: y = 0
    return s * (g - (s * g).sum(dim, keepdim=True) / total)


def _entmax_setup(ctx, inputs, output):
    ctx.save_for_backward(output)
    ctx.options = inputs[1:]


def _entmax_bwd(ctx, g):
    (y,) = ctx.saved_tensors
    return _entmax_grad(y, g, *ctx.options), None, None


_entmax_op.register_autograd(_entmax_bwd, setup_context=_entmax_setup)


def _entmax_bisect_torch(x: Tensor, alpha: float, dim: int, n_iter: int = 60) -> Tensor:
    """alpha-entmax (alpha > 1) by bisection on tau in torch ops, any device (the
    ``entmax`` package's algorithm, 60 halvings, then normalised); float32 or wider."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    z = work * (alpha - 1)
    top = z.max(dim, keepdim=True).values
    d = z.shape[dim]
    tau_lo = top - 1.0
    tau_hi = top - (1.0 / d) ** (alpha - 1)
    expo = 1.0 / (alpha - 1)

    def mass(tau):
        return torch.clamp(z - tau, min=0) ** expo

    f_lo = mass(tau_lo).sum(dim, keepdim=True) - 1
    width = tau_hi - tau_lo
    p = mass(tau_lo)
    for _ in range(n_iter):
        width = width / 2
        tau_m = tau_lo + width
        p = mass(tau_m)
        f_m = p.sum(dim, keepdim=True) - 1
        tau_lo = torch.where(f_m * f_lo >= 0, tau_m, tau_lo)
    return (p / p.sum(dim, keepdim=True)).to(x.dtype)


class _EntmaxComposite(torch.autograd.Function):
    """alpha-entmax in torch ops for tensors the kernel op does not take (torch.func
    transforms included: ``setup_context`` and a generated vmap rule)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, alpha, dim):
        return _entmax_bisect_torch(x, alpha, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.options = inputs[1:]

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return _entmax_grad(y, g, *ctx.options), None, None


def _entmax_route(input: Tensor, alpha: float, dim: int) -> Tensor:
    alpha = check_alpha(alpha)
    if input.dim() == 0:
        raise ValueError("input must have at least one dimension (the class axis)")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -input.dim() <= dim < input.dim():
        raise IndexError(f"dim {dim!r} is out of range for a {input.dim()}-dimensional input")
    dim = dim % input.dim()
    if _on_kernels(input) and input.numel() > 0:
        return _entmax_op(input, alpha, dim)
    if alpha == 1.0:
        return torch.softmax(input, dim)
    return _EntmaxComposite.apply(input, alpha, dim)


def entmax_bisect(input: Tensor, alpha: float = 1.5, dim: int = -1) -> Tensor:
    r"""alpha-entmax along ``dim`` (Peters, Niculae and Martins 2019), differentiable.

    .. math:: p_j = [(\alpha - 1) x_j - \tau]_+^{1/(\alpha - 1)},\quad \sum_j p_j = 1

    ``alpha >= 1`` (a float; the ``entmax`` package also takes a tensor): 1 is
    softmax exactly, 2 sparsemax. CPU float32/float64 tensors run
    ``torch.ops.softmaxkit.entmax`` (softmaxkit.entmax_bisect: bisection to full
    float64 precision with a closed-form finish); anything else bisects in torch ops.
    The backward :math:`s \odot (g - \frac{s \cdot g}{\sum s})`, :math:`s = p^{2 -
    \alpha}` on the support, is differentiable again.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> smt.entmax_bisect(torch.tensor([1.0, 0.5, -2.0], dtype=torch.float64), alpha=1.5)
    tensor([0.6740, 0.3260, 0.0000], dtype=torch.float64)
    """
    return _entmax_route(input, alpha, dim)


def sparsemax(input: Tensor, dim: int = -1) -> Tensor:
    r"""Sparsemax along ``dim`` (Martins and Astudillo 2016): the Euclidean projection onto
    the simplex, :math:`p = [x - \tau]_+`; :func:`entmax_bisect` at alpha 2.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> smt.sparsemax(torch.tensor([1.0, 0.5, -2.0], dtype=torch.float64))
    tensor([0.7500, 0.2500, 0.0000], dtype=torch.float64)
    """
    return _entmax_route(input, 2.0, dim)


def entmax15(input: Tensor, dim: int = -1) -> Tensor:
    r"""1.5-entmax along ``dim`` (Peters et al. 2019): :func:`entmax_bisect` at alpha 1.5,
    :math:`p_j = [x_j / 2 - \tau]_+^2`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> smt.entmax15(torch.tensor([1.0, 0.5, -2.0], dtype=torch.float64))
    tensor([0.6740, 0.3260, 0.0000], dtype=torch.float64)
    """
    return _entmax_route(input, 1.5, dim)


# ------------------------------------------------------------------ modules


class Softplus(torch.nn.Softplus):
    """:class:`torch.nn.Softplus` on :func:`softmaxkit.torch.softplus`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.randn(4, dtype=torch.float64)
    >>> torch.allclose(smt.Softplus(beta=2.0)(x), torch.nn.Softplus(beta=2.0)(x))
    True
    """

    def forward(self, input: Tensor) -> Tensor:
        return softplus(input, self.beta, self.threshold)


class LogSigmoid(torch.nn.LogSigmoid):
    """:class:`torch.nn.LogSigmoid` on :func:`softmaxkit.torch.logsigmoid`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.randn(4, dtype=torch.float64)
    >>> torch.allclose(smt.LogSigmoid()(x), torch.nn.LogSigmoid()(x))
    True
    """

    def forward(self, input: Tensor) -> Tensor:
        return logsigmoid(input)


class MultiMarginLoss(torch.nn.MultiMarginLoss):
    """:class:`torch.nn.MultiMarginLoss` on :func:`softmaxkit.torch.multi_margin_loss`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 2, 1, 0])
    >>> torch.allclose(smt.MultiMarginLoss(p=2)(x, y), torch.nn.MultiMarginLoss(p=2)(x, y))
    True
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                 reduction=self.reduction)
