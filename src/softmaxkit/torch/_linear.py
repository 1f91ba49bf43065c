"""PyTorch autograd for softmaxkit's fused linear + cross-entropy (all its options).

Three layers, as Liger-Kernel's (``ops/fused_linear_cross_entropy.py`` -> an
``autograd.Function`` -> a module): the chunked NumPy/BLAS pass of
:mod:`softmaxkit._linear_ce` does the work; two custom operators with registered
autograd wire it into torch; :func:`fused_linear_cross_entropy` /
:func:`fused_linear_cross_entropy_full` and :class:`LinearCrossEntropyLoss` are thin
shells over them.

Backward. When the loss is reduced ("mean"/"sum") and no per-row output is
differentiated, the forward forms the gradients in the same pass and the backward
only scales them by the incoming scalar (one pass in all). Otherwise (reduction
"none", or a gradient flowing into ``z_loss``, ``lse``, ``logprob`` or ``entropy``) the
per-row upstream gradients are only known in backward, and the backward recomputes
the chunks with them: exact for any upstream gradient, at the price of a second
pass (torch's own chunked ``linear_cross_entropy`` does the same).

Custom operators. On one process the pass runs as two registered custom operators,
``torch.ops.softmaxkit.linear_cross_entropy`` (the forward, with the one-pass
gradients as extra outputs) and ``torch.ops.softmaxkit.linear_cross_entropy_backward``
(the recomputing backward, or the scaling of the one-pass gradients), each with a
fake implementation: ``torch.compile(fullgraph=True)`` traces a model using them with
no graph break. The vocab-parallel path (a communicator is no operator argument)
stays an ``autograd.Function`` (:class:`_FusedLinearCE`).

Double backward. When a graph of the backward is asked for (``create_graph=True``:
gradient penalties, Hessian-vector products, ``gradgradcheck``), the backward is
computed instead by :func:`_torch_grads`: the same chunked pass written in torch
operations (logits recomputed chunk by chunk in torch, the analytic ``dL/dz`` of
every option, then the three products), so autograd differentiates it again, to
any order, exactly as the unfused ``F.cross_entropy(hidden @ W.T + b, ...)``. That
path is for exactness, not speed; an ordinary backward never takes it. The
vocab-parallel path has no double backward (a RuntimeError says so).

Tensors: CPU, float32 or float64 (float16 and bfloat16 are computed in float32 and
returned in their dtype); other devices raise ValueError.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from .. import _linear_ce, _reduction
from .._validation import check_names

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
        # lse is seldom differentiated: asking for it does not rule out the one pass (a
        # gradient flowing into it makes the backward recompute)
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
                "softmaxkit's vocab-parallel linear cross-entropy has no double backward: "
                "its backward is a NumPy pass with collectives, not torch operations "
                "(create_graph=True is not supported there; the single-process "
                "fused_linear_cross_entropy has one)"
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
        coef = _coefs(o.reduction, ctx.total_weight, g_loss, g_z, g_lse, g_lp, g_ent)
        p = _prepare(hidden, weight, bias, target, class_weight, o._replace(outputs=()),
                     ctx.par, grad_coef=True)
        res = _pass(p, coef, ctx.need, ctx.par)
        like = (hidden, weight if weight is not None else hidden, bias if bias is not None else hidden)
        grads = [None if g is None else torch.from_numpy(g).to(t.dtype)
                 for g, t in zip(res.grads, like)]
        return grads[0], grads[1], grads[2], None, None, None, None


def _per_row(g: torch.Tensor | None) -> Any:
    """An upstream gradient as a float (0-d) or a float64 (N,) array; 0.0 for none."""
    if g is None or not g.numel():
        return 0.0
    a = _numpy(g).astype(np.float64)
    return float(a) if a.ndim == 0 else a


def _coefs(reduction: str, total_weight: float, g_loss, g_z, g_lse, g_lp, g_ent) -> _linear_ce._Coef:
    """The per-row coefficients of the recomputing pass: the reduction's factor on the
    loss and z-loss (the per-row outputs are never reduced)."""
    scale = _reduction.mean_scale(reduction, total_weight)
    return _linear_ce._Coef(loss=_per_row(g_loss) * scale, z_loss=_per_row(g_z) * scale,
                            logprob=_per_row(g_lp), entropy=_per_row(g_ent), lse=_per_row(g_lse))


# ------------------------------------------------------------ the custom operators
#
# The options travel as operator arguments (``outputs`` as a comma-separated string,
# ``need`` as the three gradients hidden, weight, bias the forward forms in its one
# pass, all False when the backward recomputes).

_HALF = (torch.float16, torch.bfloat16)


def _grad_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype of a one-pass gradient kept between forward and backward."""
    return torch.float32 if t.dtype in _HALF else t.dtype


