"""Vocab-parallel cross-entropy on torch.distributed (tensor parallelism of the head).

Each process of ``group`` holds a contiguous slice of the vocabulary, ordered by
rank: rows ``vocab_start : vocab_start + V_local`` of the head's weight (or the
matching columns of the logits). Shards may differ in size. Per chunk of rows, every
process computes its shard's statistics and they are combined across the group
(Megatron-LM's ``_VocabParallelCrossEntropy`` scheme, Shoeybi et al. 2019):

1. an all-reduce MAX of each row's largest logit;
2. one all-reduce SUM of the stacked per-row sums over the shard (sum of exps
   relative to that max, the target's logit from the shard that holds it, and,
   when asked for, the smoothing and entropy sums); Megatron issues the sum of exps
   and the target logit as two all-reduces, here they travel together;
3. (only with the ``argmax`` output) an all-reduce MIN of the first index at the max.

All-reduces run in float32 for float32/float16/bfloat16 inputs (gloo cannot reduce
bfloat16) and float64 for float64. The gradient of each process's weight shard (or
logits shard) is local; the gradient of ``hidden`` is the sum of every shard's
``dz @ W_shard``, all-reduced, so every process gets the whole gradient. Every
option of :func:`softmaxkit.linear_cross_entropy` is supported, with the same
semantics (:mod:`softmaxkit._linear_ce`); ``class_weight`` is the whole
vocabulary's (V,), the same on every process.

Every process of the group must call these functions with the same ``hidden``,
``target`` and options (their collectives pair up), and call backward too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ._linear import LinearCrossEntropyOutput, _apply, _opts, _Parallel

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]


class _TorchComm:
    """Row statistics all-reduced with torch.distributed, in ``dtype``."""

    def __init__(self, group: Any, dtype: torch.dtype):
        self.group = group
        self.dtype = dtype

    def _reduce(self, a: np.ndarray, op) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(self.dtype)
        dist.all_reduce(t, op=op, group=self.group)
        return t.to(torch.float64).numpy()

    def max(self, a: np.ndarray) -> np.ndarray:
        return self._reduce(a, dist.ReduceOp.MAX)

    def sum(self, a: np.ndarray) -> np.ndarray:
        return self._reduce(a, dist.ReduceOp.SUM)

    def min(self, a: np.ndarray) -> np.ndarray:
        return self._reduce(a, dist.ReduceOp.MIN)

    def sum_inplace(self, a: np.ndarray) -> None:
        """All-reduce SUM of an array in its own dtype (grad_hidden), in place."""
        t = torch.from_numpy(a)
        if t.dtype in (torch.float16, torch.bfloat16):
            t32 = t.float()
            dist.all_reduce(t32, group=self.group)
            t.copy_(t32)
        else:
            dist.all_reduce(t, group=self.group)


def _layout(v_local: int, vocab_start: int | None, vocab_size: int | None, group: Any
            ) -> tuple[int, int, int]:
    """(vocab_start, n_classes, largest shard) of this process's shard."""
    if vocab_start is None:
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size(group))]
        dist.all_gather(sizes, torch.tensor([v_local], dtype=torch.int64), group=group)
        sizes = [int(s) for s in sizes]
        rank = dist.get_rank(group)
        start, total = sum(sizes[:rank]), sum(sizes)
        if vocab_size is not None and int(vocab_size) != total:
            raise ValueError(f"vocab_size={vocab_size} but the shards hold {total} classes {sizes}")
        return start, total, max(sizes)
    for value, name in ((vocab_start, "vocab_start"), (vocab_size, "vocab_size")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise TypeError(f"{name} must be an int, got {value!r}")
    start = int(vocab_start)
    if vocab_size is None:
        t = torch.tensor([v_local], dtype=torch.int64)
        dist.all_reduce(t, group=group)
        total = int(t)
    else:
        total = int(vocab_size)
    if not 0 <= start <= total - v_local:
        raise ValueError(
            f"vocab_start={start} with a shard of {v_local} classes does not fit a vocabulary of {total}"
        )
    world = dist.get_world_size(group)
    return start, total, -(-total // world)


def _parallel(v_local: int, dtype: torch.dtype, group, vocab_start, vocab_size, logits: bool
              ) -> _Parallel:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "torch.distributed is not initialised: call torch.distributed.init_process_group "
            "first (torchrun does it from its environment variables)"
        )
    start, total, biggest = _layout(v_local, vocab_start, vocab_size, group)
    comm = _TorchComm(group, torch.float64 if dtype == torch.float64 else torch.float32)
    return _Parallel(comm, start, total, biggest, logits)


def vocab_parallel_linear_cross_entropy(
    hidden: torch.Tensor, weight_shard: torch.Tensor, target: torch.Tensor, *,
    bias_shard: torch.Tensor | None = None, class_weight: torch.Tensor | None = None,
    ignore_index: int | None = -100, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    outputs: tuple[str, ...] = (), group: Any = None, vocab_start: int | None = None,
    vocab_size: int | None = None, chunk_size: int | None = None,
) -> LinearCrossEntropyOutput:
    r"""Fused linear + cross-entropy with the head's weight split by vocabulary.

    Equal (to rounding) to ``fused_linear_cross_entropy_full(hidden, W, target, ...)``
    with ``W`` the concatenation of every process's ``weight_shard`` in rank order,
    without any process holding ``W`` or the (N, V) logits.

    Parameters
    ----------
    hidden : Tensor (N, H)
        The same on every process of the group.
    weight_shard : Tensor (V_local, H)
        This process's rows of the weight: classes ``vocab_start : vocab_start + V_local``.
    target : int Tensor (N,)
        Global class indices in ``[0, V)`` (or ``ignore_index``), the same everywhere.
    bias_shard : Tensor (V_local,), optional
    class_weight : Tensor (V,), optional
        The whole vocabulary's class weights, the same everywhere.
    group : ProcessGroup, optional
        Default: the default group.
    vocab_start : int, optional
        This shard's first class. Default: found by all-gathering the shard sizes
        (shards are contiguous and ordered by rank).
    vocab_size : int, optional
        The whole vocabulary's V (saves a collective when ``vocab_start`` is given).
    ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs, chunk_size
        As in :func:`softmaxkit.linear_cross_entropy_full`.

    Returns
    -------
    LinearCrossEntropyOutput
        The loss, the z-loss, and the per-row outputs, equal on every process.
        ``hidden`` receives the whole gradient on every process (all-reduced),
        ``weight_shard`` and ``bias_shard`` their own rows'.

    Examples
    --------
    A group of one process (torchrun starts many; see docs/linear_cross_entropy.md):

    >>> import tempfile, torch, torch.distributed as dist
    >>> from softmaxkit.torch import vocab_parallel_linear_cross_entropy
    >>> store = tempfile.NamedTemporaryFile(delete=False).name
    >>> dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    >>> h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    >>> w = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    >>> t = torch.tensor([0, 5, 2, 1])
    >>> out = vocab_parallel_linear_cross_entropy(h, w, t, outputs=("entropy",))
    >>> out.loss.backward()
    >>> dist.destroy_process_group()
    >>> bool(torch.isclose(out.loss, torch.nn.functional.cross_entropy(h @ w.T, t)))
    True
    """
    _check_2d(weight_shard, "weight_shard")
    par = _parallel(weight_shard.shape[0], weight_shard.dtype, group, vocab_start, vocab_size,
                    logits=False)
    o = _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
              chunk_size)
    return _apply(hidden, weight_shard, target, bias_shard, class_weight, o, par)


def vocab_parallel_cross_entropy(
    logits_shard: torch.Tensor, target: torch.Tensor, *, class_weight: torch.Tensor | None = None,
    ignore_index: int | None = -100, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    outputs: tuple[str, ...] = (), group: Any = None, vocab_start: int | None = None,
    vocab_size: int | None = None,
) -> LinearCrossEntropyOutput:
    r"""Cross-entropy of logits split by vocabulary across the processes of ``group``.

    ``logits_shard`` (N, V_local) holds columns ``vocab_start : vocab_start + V_local``
    of the (N, V) logits (Megatron's ``vocab_parallel_cross_entropy``). The options,
    outputs and semantics are those of :func:`vocab_parallel_linear_cross_entropy`;
    ``logits_shard`` receives the gradient of its own columns.

    Returns
    -------
    LinearCrossEntropyOutput
    """
    _check_2d(logits_shard, "logits_shard")
    par = _parallel(logits_shard.shape[1], logits_shard.dtype, group, vocab_start, vocab_size,
                    logits=True)
    o = _opts(ignore_index, label_smoothing, reduction, z_loss, softcap, temperature, outputs,
              None)
    return _apply(logits_shard, None, target, None, class_weight, o, par)


def _check_2d(t: Any, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
