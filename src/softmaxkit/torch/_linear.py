"""PyTorch autograd for softmaxkit's fused linear + cross-entropy (all its options).

Three layers, as Liger-Kernel's (``ops/fused_linear_cross_entropy.py`` -> an
``autograd.Function`` -> a module): the chunked NumPy/BLAS pass of
:mod:`softmaxkit._linear_ce` does the work; :class:`_FusedLinearCE` wires it into
autograd; :func:`fused_linear_cross_entropy` / :func:`fused_linear_cross_entropy_full`
and :class:`LinearCrossEntropyLoss` are thin shells over it.

Backward. When the loss is reduced ("mean"/"sum") and no per-row output is
differentiated, the forward forms the gradients in the same pass and the backward
only scales them by the incoming scalar (one pass in all). Otherwise (reduction
"none", or a gradient flowing into ``z_loss``, ``logprob`` or ``entropy``) the
per-row upstream gradients are only known in backward, and the backward recomputes
the chunks with them: exact for any upstream gradient, at the price of a second
pass (torch's own chunked ``linear_cross_entropy`` does the same).

Double backward is not supported: the backward is a NumPy pass, not a graph of
torch operations, so a backward with ``create_graph=True`` raises a RuntimeError
saying so (gradient penalties and Hessian-vector products need torch's own
``linear_cross_entropy``).

Tensors: CPU, float32 or float64 (float16 and bfloat16 are computed in float32 and
returned in their dtype); other devices raise ValueError.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from .. import _linear_ce, _reduction

__all__ = [
    "fused_linear_cross_entropy",
    "fused_linear_cross_entropy_full",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOutput",
]

_DIFF_OUTPUTS = ("lse", "logprob", "entropy")


class LinearCrossEntropyOutput(NamedTuple):
    """What :func:`fused_linear_cross_entropy_full` returns: always this type.

    ``loss`` includes the z-loss term; ``z_loss`` is that term alone (both
    differentiable). Per-row outputs that were not asked for are None; ``lse``,
    ``logprob`` and ``entropy`` are differentiable float64-accurate tensors in the
    input's dtype, ``argmax`` an int64 tensor, ``accuracy`` a float.
    """

    loss: torch.Tensor
    z_loss: torch.Tensor
    lse: torch.Tensor | None
    logprob: torch.Tensor | None
    entropy: torch.Tensor | None
    argmax: torch.Tensor | None
    accuracy: float | None


class _Opts(NamedTuple):
    ignore_index: int | None
    label_smoothing: float
    reduction: str
    z_loss: float
    softcap: float | None
    temperature: float
    outputs: tuple
    chunk_size: int | None


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    """A CPU tensor as a NumPy array (shared memory when possible). Lazily negated or
    conjugated views are resolved first; float16/bfloat16 become float32."""
    if t is None:
        return None
    t = t.detach().resolve_neg().resolve_conj()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.numpy()


def _check_tensor(t: Any, name: str) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on {t.device}: softmaxkit's fused linear cross-entropy runs on the CPU")


class _Parallel(NamedTuple):
    """Vocab parallelism (softmaxkit.torch (vocab parallel)): this process holds classes
    vocab_start : vocab_start + V_local of n_classes; ``comm`` all-reduces the row
    statistics; ``logits``: the first tensor is a logits shard, not ``hidden``."""

    comm: Any
    vocab_start: int
    n_classes: int
    chunk_classes: int
    logits: bool


def _prepare(hidden, weight, bias, target, class_weight, o: _Opts, par: _Parallel | None,
             grad_coef=False):
    kw = {}
    if par is not None:
        kw = dict(n_classes=par.n_classes, vocab_start=par.vocab_start,
                  chunk_classes=par.chunk_classes)
        if par.logits:
            kw["logits"] = _numpy(hidden)
    return _linear_ce._prepare(
        None if "logits" in kw else _numpy(hidden), _numpy(weight), _numpy(target), _numpy(bias),
        _numpy(class_weight), o.ignore_index, o.label_smoothing, o.reduction, o.chunk_size,
        z_loss=o.z_loss, softcap=o.softcap, temperature=o.temperature, outputs=o.outputs,
        grad_coef=grad_coef, **kw,
    )


def _pass(p, coef, need, par: _Parallel | None):
    """_linear_ce._pass, and the all-reduce of grad_hidden across the vocab shards."""
    if par is None:
        return _linear_ce._pass(p, coef, need)
    res = _linear_ce._pass(p, coef, need, par.comm)
    gh = res.grads[0]
    if gh is not None and not par.logits:
        par.comm.sum_inplace(gh)  # each shard's dz @ W_shard is a partial sum
    return res


def _out(a: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a)).to(like.dtype)


class _FusedLinearCE(torch.autograd.Function):
    """Outputs: loss, z_loss, lse, logprob, entropy (empty tensors where not asked
    for), argmax (int64, not differentiable)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, class_weight, o: _Opts,
                par: _Parallel | None = None):
        need = tuple(ctx.needs_input_grad[:3])
        if bias is None:
            need = (need[0], need[1], False)
        if weight is None:
            need = (need[0], False, need[2])
        p = _prepare(hidden, weight, bias, target, class_weight, o, par)
        ctx.opts, ctx.need, ctx.total_weight, ctx.par = o, need, p.total_weight, par
        ctx.grads = None
        # lse is returned but not differentiated, so it does not force a recompute
        one_pass = (any(need) and o.reduction != "none"
                    and not (set(o.outputs) & {"logprob", "entropy"}))
        if one_pass:
            coef = _linear_ce._Coef(loss=_linear_ce._grad_scale(p, o.reduction))
            res = _pass(p, coef, need, par)
            ctx.grads = tuple(None if g is None else torch.from_numpy(g) for g in res.grads)
        else:
            res = _pass(p, None, need, par)
        ctx.save_for_backward(hidden, weight, bias, target, class_weight)
        z_rows = res.z_rows if res.z_rows is not None else np.zeros_like(res.loss_rows)
        outs = [_out(_linear_ce._reduce(p, res.loss_rows, o.reduction), hidden),
                _out(_linear_ce._reduce(p, z_rows, o.reduction), hidden)]
        for name in _DIFF_OUTPUTS:
            v = getattr(res, name)
            outs.append(hidden.new_empty(0) if v is None else _out(v, hidden))
        am = torch.empty(0, dtype=torch.int64) if res.argmax is None else torch.from_numpy(res.argmax)
        ctx.mark_non_differentiable(am)
        return (*outs, am)

    @staticmethod
    def backward(ctx, g_loss, g_z, g_lse, g_lp, g_ent, _g_am):
        if torch.is_grad_enabled():  # backward(create_graph=True): a graph was asked for
            raise RuntimeError(
                "softmaxkit's fused linear cross-entropy has no double backward: its "
                "backward is a NumPy pass, not torch operations (create_graph=True is not "
                "supported; use torch.nn.functional.linear_cross_entropy for that)"
            )
        o = ctx.opts
        hidden, weight, bias, target, class_weight = ctx.saved_tensors
        dz_other = [g for g in (g_z, g_lse, g_lp, g_ent) if g is not None and g.numel() and bool(g.any())]
        if ctx.grads is not None and not dz_other:
            like = (hidden, weight, bias if bias is not None else hidden)
            grads = [None if g is None else
                     (g * (0.0 if g_loss is None else g_loss.to(g.dtype))).to(t.dtype)
                     for g, t in zip(ctx.grads, like)]
            return grads[0], grads[1], grads[2], None, None, None, None
        if g_lse is not None and g_lse.numel() and bool(g_lse.any()):
            raise NotImplementedError(
                "the gradient of lse is not implemented; differentiate logprob, entropy, "
                "loss or z_loss (d lse = -d logprob for the target's logit)"
            )
        scale = _reduction.mean_scale(o.reduction, ctx.total_weight)

        def per_row(g):
            if g is None or not g.numel():
                return 0.0
            a = _numpy(g).astype(np.float64)
            return float(a) if a.ndim == 0 else a

        coef = _linear_ce._Coef(loss=_scaled(per_row(g_loss), scale),
                                z_loss=_scaled(per_row(g_z), scale),
                                logprob=per_row(g_lp), entropy=per_row(g_ent))
        p = _prepare(hidden, weight, bias, target, class_weight, o._replace(outputs=()),
                     ctx.par, grad_coef=True)
        res = _pass(p, coef, ctx.need, ctx.par)
        like = (hidden, weight if weight is not None else hidden, bias if bias is not None else hidden)
        grads = [None if g is None else torch.from_numpy(g).to(t.dtype)
                 for g, t in zip(res.grads, like)]
        return grads[0], grads[1], grads[2], None, None, None, None