def _op_opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
             chunk_size) -> _Opts:
    outs = tuple(o for o in outputs.split(",") if o)
    return _Opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outs,
                 chunk_size)


@torch.library.custom_op("softmaxkit::linear_cross_entropy", mutates_args=(), device_types="cpu")
def _lce_forward(
    hidden: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], target: torch.Tensor,
    class_weight: Optional[torch.Tensor], ignore_index: Optional[int], label_smoothing: float,
    reduction: str, z_loss: float, softcap: Optional[float], temperature: float, outputs: str,
    chunk_size: Optional[int], need: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, z_loss, lse, logprob, entropy, argmax, total_weight, grad_hidden,
    grad_weight, grad_bias): the reduced losses in hidden's dtype, the per-row outputs
    asked for ((0,) where not), the "mean" divisor (float64 0-d), and the gradients
    ``need`` asks for, of the loss alone at an upstream gradient of 1 ((0,) where not)."""
    o = _op_opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
                 chunk_size)
    p = _prepare(hidden, weight, bias, target, class_weight, o, None)
    need = (need[0], need[1], need[2] and bias is not None)
    coef = _linear_ce._Coef(loss=_linear_ce._grad_scale(p, reduction)) if any(need) else None
    res = _linear_ce._pass(p, coef, need)
    z_rows = res.z_rows if res.z_rows is not None else np.zeros_like(res.loss_rows)
    outs = [_out(_linear_ce._reduce(p, res.loss_rows, reduction), hidden),
            _out(_linear_ce._reduce(p, z_rows, reduction), hidden)]
    for name in _DIFF_OUTPUTS:
        v = getattr(res, name)
        outs.append(hidden.new_empty(0) if v is None else _out(v, hidden).clone())
    outs.append(torch.empty(0, dtype=torch.int64) if res.argmax is None else torch.from_numpy(res.argmax))
    outs.append(torch.tensor(p.total_weight, dtype=torch.float64))
    for g, t in zip(res.grads, (hidden, weight, bias if bias is not None else hidden)):
        outs.append(hidden.new_empty(0) if g is None else torch.from_numpy(g).to(_grad_dtype(t)))
    return tuple(outs)


@_lce_forward.register_fake
def _(hidden, weight, bias, target, class_weight, ignore_index, label_smoothing, reduction, z_loss,
      softcap, temperature, outputs, chunk_size, need):
    n = hidden.shape[0]
    outs = outputs.split(",")
    loss_shape = (n,) if reduction == "none" else ()
    res = [hidden.new_empty(loss_shape), hidden.new_empty(loss_shape)]
    res += [hidden.new_empty((n,) if name in outs else (0,)) for name in _DIFF_OUTPUTS]
    res.append(hidden.new_empty((n,) if "argmax" in outs else (0,), dtype=torch.int64))
    res.append(hidden.new_empty((), dtype=torch.float64))
    for k, t in enumerate((hidden, weight, bias)):
        on = need[k] and t is not None
        res.append(hidden.new_empty(t.shape if on else (0,), dtype=_grad_dtype(t) if on else hidden.dtype))
    return tuple(res)


@torch.library.custom_op("softmaxkit::linear_cross_entropy_backward", mutates_args=(),
                         device_types="cpu")
def _lce_backward(
    g_loss: torch.Tensor, g_z: Optional[torch.Tensor], g_lse: Optional[torch.Tensor],
    g_lp: Optional[torch.Tensor], g_ent: Optional[torch.Tensor], hidden: torch.Tensor,
    weight: torch.Tensor, bias: Optional[torch.Tensor], target: torch.Tensor,
    class_weight: Optional[torch.Tensor], total_weight: torch.Tensor, grad_hidden: torch.Tensor,
    grad_weight: torch.Tensor, grad_bias: torch.Tensor, ignore_index: Optional[int],
    label_smoothing: float, reduction: str, z_loss: float, softcap: Optional[float],
    temperature: float, chunk_size: Optional[int], need: list[bool], one_pass: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of hidden, weight and bias (``need``; (0,) where not) for the
    upstream gradients of loss, z_loss, lse, logprob and entropy: the forward's
    one-pass gradients times ``g_loss`` when only the (reduced) loss is
    differentiated, else a recomputing chunked pass with the per-row coefficients."""
    like = (hidden, weight, bias if bias is not None else hidden)
    need = (need[0], need[1], need[2] and bias is not None)
    others = [g for g in (g_z, g_lse, g_lp, g_ent) if g is not None and g.numel() and bool(g.any())]
    if one_pass and not others:
        s = g_loss.double().item()
        return tuple((g * s).to(t.dtype) if on else hidden.new_empty(0)  # g * s: no alias
                     for g, t, on in zip((grad_hidden, grad_weight, grad_bias), like, need))
    o = _Opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, (), chunk_size)
    coef = _coefs(reduction, float(total_weight), g_loss, g_z, g_lse, g_lp, g_ent)
    p = _prepare(hidden, weight, bias, target, class_weight, o, None, grad_coef=True)
    res = _linear_ce._pass(p, coef, need)
    return tuple(hidden.new_empty(0) if g is None else torch.from_numpy(g).to(t.dtype)
                 for g, t in zip(res.grads, like))


