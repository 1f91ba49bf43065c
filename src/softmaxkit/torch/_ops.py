"""softmaxkit's kernels as PyTorch custom operators (``torch.ops.softmaxkit.*``).

Design:

a) Each forward is a ``torch.library.custom_op`` on CPU tensors, with a fake
   implementation (shapes and dtypes only) so ``torch.compile`` traces through it, and
   a registered autograd formula. The ops see plain (rows, C) blocks or elementwise
   arrays; :mod:`._functional` reshapes, routes and reduces.
b) Losses return *per-row* (or per-element) losses in float64; the reduction is done
   by the caller in torch ops. So autograd hands the backward one upstream gradient
   per row (``dloss``), which carries "mean", "sum", class weights and
   ``reduction="none"`` with any per-element upstream gradient alike (llm.c's
   ``dlosses``), and the loss never bakes a gradient in during the forward.
c) Every backward is differentiable again. Cross-entropy's backward is a second
   custom op (the fused C kernel: ``dloss * (a p - b)``) whose own backward is written
   in torch ops, so ``create_graph=True``, gradient penalties, Hessian-vector products
   and gradgradcheck see exact derivatives of every order. Softmax's backward is
   torch's differentiable ``_softmax_backward_data``; the elementwise losses'
   backwards are plain torch expressions.
d) Tensors reach NumPy as views of their memory (``detach().numpy()``; lazily negated
   or conjugated views are resolved first, a copy only then), and results come back
   with ``torch.from_numpy`` (no copy). bfloat16 tensors, which NumPy lacks, travel
   as uint16 views of their bits, the form the 16-bit kernels take
   (``softmaxkit._kernels``); float16 as float16. softmax, log_softmax and
   cross-entropy with class indices run the 16-bit kernels on them (float32 inside,
   rounded once); soft labels of 16-bit logits are computed in float32 and rounded.
e) The seam to softmaxkit's core is the few ``_np_*`` functions below: the only
   places that call the core (the kernel seam ``softmaxkit._kernels``, the label check
   of ``softmaxkit._validation`` and the softmax family). They take per-row losses
   and per-row upstream gradients, which the loss objects' reduced
   ``loss_gradient`` does not give, and class weights of any sign (torch's).
"""
import sys
from typing import Optional

import numpy as np
import torch

from .. import _kernels, _softmax
from .._validation import Rows, hard_target

# ----------------------------------------------------------------- the kernel seam

# The 16-bit dtypes the kernels take (softmax, log_softmax, cross-entropy).
HALF_DTYPES = (torch.bfloat16, torch.float16)