def _scaled(c: Any, scale: float) -> Any:
    return c * scale


def _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
          chunk_size) -> _Opts:
    if ignore_index is not None and isinstance(ignore_index, torch.Tensor):
        ignore_index = int(ignore_index)
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    _linear_ce._check_outputs(outputs)
    return _Opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature,
                 outputs, chunk_size)


def _apply(hidden, weight, target, bias, class_weight, o: _Opts,
           par: _Parallel | None = None) -> LinearCrossEntropyOutput:
    for t, name in ((hidden, "hidden"), (weight, "weight"), (target, "target"), (bias, "bias"),
                    (class_weight, "class_weight")):
        _check_tensor(t, name)
    if class_weight is not None and class_weight.requires_grad:
        raise ValueError("class_weight must not require grad (it is not differentiated)")
    loss, z, lse, lp, ent, am = _FusedLinearCE.apply(hidden, weight, bias, target, class_weight,
                                                     o, par)
    want = set(o.outputs)
    accuracy = None
    if "argmax" in want:
        t = target.reshape(-1)
        kept = torch.ones_like(t, dtype=torch.bool) if o.ignore_index is None else t != o.ignore_index
        accuracy = float((am[kept] == t[kept]).double().mean()) if bool(kept.any()) else math.nan
    return LinearCrossEntropyOutput(
        loss, z, lse if "lse" in want else None, lp if "logprob" in want else None,
        ent if "entropy" in want else None, am if "argmax" in want else None, accuracy,
    )