@_lce_backward.register_fake
def _(g_loss, g_z, g_lse, g_lp, g_ent, hidden, weight, bias, target, class_weight, total_weight,
      grad_hidden, grad_weight, grad_bias, ignore_index, label_smoothing, reduction, z_loss,
      softcap, temperature, chunk_size, need, one_pass):
    return tuple(t.new_empty(t.shape) if (on and t is not None) else hidden.new_empty(0)
                 for t, on in zip((hidden, weight, bias), need))


_OP_ARGS = ("ignore_index", "label_smoothing", "reduction", "z_loss", "softcap", "temperature",
            "outputs", "chunk_size", "need")


def _lce_setup(ctx, inputs, output):
    hidden, weight, bias, target, class_weight = inputs[:5]
    args = dict(zip(_OP_ARGS, inputs[5:]))
    ctx.opts = _op_opts(*(args[k] for k in _OP_ARGS[:-1]))
    ctx.need = tuple(args["need"])
    ctx.save_for_backward(hidden, weight, bias, target, class_weight, *output[6:])
    ctx.mark_non_differentiable(*output[5:])


def _lce_bwd(ctx, g_loss, g_z, g_lse, g_lp, g_ent, *_non_differentiable):
    hidden, weight, bias, target, class_weight, total, gh, gw, gb = ctx.saved_tensors
    o = ctx.opts
    need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1],
            bias is not None and ctx.needs_input_grad[2])
    if not any(need):
        return (None,) * 14
    if torch.is_grad_enabled():  # create_graph=True: a backward autograd can differentiate
        grads = _torch_grads(hidden, weight, bias, target, class_weight, o, total,
                             (g_loss, g_z, g_lse, g_lp, g_ent), need)
    else:
        grads = torch.ops.softmaxkit.linear_cross_entropy_backward(
            g_loss, g_z, g_lse, g_lp, g_ent, hidden, weight, bias, target, class_weight, total,
            gh, gw, gb, o.ignore_index, o.label_smoothing, o.reduction, o.z_loss, o.softcap,
            o.temperature, o.chunk_size, list(need),
            any(ctx.need) and all(f or not w for f, w in zip(ctx.need, need)))
        grads = [g if on else None for g, on in zip(grads, need)]
    return (*grads, *(None,) * 11)


_lce_forward.register_autograd(_lce_bwd, setup_context=_lce_setup)