def _np(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (a copy only for neg/conj-bit views);
    bfloat16 as a uint16 view of its bits."""
    t = t.detach().resolve_conj().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _np_opt(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    return None if t is None else _np(t)


def _labels(target: np.ndarray, n_classes: int, ignore_index: int) -> np.ndarray:
    """Class indices as flat int64, each in [0, C) or ignore_index (else ValueError)."""
    return hard_target(target, n_classes, target.shape, ignore_index)


def _np_ce_rows(x, target, weight, ignore_index, eps, grad_scale=None, lse=None, forward=False, grad_out=None):
    """Per-row cross-entropy of (rows, C) logits on the fused C kernel.

    Returns (loss float64 (rows,), row weight float64 (rows,), gradient or None). Hard
    targets are validated here (ValueError naming the first bad label); soft targets
    (rows, C) are read as given. ``grad_scale``: None (no gradient) or per-row float64
    multipliers ``dloss``; ignored rows get a zero gradient row whatever their dloss.
    ``lse`` (16-bit logits, class indices): in the forward a float64 (rows,) array the
    kernel fills with each row's logsumexp; in the backward that array, from which the
    gradient is written in one pass (``_kernels.ce_hard_grad_lse_rows``). ``forward``: a
    forward that also writes the gradient for ``grad_scale`` (validating the labels,
    filling ``lse``), for :func:`cross_entropy_rows_half_grad`. ``grad_out``: where
    the backward from ``lse`` writes the gradient (None: a new array).
    """
    x = np.ascontiguousarray(x)
    half = x.dtype in (np.uint16, np.float16)  # 16-bit logits: float32 class weights
    w = None if weight is None else np.ascontiguousarray(weight, dtype=np.float32 if half else x.dtype)
    if target.ndim == 2:  # class probabilities
        q = np.ascontiguousarray(target, dtype=x.dtype)
        loss, grad = _kernels.ce_soft_rows(x, q, weight=w, label_smoothing=eps, dloss=grad_scale)
        return loss, np.ones(x.shape[0]), grad
    if grad_scale is None or forward:
        t = _labels(target, x.shape[1], ignore_index)
    else:  # the backward: the forward checked these labels (and the kernel never reads out of bounds)
        t = np.ascontiguousarray(target.reshape(-1), dtype=np.int64)
        # 0 * inf is NaN: an all-ignored "mean" has dloss = 1/0, but ignored rows have
        # no gradient at all (torch's convention).
        grad_scale = np.where(t != ignore_index, grad_scale, 0.0)
        if lse is not None:
            grad = _kernels.ce_hard_grad_lse_rows(x, t, lse, weight=w, ignore_index=ignore_index,
                                                  label_smoothing=eps, dloss=grad_scale, grad_out=grad_out)
            return None, None, grad
    return _kernels.ce_hard_rows(x, t, weight=w, ignore_index=ignore_index,
                                 label_smoothing=eps, dloss=grad_scale, lse_out=lse)


def _np_nll_rows(x, target, weight, ignore_index):
    """Per-row ``-weight[y] * x[y]`` of (rows, C) log-probabilities: (loss, row weight)."""
    t = _labels(target, x.shape[1], ignore_index)
    idx = np.flatnonzero(t != ignore_index)
    roww = np.zeros(x.shape[0])
    roww[idx] = 1.0 if weight is None else weight[t[idx]]
    loss = np.zeros(x.shape[0])
    loss[idx] = -roww[idx] * x[idx, t[idx]]  # torch's arithmetic: 0 * -inf is NaN
    return loss, roww


def _np_bce_with_logits(x, y, weight, pos_weight):
    """Elementwise ``weight * (pos_weight y softplus(-x) + (1 - y) softplus(x))``, float64.

    softplus is softmaxkit's kernel (finite, no cancellation for every finite x);
    terms with a zero coefficient are left out and a NaN logit gives NaN, as in
    softmaxkit.binary_cross_entropy_with_logits. Weights may be negative (torch accepts
    them; the core's checked loss object refuses them, hence this formula here)."""
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    a = yd if pos_weight is None else pos_weight.astype(np.float64) * yd
    b = 1.0 - yd
    with np.errstate(invalid="ignore"):
        loss = (np.where(a != 0, a * _softmax.softplus(-xd), 0.0)
                + np.where(b != 0, b * _softmax.softplus(xd), 0.0))
    loss = np.where(np.isnan(xd), np.nan, loss)  # a NaN logit is NaN whatever the weights (torch)
    if weight is not None:
        loss = loss * weight.astype(np.float64)
    return np.asarray(loss, dtype=np.float64)


def _np_kl_div(x, t, log_target):
    """Pointwise KL terms as torch forms them, float64: ``xlogy(t, t) - t x`` or
    ``exp(t) (t - x)``."""
    xd, td = x.astype(np.float64), t.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if log_target:
            return np.exp(td) * (td - xd)
        tlogt = np.where(td == 0, 0.0, td * np.log(np.where(td == 0, 1.0, td)))
        return tlogt - td * xd


def _np_softmax(x, dim, log):
    if x.dtype == np.uint16:  # bfloat16 bits: the 16-bit kernel on (rows, C) blocks
        rows = Rows(x, (dim % x.ndim,))
        y = np.empty_like(rows.block)
        (_kernels.log_softmax_rows if log else _kernels.softmax_rows)(rows.block, y)
        return np.ascontiguousarray(rows.restore(y))
    fn = _softmax.log_softmax if log else _softmax.softmax
    return np.ascontiguousarray(fn(x, axis=dim))


def _from_np(a: np.ndarray) -> torch.Tensor:
    """A tensor over a NumPy array's memory; uint16 arrays are bfloat16 bits."""
    a = np.asarray(a)
    if a.dtype == np.uint16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _ce_arrays(input, target, weight):
    """NumPy views for :func:`_np_ce_rows`. 16-bit logits keep their format with
    float32 class weights (exact); with soft labels (no 16-bit kernel) they are
    widened to float32 and the gradient rounded back by the caller."""
    if input.dtype in HALF_DTYPES:
        weight = None if weight is None else weight.float()
        if target.dim() == 2:
            input, target = input.float(), target.float()
    return _np(input), _np(target), _np_opt(weight)


# ------------------------------------------------------------- cross-entropy rows


@torch.library.custom_op("softmaxkit::cross_entropy_rows", mutates_args=(), device_types="cpu")
def cross_entropy_rows(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                       ignore_index: int, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row losses (float64 (n,)) and row weights (float64 (n,), the "mean"
    denominator's terms) of (n, C) logits; target (n,) int64 or (n, C) probabilities."""
    loss, roww, _ = _np_ce_rows(*_ce_arrays(input, target, weight), ignore_index, label_smoothing)
    return _from_np(loss), _from_np(roww)


@cross_entropy_rows.register_fake
def _(input, target, weight, ignore_index, label_smoothing):
    n = input.shape[0]
    return input.new_empty((n,), dtype=torch.float64), input.new_empty((n,), dtype=torch.float64)


@torch.library.custom_op("softmaxkit::cross_entropy_rows_backward", mutates_args=(), device_types="cpu")
def cross_entropy_rows_backward(grad_rows: torch.Tensor, input: torch.Tensor, target: torch.Tensor,
                                weight: Optional[torch.Tensor], ignore_index: int,
                                label_smoothing: float) -> torch.Tensor:
    """``dloss[:, None] * d loss_row / d input``: the fused C kernel, one pass."""
    scale = np.ascontiguousarray(_np(grad_rows), dtype=np.float64)
    _, _, grad = _np_ce_rows(*_ce_arrays(input, target, weight), ignore_index, label_smoothing,
                             grad_scale=scale)
    return _from_np(grad).to(input.dtype)  # soft labels of 16-bit logits: rounded once


@cross_entropy_rows_backward.register_fake
def _(grad_rows, input, target, weight, ignore_index, label_smoothing):
    return input.new_empty(input.shape)


def _ce_coefficients(input, target, weight, ignore_index, eps):
    """(a, b) with ``d loss_row / d x = a p - b`` (torch ops, for the double backward).

    With the smoothed target ``q' = (1 - eps) q + eps / C`` and class weights w, a row's
    loss is ``sum_c w_c q'_c (lse - x_c)``, so ``b = w * q'`` and ``a = sum_c b_c``.
    Hard labels: ``q`` is one-hot, and an ignored row has a = b = 0."""
    n, c = input.shape
    w = input.new_ones(c) if weight is None else weight.to(input.dtype)
    if target.dim() == 2:
        b = ((1.0 - eps) * target.to(input.dtype) + eps / c) * w
        return b.sum(1), b
    live = target != ignore_index
    safe = torch.where(live, target, 0)
    onehot = torch.zeros_like(input).scatter_(1, safe.unsqueeze(1), 1.0)
    b = ((1.0 - eps) * onehot + eps / c) * w * live.unsqueeze(1).to(input.dtype)
    return b.sum(1), b


def _ce_rows_setup(ctx, inputs, output):
    input, target, weight, ignore_index, label_smoothing = inputs
    ctx.save_for_backward(input, target, weight)
    ctx.options = (ignore_index, label_smoothing)
    ctx.mark_non_differentiable(output[1])


def _ce_rows_bwd(ctx, grad_loss, grad_roww):
    input, target, weight = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = torch.ops.softmaxkit.cross_entropy_rows_backward(grad_loss, input, target, weight,
                                                                *ctx.options)
    return grad, None, None, None, None


cross_entropy_rows.register_autograd(_ce_rows_bwd, setup_context=_ce_rows_setup)


def _ce_bwd_setup(ctx, inputs, output):
    grad_rows, input, target, weight, ignore_index, label_smoothing = inputs
    ctx.save_for_backward(grad_rows, input, target, weight)
    ctx.options = (ignore_index, label_smoothing)


def _ce_bwd_bwd(ctx, v):
    """Backward of ``G = s[:, None] (a p - b)``, p = softmax(x), in torch ops:

    dG/ds . v = sum_c v (a p - b) per row, and dG/dx . v = s a (p v - p (p . v)), the
    softmax Jacobian ``diag(p) - p p^T`` applied to v (symmetric). Differentiable
    again, so higher orders are exact too."""
    grad_rows, input, target, weight = ctx.saved_tensors
    a, b = _ce_coefficients(input, target, weight, *ctx.options)
    p = torch.softmax(input, 1)
    live = a.ne(0) | b.ne(0).any(1)
    s = torch.where(live, grad_rows, 0).to(input.dtype)  # ignored rows: dloss may be inf
    g_rows = g_input = None
    if ctx.needs_input_grad[0]:
        g_rows = (v * (a.unsqueeze(1) * p - b)).sum(1).to(grad_rows.dtype)
    if ctx.needs_input_grad[1]:
        g_input = (s * a).unsqueeze(1) * p * (v - (p * v).sum(1, keepdim=True))
    return g_rows, g_input, None, None, None, None


cross_entropy_rows_backward.register_autograd(_ce_bwd_bwd, setup_context=_ce_bwd_setup)


# ------------------------------------- cross-entropy rows, 16-bit logits


@torch.library.custom_op("softmaxkit::cross_entropy_rows_half", mutates_args=(), device_types="cpu")
def cross_entropy_rows_half(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                            ignore_index: int, label_smoothing: float
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cross_entropy_rows`` for bfloat16/float16 (n, C) logits and int64 class
    indices, which also returns each row's logsumexp (float64 (n,), NaN or +inf where the
    row is not finite or ignored): the backward reads it to write the gradient in one pass
    over the row instead of three (max, sum, gradient)."""
    x, t, w = _ce_arrays(input, target, weight)
    lse = np.empty(x.shape[0])
    loss, roww, _ = _np_ce_rows(x, t, w, ignore_index, label_smoothing, lse=lse)
    return _from_np(loss), _from_np(roww), _from_np(lse)


@cross_entropy_rows_half.register_fake
def _(input, target, weight, ignore_index, label_smoothing):
    n = input.shape[0]
    return tuple(input.new_empty((n,), dtype=torch.float64) for _ in range(3))


@torch.library.custom_op("softmaxkit::cross_entropy_rows_half_backward", mutates_args=(), device_types="cpu")
def cross_entropy_rows_half_backward(grad_rows: torch.Tensor, input: torch.Tensor, target: torch.Tensor,
                                     weight: Optional[torch.Tensor], lse: torch.Tensor, ignore_index: int,
                                     label_smoothing: float) -> torch.Tensor:
    """``dloss[:, None] * d loss_row / d input`` from the forward's logsumexp: one pass."""
    scale = np.ascontiguousarray(_np(grad_rows), dtype=np.float64)
    _, _, grad = _np_ce_rows(*_ce_arrays(input, target, weight), ignore_index, label_smoothing,
                             grad_scale=scale, lse=_np(lse))
    return _from_np(grad)


@cross_entropy_rows_half_backward.register_fake
def _(grad_rows, input, target, weight, lse, ignore_index, label_smoothing):
    return input.new_empty(input.shape)


def _ce_half_setup(ctx, inputs, output):
    input, target, weight, ignore_index, label_smoothing = inputs
    ctx.save_for_backward(input, target, weight, output[2])
    ctx.options = (ignore_index, label_smoothing)
    ctx.mark_non_differentiable(output[1], output[2])


def _ce_half_bwd(ctx, grad_loss, grad_roww, grad_lse):
    input, target, weight, lse = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = torch.ops.softmaxkit.cross_entropy_rows_half_backward(grad_loss, input, target, weight, lse,
                                                                     *ctx.options)
    return grad, None, None, None, None


cross_entropy_rows_half.register_autograd(_ce_half_bwd, setup_context=_ce_half_setup)


def _ce_half_bwd_setup(ctx, inputs, output):
    grad_rows, input, target, weight, lse, ignore_index, label_smoothing = inputs
    ctx.save_for_backward(grad_rows, input, target, weight)
    ctx.options = (ignore_index, label_smoothing)


def _ce_half_bwd_bwd(ctx, v):
    """As :func:`_ce_bwd_bwd` (lse is a function of input, and the formula there is the
    total derivative through it, so lse itself gets none)."""
    g_rows, g_input = _ce_bwd_bwd(ctx, v)[:2]
    return g_rows, g_input, None, None, None, None, None


cross_entropy_rows_half_backward.register_autograd(_ce_half_bwd_bwd, setup_context=_ce_half_bwd_setup)


@torch.library.custom_op("softmaxkit::cross_entropy_rows_half_grad", mutates_args=(), device_types="cpu")
def cross_entropy_rows_half_grad(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                                 ignore_index: int, label_smoothing: float, grad_scale: float
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``cross_entropy_rows_half`` that also writes, in the same pass over the logits,
    the gradient the backward will most likely be asked for: ``grad_scale * d loss_row
    / d input`` for every row (the fused kernel: one read of the logits and one write,
    where the forward and a backward from lse read them twice). The backward returns
    it only when the per-row upstream gradient it receives is exactly ``grad_scale``
    (a reduced loss whose ``backward()`` starts from 1) and no graph is being built;
    otherwise it computes the gradient from lse as ``cross_entropy_rows_half`` does,
    written over that fourth output when no graph is being built (an internal op: the
    fourth output belongs to the backward)."""
    x, t, w = _ce_arrays(input, target, weight)
    lse = np.empty(x.shape[0])
    loss, roww, grad = _np_ce_rows(x, t, w, ignore_index, label_smoothing, grad_scale=float(grad_scale), lse=lse,
                                   forward=True)
    return _from_np(loss), _from_np(roww), _from_np(lse), _from_np(grad)


@cross_entropy_rows_half_grad.register_fake
def _(input, target, weight, ignore_index, label_smoothing, grad_scale):
    n = input.shape[0]
    return tuple(input.new_empty((n,), dtype=torch.float64) for _ in range(3)) + (input.new_empty(input.shape),)


def _ce_half_grad_setup(ctx, inputs, output):
    input, target, weight, ignore_index, label_smoothing, grad_scale = inputs
    ctx.save_for_backward(input, target, weight, output[2])
    ctx.options = (ignore_index, label_smoothing)
    ctx.scale = grad_scale
    # Not saved for backward: dropped once handed out, so autograd can keep it as .grad.
    # Only a real tensor: under tracing (fake or functional tensors) the backward's
    # comparison of values cannot be traced, and it takes the logsumexp path.
    ctx.pre = output[3] if type(output[3]) is torch.Tensor else None
    ctx.mark_non_differentiable(output[1], output[2], output[3])
    ctx.set_materialize_grads(False)  # no zeros of the gradient's size for the unused outputs


def _ce_half_grad_bwd(ctx, grad_loss, grad_roww, grad_lse, grad_pre):
    input, target, weight, lse = ctx.saved_tensors
    pre, ctx.pre = ctx.pre, None
    if not ctx.needs_input_grad[0] or grad_loss is None:
        return None, None, None, None, None, None
    if pre is not None and not torch.is_grad_enabled():
        if bool((grad_loss == ctx.scale).all()):
            return pre, None, None, None, None, None
        # Another upstream gradient: the gradient from lse, written over the forward's
        # (a fresh array of its size would cost its page faults), if nothing else
        # holds that tensor (this frame's name and getrefcount's argument: 2; its
        # memory in no other tensor); otherwise into a new one.
        if sys.getrefcount(pre) == 2 and pre._use_count() == 1 \
                and torch._C._storage_Use_Count(pre.untyped_storage()._cdata) == 2:
            x, t, w = _ce_arrays(input, target, weight)
            scale = np.ascontiguousarray(_np(grad_loss), dtype=np.float64)
            _np_ce_rows(x, t, w, *ctx.options, grad_scale=scale, lse=_np(lse), grad_out=_np(pre))
            return pre, None, None, None, None, None
    del pre
    grad = torch.ops.softmaxkit.cross_entropy_rows_half_backward(grad_loss, input, target, weight, lse,
                                                                 *ctx.options)
    return grad, None, None, None, None, None


cross_entropy_rows_half_grad.register_autograd(_ce_half_grad_bwd, setup_context=_ce_half_grad_setup)


# ------------------------------------------------------------------- nll rows


@torch.library.custom_op("softmaxkit::nll_loss_rows", mutates_args=(), device_types="cpu")
def nll_loss_rows(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                  ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``-weight[y] input[y]`` (float64 (n,)) and row weights of (n, C) log-probabilities."""
    loss, roww = _np_nll_rows(_np(input), _np(target), _np_opt(weight), ignore_index)
    return _from_np(loss), _from_np(roww)


@nll_loss_rows.register_fake
def _(input, target, weight, ignore_index):
    n = input.shape[0]
    return input.new_empty((n,), dtype=torch.float64), input.new_empty((n,), dtype=torch.float64)


def _nll_setup(ctx, inputs, output):
    input, target, weight, ignore_index = inputs
    ctx.save_for_backward(target, output[1])
    ctx.ignore_index = ignore_index
    ctx.shape_dtype = (input.shape, input.dtype)
    ctx.mark_non_differentiable(output[1])


def _nll_bwd(ctx, grad_loss, grad_roww):
    """d/dx of ``-w_y x_y`` is ``-w_y`` at the label: a scatter of ``-w_y dloss``
    (linear in dloss, so differentiable; the second derivative in x is 0)."""
    target, roww = ctx.saved_tensors
    shape, dtype = ctx.shape_dtype
    live = target != ctx.ignore_index
    vals = torch.where(live, -roww * grad_loss, 0).to(dtype)
    grad = torch.zeros(shape, dtype=dtype).scatter(1, torch.where(live, target, 0).unsqueeze(1),
                                                   vals.unsqueeze(1))
    return grad, None, None, None


nll_loss_rows.register_autograd(_nll_bwd, setup_context=_nll_setup)


# --------------------------------------------------------- elementwise losses


@torch.library.custom_op("softmaxkit::bce_with_logits", mutates_args=(), device_types="cpu")
def bce_with_logits(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                    pos_weight: Optional[torch.Tensor]) -> torch.Tensor:
    """Elementwise binary cross-entropy of logits, float64, input's shape (weights broadcast)."""
    x = _np(input)
    bw = None if weight is None else np.broadcast_to(_np(weight), x.shape)
    bp = None if pos_weight is None else np.broadcast_to(_np(pos_weight), x.shape)
    return _from_np(_np_bce_with_logits(x, _np(target), bw, bp))


@bce_with_logits.register_fake
def _(input, target, weight, pos_weight):
    return input.new_empty(input.shape, dtype=torch.float64)


def _bce_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _bce_bwd(ctx, g):
    """d/dx [a softplus(-x) + b softplus(x)] = b sigmoid(x) - a sigmoid(-x), a = pos_weight y,
    b = 1 - y, times weight: torch ops, differentiable again."""
    input, target, weight, pos_weight = ctx.saved_tensors
    a = target if pos_weight is None else pos_weight * target
    d = (1 - target) * torch.sigmoid(input) - a * torch.sigmoid(-input)
    if weight is not None:
        d = d * weight
    return (g * d).to(input.dtype), None, None, None


bce_with_logits.register_autograd(_bce_bwd, setup_context=_bce_setup)


@torch.library.custom_op("softmaxkit::kl_div_pointwise", mutates_args=(), device_types="cpu")
def kl_div_pointwise(input: torch.Tensor, target: torch.Tensor, log_target: bool) -> torch.Tensor:
    """Pointwise KL terms (float64, input's shape), torch's formula."""
    return _from_np(_np_kl_div(_np(input), _np(target), log_target))


@kl_div_pointwise.register_fake
def _(input, target, log_target):
    return input.new_empty(input.shape, dtype=torch.float64)


def _kl_setup(ctx, inputs, output):
    input, target, log_target = inputs
    ctx.save_for_backward(target)
    ctx.log_target = log_target
    ctx.dtype = input.dtype


def _kl_bwd(ctx, g):
    """d/dx of the pointwise term is -t (-exp(t) with log_target): linear in g."""
    (target,) = ctx.saved_tensors
    t = torch.exp(target) if ctx.log_target else target
    return (-t * g).to(ctx.dtype), None, None


kl_div_pointwise.register_autograd(_kl_bwd, setup_context=_kl_setup)


# -------------------------------------------------------------- softmax family


@torch.library.custom_op("softmaxkit::softmax", mutates_args=(), device_types="cpu")
def softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax along ``dim`` (contiguous result, input's dtype)."""
    return _from_np(_np_softmax(_np(input), dim, False))


@softmax.register_fake
def _(input, dim):
    return input.new_empty(input.shape)


@torch.library.custom_op("softmaxkit::log_softmax", mutates_args=(), device_types="cpu")
def log_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    """Log-softmax along ``dim`` (contiguous result, input's dtype)."""
    return _from_np(_np_softmax(_np(input), dim, True))


@log_softmax.register_fake
def _(input, dim):
    return input.new_empty(input.shape)


def _softmax_setup(ctx, inputs, output):
    ctx.save_for_backward(output)
    ctx.dim = inputs[1]


def _softmax_bwd(ctx, g):
    # dx = y (g - sum(y g)), from the output alone; torch's op has its own derivatives
    (y,) = ctx.saved_tensors
    return torch.ops.aten._softmax_backward_data(g, y, ctx.dim, y.dtype), None


def _log_softmax_bwd(ctx, g):
    # dx = g - exp(y) sum(g)
    (y,) = ctx.saved_tensors
    return torch.ops.aten._log_softmax_backward_data(g, y, ctx.dim, y.dtype), None


softmax.register_autograd(_softmax_bwd, setup_context=_softmax_setup)
log_softmax.register_autograd(_log_softmax_bwd, setup_context=_softmax_setup)