def fused_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
    bias: torch.Tensor | None = None, class_weight: torch.Tensor | None = None,
    ignore_index: int | None = -100, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Differentiable :func:`softmaxkit.linear_cross_entropy` on torch tensors.

    ``cross_entropy(softcap * tanh((hidden @ weight.T + bias) / softcap) / temperature,
    target)`` plus PaLM's ``z_loss * lse**2``, chunked so the (N, V) logits never
    exist; the gradients of ``hidden``, ``weight`` and ``bias`` come from the same
    chunked pass (see :mod:`softmaxkit._linear_ce` for every option's formula).

    Parameters
    ----------
    hidden : Tensor (N, H)
    weight : Tensor (V, H)
    target : int Tensor (N,)
    bias : Tensor (V,), optional
    class_weight : Tensor (V,), optional
        PyTorch's ``weight=`` of ``cross_entropy`` (not differentiated).
    ignore_index : int or None, default -100
        As in torch (None: no label is ignored).
    label_smoothing, reduction, z_loss, softcap, temperature, chunk_size
        As in :func:`softmaxkit.linear_cross_entropy`.

    Returns
    -------
    Tensor
        The loss (z-loss included): a scalar, or (N,) for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import fused_linear_cross_entropy
    >>> h = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    >>> w = torch.tensor([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]], requires_grad=True)
    >>> t = torch.tensor([0, 2])
    >>> loss = fused_linear_cross_entropy(h, w, t)
    >>> loss.backward()
    >>> torch.allclose(loss, torch.nn.functional.cross_entropy(h @ w.T, t))
    True
    """
    o = _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, (), chunk_size)
    return _apply(hidden, weight, target, bias, class_weight, o).loss


def fused_linear_cross_entropy_full(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
    bias: torch.Tensor | None = None, class_weight: torch.Tensor | None = None,
    ignore_index: int | None = -100, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    outputs: tuple[str, ...] = (), chunk_size: int | None = None,
) -> LinearCrossEntropyOutput:
    r""":func:`fused_linear_cross_entropy` with per-row outputs from the same pass.

    ``outputs`` names any of "lse", "logprob", "entropy", "argmax" (see
    :func:`softmaxkit.linear_cross_entropy_full`). ``loss``, ``z_loss``, ``logprob``
    and ``entropy`` are differentiable (an RL objective such as
    ``-(advantage * logprob).sum() - beta * entropy.mean()`` backpropagates into
    ``hidden`` and ``weight`` exactly, the chunks recomputed in backward).

    Returns
    -------
    LinearCrossEntropyOutput
        Always this named tuple; outputs not asked for are None.

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import fused_linear_cross_entropy_full
    >>> h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    >>> w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    >>> out = fused_linear_cross_entropy_full(h, w, torch.tensor([0, 1, 2, 3]),
    ...                                       outputs=("logprob", "entropy"))
    >>> (-out.logprob.sum() - 0.01 * out.entropy.sum()).backward()
    >>> h.grad.shape, out.lse is None
    (torch.Size([4, 3]), True)
    """
    o = _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
              chunk_size)
    return _apply(hidden, weight, target, bias, class_weight, o)


class LinearCrossEntropyLoss(torch.nn.Module):
    r"""A language-model head and its cross-entropy in one module, chunked.

    Holds an ``nn.Linear``-style ``weight`` (num_classes, in_features) and optional
    ``bias``, as Liger-Kernel's fused linear cross-entropy does, and returns the loss
    of ``hidden @ weight.T + bias`` against ``target`` without the (N, V) logits.
    Options are fixed at construction (those of :func:`fused_linear_cross_entropy`).

    Examples
    --------
    >>> import torch
    >>> from softmaxkit.torch import LinearCrossEntropyLoss
    >>> head = LinearCrossEntropyLoss(3, 5, z_loss=1e-4, dtype=torch.float64)
    >>> loss = head(torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 4]))
    >>> loss.backward()
    >>> head.weight.grad.shape
    torch.Size([5, 3])
    """

    def __init__(self, in_features: int, num_classes: int, bias: bool = False, *,
                 class_weight: torch.Tensor | None = None, ignore_index: int | None = -100,
                 label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
                 softcap: float | None = None, temperature: float = 1.0,
                 chunk_size: int | None = None, device=None, dtype=None):
        super().__init__()
        lin = torch.nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.in_features, self.num_classes = in_features, num_classes
        self.weight = lin.weight
        self.bias = lin.bias
        self.register_buffer("class_weight", class_weight)
        self.opts = _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature,
                          (), chunk_size)
        # validate the options now, not at the first forward
        _linear_ce._prepare(np.zeros((0, 1)), np.zeros((1, 1)), np.zeros(0, np.int64), None, None,
                            ignore_index, label_smoothing, reduction, chunk_size, z_loss=z_loss,
                            softcap=softcap, temperature=temperature)

    def forward(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _apply(hidden, self.weight, target, self.bias, self.class_weight, self.opts).loss

    def full(self, hidden: torch.Tensor, target: torch.Tensor,
             outputs: tuple[str, ...] = ()) -> LinearCrossEntropyOutput:
        """The loss and the per-row ``outputs`` (see :func:`fused_linear_cross_entropy_full`)."""
        return _apply(hidden, self.weight, target, self.bias, self.class_weight,
                      self.opts._replace(outputs=tuple(outputs)))

    def extra_repr(self) -> str:
        o = self.opts
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"bias={self.bias is not None}, reduction={o.reduction!r}, z_loss={o.z_loss}, "
                f"softcap={o.softcap}, temperature={o.temperature}")
