"""Drop-in ``torch.nn.functional`` losses and softmaxes over softmaxkit's custom ops.

Each function has torch's exact signature and defaults. It decides once, from
static facts (device, dtype, layout, shapes, which tensors require grad), whether
softmaxkit's kernels can take the call; if not, it returns torch's own function's
result unchanged. The decision reads no tensor data, so ``torch.compile`` traces it
without a graph break. On the kernel path the op returns per-row (or per-element)
losses and the reduction is done here in torch ops (see ``_ops`` design note b).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _ops  # noqa: F401  (registers torch.ops.softmaxkit.*)

__all__ = [
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "softmax",
    "log_softmax",
]

_KERNEL_DTYPES = (torch.float32, torch.float64)
# softmax, log_softmax and cross_entropy also run bfloat16 / float16 on the 16-bit kernels
_HALF_DTYPES = (torch.bfloat16, torch.float16)
_REDUCTIONS = ("none", "mean", "sum")


def _cpu(*tensors: torch.Tensor | None) -> bool:
    """Every given tensor is a plain strided CPU tensor (None counts as fine)."""
    return all(t is None or (t.device.type == "cpu" and t.layout == torch.strided) for t in tensors)


def _constant(*tensors: torch.Tensor | None) -> bool:
    """None of the given tensors (targets, weights) asks for a gradient."""
    return not any(t is not None and t.requires_grad for t in tensors)


def _kernel_float(x: torch.Tensor, half: bool = False) -> bool:
    """A float32/float64 input (``half``: or bfloat16/float16) outside torch.jit
    tracing and torch.func transforms (``grad``, ``vmap``, ``hessian``: custom ops
    have no functorch rules, torch's functions do). Under torch.compile the transform
    check folds away."""
    return ((x.dtype in _KERNEL_DTYPES or (half and x.dtype in _HALF_DTYPES)) and not torch.jit.is_tracing()
            and (torch.compiler.is_compiling() or not torch._C._are_functorch_transforms_active()))


def _legacy(size_average, reduce, reduction: str) -> str:
    if size_average is not None or reduce is not None:
        return torch.nn._reduction.legacy_get_string(size_average, reduce)
    return reduction


def _as_rows(input: torch.Tensor, target: torch.Tensor, soft: bool):
    """(N, C, d1, ...) -> (N d1 ..., C) rows with the classes last (a torch op, so
    autograd and compile see it; a copy only for K-dimensional inputs), and the
    batch shape; (C,) is one row."""
    if input.dim() == 1:
        return input.unsqueeze(0), target.unsqueeze(0), ()
    if input.dim() == 2:
        return input, target, (input.shape[0],)
    c = input.shape[1]
    batch = (input.shape[0],) + tuple(input.shape[2:])
    x2 = input.movedim(1, -1).reshape(-1, c)
    t2 = target.movedim(1, -1).reshape(-1, c) if soft else target.reshape(-1)
    return x2, t2, batch


def _reduce_rows(loss_rows, roww, batch, reduction: str, dtype):
    """Reduce float64 per-row losses in torch ops; "mean" is torch's weighted mean
    (sum of losses over sum of the counted rows' class weights)."""
    if reduction == "none":
        return loss_rows.reshape(batch).to(dtype)
    total = loss_rows.sum()
    if reduction == "mean":
        total = total / roww.sum()
    return total.to(dtype)


def _expected_row_grad(x2, t2, weight, ignore_index: int, reduction: str) -> float | None:
    """The per-row upstream gradient a 16-bit cross-entropy's backward gets from
    ``loss.backward()`` on its reduced loss (``_reduce_rows``: 1 for "sum", 1 over the
    summed row weights for "mean", the same float64 operations autograd will do), when
    the forward should write the gradient in its own pass; None where it should not:
    no gradient wanted, reduction "none" (any upstream gradient), or under
    torch.compile (whose graph cannot branch on the values the backward compares)."""
    if reduction == "none" or not (x2.requires_grad and torch.is_grad_enabled()):
        return None
    if torch.compiler.is_compiling() or torch.jit.is_scripting() or torch.jit.is_tracing():
        return None
    if reduction == "sum":
        return 1.0
    live = t2 != ignore_index
    roww = live.double() if weight is None else torch.where(
        live, weight.double()[torch.where(live, t2, 0)], 0.0)
    return float(torch.tensor(1.0, dtype=torch.float64) / roww.sum())


def _class_rows_ok(input, target, weight, soft: bool) -> bool:
    """Static checks for the (N, C, ...) class-index / class-probability losses."""
    if input.dim() == 0 or input.shape[-1 if input.dim() == 1 else 1] == 0:
        return False
    c = input.shape[0] if input.dim() == 1 else input.shape[1]
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != c or weight.dtype != input.dtype):
        return False
    if soft:
        return target.shape == input.shape and target.dtype == input.dtype
    batch = () if input.dim() == 1 else (input.shape[0],) + tuple(input.shape[2:])
    return target.dtype == torch.int64 and tuple(target.shape) == batch


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.cross_entropy` on softmaxkit's fused kernel.

    Same signature, defaults, values and gradients (of every order): ``input`` is
    (C,), (N, C) or (N, C, d1, ..., dK) logits with the classes in dimension 1;
    ``target`` holds class indices (int64, ``input``'s shape without dimension 1) or
    class probabilities (``input``'s shape and dtype).

    .. math:: \ell_n = \sum_c w_c q'_{n,c} (\operatorname{logsumexp}(x_n) - x_{n,c}),
              \quad q' = (1 - \varepsilon) q + \varepsilon / C

    with ``q`` one-hot for class indices; ``ignore_index`` rows count for nothing;
    "mean" divides by the summed class weights of the counted rows (by the row count
    for class probabilities); ``size_average`` / ``reduce`` are torch's deprecated
    aliases of ``reduction``. Class weights may be negative, as in torch.

    Runs ``torch.ops.softmaxkit.cross_entropy_rows`` for CPU float32/float64 and
    bfloat16/float16 tensors (16-bit: computed in float32, loss and gradient rounded
    once to the input's dtype; soft labels in float32, rounded), else torch's function. A class index outside ``[0, C)`` that is not
    ``ignore_index`` raises ValueError naming it.

    References: PyTorch ``torch.nn.functional.cross_entropy``; Szegedy et al. 2016
    (label smoothing).

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x = torch.tensor([[0.0, 120.0]])
    >>> float(smt.cross_entropy(x, torch.tensor([0])))  # exp(120) overflows float32
    120.0
    """
    reduction = _legacy(size_average, reduce, reduction)
    soft = target.is_floating_point()
    fast = (
        _kernel_float(input, half=True)
        and _cpu(input, target, weight)
        and _constant(target, weight)
        and reduction in _REDUCTIONS
        and isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0
        and _class_rows_ok(input, target, weight, soft)
    )
    if not fast:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    x2, t2, batch = _as_rows(input, target, soft)
    if input.dtype in _HALF_DTYPES and not soft:  # keeps each row's logsumexp for a one-pass backward
        scale = _expected_row_grad(x2, t2, weight, int(ignore_index), reduction)
        if scale is not None:  # the gradient in the forward's pass, for a backward() from 1
            loss_rows, roww, _, _ = torch.ops.softmaxkit.cross_entropy_rows_half_grad(
                x2, t2, weight, int(ignore_index), float(label_smoothing), scale)
        else:
            loss_rows, roww, _ = torch.ops.softmaxkit.cross_entropy_rows_half(
                x2, t2, weight, int(ignore_index), float(label_smoothing))
    else:
        loss_rows, roww = torch.ops.softmaxkit.cross_entropy_rows(
            x2, t2, weight, int(ignore_index), float(label_smoothing))
    return _reduce_rows(loss_rows, roww, batch, reduction, input.dtype)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.nll_loss`: ``loss_n = -weight[y_n] input[n, y_n]``.

    ``input`` holds log-probabilities, (C,), (N, C) or (N, C, d1, ..., dK); "mean"
    divides by the summed weights of the counted rows. Class weights may be negative.
    CPU float32/float64 tensors run ``torch.ops.softmaxkit.nll_loss_rows``; anything
    else calls torch's function.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> lp = torch.log(torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64))
    >>> round(float(smt.nll_loss(lp, torch.tensor([1, 0]))), 6)  # -(log 0.75 + log 0.5) / 2
    0.490415
    """
    reduction = _legacy(size_average, reduce, reduction)
    fast = (
        _kernel_float(input)
        and _cpu(input, target, weight)
        and _constant(target, weight)
        and reduction in _REDUCTIONS
        and _class_rows_ok(input, target, weight, soft=False)
    )
    if not fast:
        return F.nll_loss(input, target, weight=weight, ignore_index=ignore_index,
                          reduction=reduction)
    x2, t2, batch = _as_rows(input, target, soft=False)
    loss_rows, roww = torch.ops.softmaxkit.nll_loss_rows(x2, t2, weight, int(ignore_index))
    return _reduce_rows(loss_rows, roww, batch, reduction, input.dtype)


def _reduce_elements(loss, reduction: str, dtype):
    if reduction == "none":
        return loss.to(dtype)
    return (loss.sum() if reduction == "sum" else loss.mean()).to(dtype)


def _broadcasts_to(t: torch.Tensor | None, shape) -> bool:
    if t is None:
        return True
    try:
        return tuple(torch.broadcast_shapes(t.shape, shape)) == tuple(shape)
    except RuntimeError:
        return False


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None
                                     ) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    .. math:: \ell = w \, [p\, y \operatorname{softplus}(-x) + (1 - y) \operatorname{softplus}(x)]

    elementwise (``p`` = ``pos_weight``), finite for every finite logit; ``weight``
    and ``pos_weight`` broadcast to ``input``'s shape and may be negative; "mean"
    averages over all elements. CPU float32/float64 tensors run
    ``torch.ops.softmaxkit.bce_with_logits`` (softmaxkit's softplus kernel, float64);
    anything else calls torch's function.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> loss = smt.binary_cross_entropy_with_logits(torch.tensor([-800.0, 0.0]), torch.ones(2), reduction="none")
    >>> [round(v, 4) for v in loss.tolist()]  # sigmoid(-800) is 0 in float32: log(0) = -inf
    [800.0, 0.6931]
    """
    reduction = _legacy(size_average, reduce, reduction)
    fast = (
        _kernel_float(input)
        and _cpu(input, target, weight, pos_weight)
        and _constant(target, weight, pos_weight)
        and reduction in _REDUCTIONS
        and target.shape == input.shape
        and all(t is None or t.dtype == input.dtype for t in (target, weight, pos_weight))
        and _broadcasts_to(weight, input.shape)
        and _broadcasts_to(pos_weight, input.shape)
    )
    if not fast:
        return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                                  pos_weight=pos_weight)
    loss = torch.ops.softmaxkit.bce_with_logits(input, target, weight, pos_weight)
    return _reduce_elements(loss, reduction, input.dtype)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None,
           reduce: bool | None = None, reduction: str = "mean", log_target: bool = False) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.kl_div` (``input`` holds log-probabilities).

    Pointwise ``target (log target - input)`` (``exp(target) (target - input)`` with
    ``log_target=True``), formed as torch forms it; reductions "none", "sum", "mean"
    (over all elements, with torch's warning) and "batchmean" (sum over
    ``input.size(0)``). CPU float32/float64 tensors run
    ``torch.ops.softmaxkit.kl_div_pointwise``; anything else calls torch's function.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> lq = torch.log(torch.tensor([[0.25, 0.75]], dtype=torch.float64))
    >>> float(smt.kl_div(lq, torch.tensor([[0.5, 0.5]], dtype=torch.float64), reduction="batchmean"))
    0.14384103622589045
    """
    if size_average is not None or reduce is not None:
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
    fast = (
        _kernel_float(input)
        and _cpu(input, target)
        and _constant(target)
        and reduction in _REDUCTIONS + ("batchmean",)
        and target.shape == input.shape
        and target.dtype == input.dtype
    )
    if not fast:
        return F.kl_div(input, target, reduction=reduction, log_target=log_target)
    if reduction == "mean":
        warnings.warn(_KL_MEAN_WARNING, stacklevel=2)
    loss = torch.ops.softmaxkit.kl_div_pointwise(input, target, bool(log_target))
    if reduction == "batchmean":
        total = loss.sum()
        if input.dim() != 0:
            total = total / input.shape[0]
        return total.to(input.dtype)
    return _reduce_elements(loss, reduction, input.dtype)


# torch.nn.functional.kl_div's own warning for reduction="mean", word for word.
_KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def _softmax_dim(ndim: int, dim):
    """``dim`` made non-negative; None when out of range (torch raises its own error)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not -max(ndim, 1) <= dim < max(ndim, 1):
        return None
    return dim % max(ndim, 1)


def _softmax_on_kernels(input, dim) -> bool:
    return (dim is not None and _kernel_float(input, half=True) and _cpu(input) and input.dim() >= 1
            and input.numel() > 0)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: torch.dtype | None = None) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.softmax`: ``exp(x_i) / sum_j exp(x_j)`` along ``dim``.

    Computed as softmaxkit.softmax does (shifted by the row max; exact to < 1 ulp in
    float32). ``dtype`` casts the input first, as in torch. CPU float32/float64 and
    bfloat16/float16 tensors (16-bit: computed in float32, rounded once) of at least
    one dimension run ``torch.ops.softmaxkit.softmax``; anything else calls torch's
    function. The backward is differentiable to any order.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> smt.softmax(torch.tensor([123.0, 456.0, 789.0], dtype=torch.float64), dim=0).numpy()
    array([5.75274406e-290, 2.39848787e-145, 1.00000000e+000])
    """
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:  # torch's legacy implicit dimension, with its warning
        dim = F._get_softmax_dim("softmax", input.dim(), 3)  # type: ignore[attr-defined]
    kdim = _softmax_dim(input.dim(), dim)
    if not _softmax_on_kernels(input, kdim):
        return F.softmax(input, dim)
    return torch.ops.softmaxkit.softmax(input, kdim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: torch.dtype | None = None) -> Tensor:
    r"""Drop-in :func:`torch.nn.functional.log_softmax`: ``x_i - logsumexp(x)`` along ``dim``.

    Never ``log(0)``: ``[1000.0, 1.0]`` gives ``[0, -999]``. Routing as :func:`softmax`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> smt.log_softmax(torch.tensor([1000.0, 1.0]), dim=0)
    tensor([   0., -999.])
    """
    if dtype is not None:
        input = input.to(dtype)
    if dim is None:  # torch's legacy implicit dimension, with its warning
        dim = F._get_softmax_dim("log_softmax", input.dim(), 3)  # type: ignore[attr-defined]
    kdim = _softmax_dim(input.dim(), dim)
    if not _softmax_on_kernels(input, kdim):
        return F.log_softmax(input, dim)
    return torch.ops.softmaxkit.log_softmax(input, kdim)