def _torch_grads(hidden, weight, bias, target, class_weight, o: _Opts, total: torch.Tensor,
                 upstream: tuple, need: tuple) -> tuple:
    """The backward in torch operations, differentiable again (the double backward).

    The gradient of ``sum_i c_loss[i] loss_i + c_zl[i] zloss_i + c_lse[i] lse_i +
    c_lp[i] logprob_i + c_ent[i] entropy_i`` with respect to hidden, weight and bias,
    chunk by chunk as the NumPy pass (the (chunk, V) logits recomputed in torch), with
    :func:`softmaxkit._linear_ce._stats_chunk`'s analytic ``dL/dz'`` (z' the capped,
    tempered logits, P = softmax(z'), mu = sum P z')::

        P (a + c_ent (mu - z')) - b w + d onehot(y),
        a = c_loss (w_y (1 - eps) + eps/V sum w) + (c_loss + c_zl) 2 z_loss w_y lse
            - c_lp + c_lse,   b = c_loss eps / V,   d = c_lp - c_loss w_y (1 - eps),

    times 1/T and the softcap's ``1 - tanh(a / cap)**2``; then ``dz @ W``, ``dz^T h``
    and ``sum dz``. Every step is a torch op of hidden, weight, bias and the upstream
    gradients (c_loss and c_zl carry the reduction's 1/total_weight, a constant of the
    labels), so autograd's derivative of it is the exact second derivative.
    """
    g_loss, g_z, g_lse, g_lp, g_ent = upstream
    n, v = hidden.shape[0], weight.shape[0]
    dt = torch.promote_types(hidden.dtype, weight.dtype)
    if bias is not None:
        dt = torch.promote_types(dt, bias.dtype)
    h, w = hidden.to(dt), weight.to(dt)
    b = None if bias is None else bias.to(dt)
    counted = torch.ones(n, dtype=torch.bool) if o.ignore_index is None else target != o.ignore_index
    ts = torch.where(counted, target, 0)
    cnt = counted.to(dt)
    if class_weight is None:
        cw, wsum = None, float(v)
        rw = cnt
    else:
        cw = class_weight.to(dt)
        wsum = class_weight.double().sum().item()
        rw = torch.where(counted, cw[ts], 0.0)
    scale = _reduction.mean_scale(o.reduction, float(total))

    def rows(g, reduced):
        if g is None or not g.numel():
            return torch.zeros(n, dtype=dt)
        g = g.to(dt)
        return (g * scale if reduced else g).expand(n)

    c_loss, c_zl = rows(g_loss, True), rows(g_z, True)
    c_lse, c_lp, c_ent = rows(g_lse, False), rows(g_lp, False) * cnt, rows(g_ent, False)
    eps, cap, temp = o.label_smoothing, o.softcap, o.temperature
    chunk = _linear_ce._chunk_rows(n, v, h.shape[1], 8, 6, o.chunk_size) if n else 1
    gh_parts, gw, gb = [], None, None
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        hc = h[sl]
        a_raw = torch.nn.functional.linear(hc, w, b)
        if cap is not None:
            th = torch.tanh(a_raw / cap)
            z = th * (cap / temp)
        else:
            z = a_raw / temp
        lse = torch.logsumexp(z, 1)
        p = torch.exp(z - lse[:, None])
        cl, rwc, cn = c_loss[sl], rw[sl], cnt[sl]
        a = cl * (rwc * (1.0 - eps) + cn * (eps / v * wsum)) - c_lp[sl] + c_lse[sl]
        if o.z_loss > 0:
            a = a + (cl + c_zl[sl]) * (2.0 * o.z_loss) * rwc * lse
        ce = c_ent[sl][:, None]
        mu = (p * z).sum(1, keepdim=True)
        dz = p * (a[:, None] + ce * (mu - z))
        if eps > 0:
            bc = (cl * cn * (eps / v))[:, None]
            dz = dz - (bc if cw is None else bc * cw)
        d = c_lp[sl] - cl * rwc * (1.0 - eps)
        dz = dz + torch.zeros_like(dz).scatter(1, ts[sl][:, None], d[:, None])
        if cap is not None:
            dz = dz * (1.0 - th * th)
        dz = dz / temp
        if need[0]:
            gh_parts.append(dz @ w)
        if need[1]:
            part = dz.T @ hc
            gw = part if gw is None else gw + part
        if need[2]:
            part = dz.sum(0)
            gb = part if gb is None else gb + part
    if n == 0:
        gw = torch.zeros_like(w) if need[1] else None
        gb = torch.zeros_like(b) if need[2] else None
    gh = (torch.cat(gh_parts) if gh_parts else torch.zeros_like(h)) if need[0] else None
    return (None if gh is None else gh.to(hidden.dtype), None if gw is None else gw.to(weight.dtype),
            None if gb is None else gb.to(bias.dtype))


def _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
          chunk_size) -> _Opts:
    if ignore_index is not None and isinstance(ignore_index, torch.Tensor):
        ignore_index = int(ignore_index)
    outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    check_names(outputs, "outputs", _linear_ce.OUTPUTS)
    return _Opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature,
                 outputs, chunk_size)


def _apply(hidden, weight, target, bias, class_weight, o: _Opts,
           par: _Parallel | None = None) -> LinearCrossEntropyOutput:
    for t, name in ((hidden, "hidden"), (weight, "weight"), (target, "target"), (bias, "bias"),
                    (class_weight, "class_weight")):
        _check_tensor(t, name)
    if class_weight is not None and class_weight.requires_grad:
        raise ValueError("class_weight must not require grad (it is not differentiated)")
    if par is None:
        grad_on = torch.is_grad_enabled()
        need = [grad_on and t is not None and t.requires_grad for t in (hidden, weight, bias)]
        # the forward forms the gradients in its pass only when the backward can
        # scale them (a reduced loss and no differentiable per-row output asked for)
        # (lse is seldom differentiated: a gradient flowing into it makes the backward
        # recompute, as one into z_loss does)
        if o.reduction == "none" or set(o.outputs) & {"logprob", "entropy"}:
            need = [False, False, False]
        loss, z, lse, lp, ent, am = torch.ops.softmaxkit.linear_cross_entropy(
            hidden, weight, bias, target, class_weight, o.ignore_index, o.label_smoothing,
            o.reduction, o.z_loss, o.softcap, o.temperature, ",".join(o.outputs), o.chunk_size,
            need)[:6]
    else:
        loss, z, lse, lp, ent, am = _FusedLinearCE.apply(hidden, weight, bias, target,
                                                         class_weight, o, par)
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
