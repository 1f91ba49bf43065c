"""Fused linear + cross-entropy: the loss of ``hidden @ weight.T + bias`` and its
gradients, without ever holding the (N, V) logits.

A language-model head computes ``logits = hidden @ weight.T`` with hidden (N, H) and
weight (V, H), then the cross-entropy of those logits. With a large vocabulary the
logits dwarf everything else (N=8192, V=65536 float32 is 2 GiB, and its gradient
another 2 GiB), yet each row is only needed long enough to turn it into a loss and a
gradient row. So we go over the rows in chunks (Liger-Kernel's scheme, reference
below), with one reused (chunk, V) buffer:

1. ``z = hidden[c] @ weight.T + bias`` into the buffer;
2. the row statistics of ``z`` (max, sum of exps, target logit, ...) give the per-row
   loss and outputs, and, in place, the gradient ``dL/dz`` (for plain cross-entropy
   the fused C kernel of ``cross_entropy`` does this in one pass);
3. ``grad_hidden[c] = dz @ weight``, ``grad_weight += dz.T @ hidden[c]`` (GEMM with
   beta=1, accumulating in place), ``grad_bias += dz.sum(0)``.

Design notes (measured on the 2-core reference machine, see
docs/linear_cross_entropy.md for the numbers):

a) All three products go through one BLAS, SciPy's GEMM (``C = alpha A B + beta C``
   in place, layouts by the transpose flags): ``grad_weight += dz.T @ hidden`` needs
   ``beta=1``, which ``matmul`` cannot do (a (V, H) temporary would be as large as
   ``grad_weight``). The previous version mixed NumPy's ``matmul`` (two products)
   with SciPy's GEMM (one): two OpenBLAS builds, each with its own thread pool
   whose idle workers spin while the other pool works. Against it, this version
   measured 1.12-1.14x the three whole-batch GEMMs where it measured 1.31-1.44x
   (1024 x 512 x 32000 float32, 2 threads, wall time, best of 4, interleaved), and
   1.06-1.13x against 1.16-1.18x at 1 thread (CPU time): the larger gain at 2
   threads is the pools'. ``z`` is formed as ``z^T = W @ hc^T`` straight into the
   chunk buffer (1/temperature as GEMM's alpha).
b) ``grad_hidden = dz @ weight`` has the vocabulary as its inner dimension; with
   SciPy's GEMM it is 2.5-5x faster at 128-256 rows computed as a Fortran-ordered
   (r, H) block (``op(dz) op(W^T)`` with both transposed, M = r, N = H) than as its
   C-ordered transpose (M = H, N = r), and the other way round from about 512 rows
   inside the pass (whole batches: 1.6-2x); so below :data:`GH_BLOCK_ROWS` rows the
   block is formed in a scratch block and copied into ``grad_hidden``'s rows (r x H,
   small), above it the transpose is written straight into them (H=512 and 1024,
   V~32000 float32, 1 and 2 threads).
c) The chunk is sized from the shape: the largest chunk whose buffers fit in
   ``max(32 MiB, 3% of the (N, V) logits)`` (``chunk_size=`` overrides it), then
   evened out so the last chunk is not a sliver.
d) Plain cross-entropy (class weights, ignore_index, label smoothing, temperature)
   runs on the C kernel of ``cross_entropy``; the other options (z-loss, softcap,
   per-row outputs, upstream gradients for them) run on a vectorised NumPy chunk
   pass (:func:`_stats_chunk`), a few passes over the chunk, never a Python loop
   per row. The same NumPy pass, given a communicator, is the vocab-parallel path
   of :mod:`softmaxkit.torch (vocab parallel)`: the row statistics of each shard are
   combined by one max and one sum all-reduce.
e) The cross-entropy kernel between the products runs on :data:`CE_THREADS` thread
   (1), beside the BLAS pool's spinning worker rather than against it; it is 1-3%
   of the time, and two kernel threads measured a few percent slower over the pass
   (within the noise of the shared machine).

Semantics of the options (one home, used by every caller):

* logits ``z = softcap * tanh((hidden @ weight.T + bias) / softcap) / temperature``
  (softcap first, as Gemma 2's final-logit soft-capping is part of the model; the
  temperature last, as an RL sampler applies it);
* ``lse = logsumexp(z)``; the cross-entropy row is PyTorch's
  ``w[y] (1 - eps) (lse - z[y]) + (eps / V) sum_j w[j] (lse - z[j])``;
* the PaLM z-loss row is ``z_loss * w[y] * lse**2`` (the row's class weight, so the
  "mean" divides both terms by the same total weight); ignored rows get neither;
* the reported loss includes the z-loss; ``z_loss`` is also reported on its own.

References
----------
Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training" (2024),
section on FusedLinearCrossEntropy. Chowdhery et al., "PaLM" (2022), section 5
(z-loss). Gemma Team, "Gemma 2" (2024), logit soft-capping. Wijmans et al., "Cut
Your Losses in Large-Vocabulary Language Models" (2024).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _config, _kernels, _reduction
from ._validation import (
    check_bool,
    check_ignore_index,
    check_names,
    check_reduction,
    check_smoothing,
    check_softcap,
    check_temperature,
    check_z_loss,
    compute_dtype,
    hard_target,
)

__all__ = [
    "linear_cross_entropy",
    "linear_cross_entropy_and_grad",
    "linear_cross_entropy_full",
    "LinearCrossEntropyResult",
]

# Extra memory for the chunk buffers: the larger of this floor and CHUNK_FRACTION of
# the (N, V) logits the unfused path would hold. Below ~128 rows per chunk the
# accumulating grad_weight GEMM (inner dimension = the chunk's rows) and the reads
# of grad_weight per chunk start to cost; 32 MiB is 256 rows at V=32768 float32.
CHUNK_FLOOR_BYTES = 32 * 2**20
CHUNK_FRACTION = 0.03
# ... but never fewer rows than this (or the batch): each chunk's products re-pack
# all of W (OpenBLAS has no packed-weight GEMM), an overhead of about 1/rows that the
# memory bound alone drives to 2.3x the GEMMs at N=1024, V=262144 (32-row chunks).
# Measured (float32, 2 threads, 2026-11-22, docs/linear_cross_entropy.md): 256 rows
# is 1.11x the GEMMs there (256 MiB = 25% of the logits; the unfused path holds
# 150%), 128 rows 1.24x. Where the memory bound allows more rows it applies as is.
CHUNK_MIN_ROWS = 256

# Threads of the cross-entropy kernel between the chunk's products (design note e).
CE_THREADS = 1

# grad_hidden's product for chunks of fewer rows is formed as a Fortran-ordered block
# (design note b); inside the pass at H=512, V=32000 float32, 2 threads, the block was
# 2.6-5x slower than the transpose at 512 rows and ~4x faster at 256.
GH_BLOCK_ROWS = 512

OUTPUTS = ("lse", "logprob", "entropy", "argmax")


class LinearCrossEntropyResult(NamedTuple):
    """Everything one pass of :func:`linear_cross_entropy_full` computed.

    Always this type, whatever was asked; fields that were not asked for are None.
    Per-row fields have shape (N,) and are computed for every row (ignored rows
    included) except ``logprob``, which is 0 at ignored rows.
    """

    loss: Any  #: the reduced loss, z-loss term included (array (N,) for "none")
    z_loss: Any  #: the z-loss term alone, reduced the same way (0 when z_loss=0)
    lse: np.ndarray | None  #: logsumexp of each row's logits (float64)
    logprob: np.ndarray | None  #: log-probability of each row's target (float64)
    entropy: np.ndarray | None  #: entropy of each row's softmax (float64, nats)
    argmax: np.ndarray | None  #: int64 index of each row's largest logit
    accuracy: float | None  #: fraction of counted rows whose argmax is the target
    grad_hidden: np.ndarray | None
    grad_weight: np.ndarray | None
    grad_bias: np.ndarray | None


class _Problem(NamedTuple):
    hidden: np.ndarray | None  # (N, H) C-contiguous compute dtype; None: logits given
    weight: np.ndarray | None  # (V_local, H) C-contiguous
    logits: np.ndarray | None  # (N, V_local), only without hidden/weight
    target: np.ndarray  # (N,) int64 global labels in [0, n_classes) or == ignore_index
    bias: np.ndarray | None  # (V_local,)
    class_weight: np.ndarray | None  # (V_local,) compute dtype (this shard's slice)
    ignore_index: int | None
    label_smoothing: float
    chunk: int
    result_dtype: np.dtype
    total_weight: float  # the "mean" divisor: summed class weights of counted rows
    counted: np.ndarray  # (N,) bool: rows that are not ignored
    row_weight: np.ndarray  # (N,) float64: class weight of the label, 0 when ignored
    z_loss: float
    softcap: float | None
    temperature: float
    outputs: frozenset
    n_classes: int  # the whole vocabulary's V (== V_local in one process)
    vocab_start: int  # global index of this shard's first class
    weight_sum: float  # sum of the class weights over the whole vocabulary


class _Coef(NamedTuple):
    """Per-row upstream gradients (float64 (N,) arrays or floats) of the summed
    per-row quantities: the loss row (cross-entropy + z-loss), the z-loss row again
    (gradient of the separately reported z-loss), the target log-probability, the
    entropy and the logsumexp. Zero means "not differentiated"."""

    loss: Any = 0.0
    z_loss: Any = 0.0
    logprob: Any = 0.0
    entropy: Any = 0.0
    lse: Any = 0.0


class _Pass(NamedTuple):
    loss_rows: np.ndarray  # float64 (N,), z-loss included
    z_rows: np.ndarray | None  # float64 (N,) z-loss rows (None when z_loss == 0)
    lse: np.ndarray | None
    logprob: np.ndarray | None
    entropy: np.ndarray | None
    argmax: np.ndarray | None
    grads: tuple  # (grad_hidden, grad_weight, grad_bias), None where not formed


class _Local:
    """The communicator of a single process: every reduction is the identity. The
    vocab-parallel one (softmaxkit.torch (vocab parallel)) all-reduces across ranks."""

    def max(self, a: np.ndarray) -> np.ndarray:
        return a

    def sum(self, a: np.ndarray) -> np.ndarray:
        return a

    def min(self, a: np.ndarray) -> np.ndarray:
        return a


_LOCAL = _Local()


# ------------------------------------------------------------------ validation


def _float_matrix(x: Any, name: str, ndim: int) -> np.ndarray:
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        want = {"hidden": "(N, H)", "weight": "(V, H)", "logits": "(N, V)"}.get(name, "(V,)")
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    return arr


def _chunk_rows(n: int, v: int, hdim: int, itemsize: int, nbuf: int, chunk_size: Any) -> int:
    """Rows per chunk: ``chunk_size``, or the most whose buffers fit the budget but at
    least ``CHUNK_MIN_ROWS`` (or the batch)."""
    if chunk_size is not None:
        if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        return max(1, min(int(chunk_size), n))
    if n == 0:
        return 1
    budget = max(CHUNK_FLOOR_BYTES, CHUNK_FRACTION * n * v * itemsize)
    per_row = (nbuf * v + hdim) * itemsize + 64  # the buffers, gh scratch, O(1) per row
    rows = max(1, min(n, max(int(budget // per_row), CHUNK_MIN_ROWS)))
    pieces = -(-n // rows)  # even chunks: 1000 rows at 400 a chunk -> 3 x 334, not 400+400+200
    return max(1, -(-n // pieces))


def _prepare(hidden, weight, target, bias, class_weight, ignore_index, label_smoothing,
             reduction, chunk_size, *, z_loss=0.0, softcap=None, temperature=1.0,
             outputs=(), logits=None, n_classes=None, vocab_start=0, chunk_classes=None,
             grad_coef=False) -> _Problem:
    """Validate every argument and bring the arrays to one compute dtype.

    ``logits`` (N, V_local) replaces ``hidden`` and ``weight`` (vocab-parallel
    cross-entropy of given logits). ``n_classes`` and ``vocab_start`` place this
    process's classes in the whole vocabulary (one process: all of it); every
    process must then use the same chunks (their collectives pair up), so the chunk
    is sized from ``chunk_classes`` (the largest shard) rather than the local V. A
    ``class_weight`` is given for the whole vocabulary.
    """
    if logits is None:
        h = _float_matrix(hidden, "hidden", 2)
        w = _float_matrix(weight, "weight", 2)
        n, hdim = h.shape
        v = w.shape[0]
        if w.shape[1] != hdim:
            raise ValueError(
                f"weight must have shape (V, H) with H = hidden.shape[1] = {hdim}, got shape {w.shape}"
            )
        arrays = [h, w]
    else:
        z0 = _float_matrix(logits, "logits", 2)
        n, v = z0.shape
        hdim = 0
        arrays = [z0]
    if n_classes is None:
        n_classes, vocab_start = v, 0
    if v == 0:
        what = "weight must have at least one row (class), got shape (0, H)"
        raise ValueError(what if logits is None else "logits must have at least one class (column)")
    b = None if bias is None else _float_matrix(bias, "bias", 1)
    if b is not None and b.shape != (v,):
        raise ValueError(f"bias must have shape (V,) = ({v},), got shape {b.shape}")
    common = np.result_type(*(a.dtype for a in arrays), *(() if b is None else (b.dtype,)))
    work, result = compute_dtype(common, "hidden" if logits is None else "logits")
    # C-contiguous operands in the compute dtype: the GEMM calls read them as the
    # Fortran-ordered transposes without a copy (a copy only for other layouts).
    if logits is None:
        h = np.ascontiguousarray(h, dtype=work)
        w = np.ascontiguousarray(w, dtype=work)
        z0 = None
    else:
        h = w = None
        z0 = np.asarray(z0, dtype=work)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=work)

    check_reduction(reduction)
    eps = check_smoothing(label_smoothing)
    zl = check_z_loss(z_loss)
    cap = check_softcap(softcap)
    temp = check_temperature(temperature)
    outs = check_names(outputs, "outputs", OUTPUTS)
    ignore = check_ignore_index(ignore_index)

    t = target if isinstance(target, np.ndarray) else np.asarray(target)
    t = hard_target(t, n_classes, (n,), ignore, "(N,), one label per row of hidden")
    counted = np.ones(n, dtype=bool) if ignore is None else t != ignore

    cw = None
    if class_weight is not None:
        cw_full = np.asarray(class_weight)
        if cw_full.dtype.kind not in "fiub":
            raise TypeError(f"class_weight must be an array of real numbers, got dtype {cw_full.dtype}")
        if cw_full.shape != (n_classes,):
            raise ValueError(
                f"class_weight must have shape (V,) = ({n_classes},), got shape {cw_full.shape}"
            )
        ok = np.isfinite(cw_full) & (cw_full >= 0)
        if not ok.all():
            i = int(np.argmax(~ok))
            raise ValueError(
                f"class_weight must be finite and >= 0, got class_weight[{i}] = {cw_full[i]}"
            )
        cw64 = cw_full.astype(np.float64)
        roww = np.where(counted, cw64[np.where(counted, t, 0)], 0.0)
        wsum = float(cw64.sum())
        # the kernel reads the weights in the logits' dtype
        cw = np.ascontiguousarray(cw_full[vocab_start:vocab_start + v], dtype=work)
    else:
        roww = counted.astype(np.float64)
        wsum = float(n_classes)
    total = float(roww.sum())
    nbuf = 1
    if cap is not None or zl > 0 or outs or grad_coef or n_classes != v:
        nbuf = 2 + (cap is not None) + ("entropy" in outs or grad_coef)
    chunk = _chunk_rows(n, v if chunk_classes is None else int(chunk_classes), hdim,
                        work.itemsize, nbuf, chunk_size)
    return _Problem(h, w, z0, t, b, cw, ignore, eps, chunk, result, total, counted,
                    roww, zl, cap, temp, outs, int(n_classes), int(vocab_start), wsum)


# ------------------------------------------------------------------ the chunk pass


def _gemm(dtype: np.dtype) -> Callable:
    # Imported on first use: importing scipy.linalg added ~0.15 s to `import softmaxkit`.
    from scipy.linalg.blas import dgemm, sgemm

    return sgemm if dtype == np.float32 else dgemm


def _into(res: np.ndarray, dest: np.ndarray) -> None:
    """GEMM wrote into ``dest`` (overwrite_c); a wrapper that copied gets copied back."""
    if res.ctypes.data != dest.ctypes.data:
        dest[...] = res


def _is_simple(p: _Problem, coef: _Coef, comm) -> bool:
    """True when the C cross-entropy kernel computes everything asked for."""
    return (comm is _LOCAL and p.logits is None and p.softcap is None and p.z_loss == 0.0
            and not p.outputs and _zero(coef.z_loss) and _zero(coef.logprob)
            and _zero(coef.entropy) and _zero(coef.lse))


def _zero(c: Any) -> bool:
    return bool(np.all(np.asarray(c) == 0))


def _rows(c: Any, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of a per-row coefficient given as an array or a scalar."""
    if np.ndim(c) == 0:
        return np.full(stop - start, float(c))
    return np.asarray(c, dtype=np.float64)[start:stop]


def _pass(p: _Problem, coef: _Coef | None = None, need: tuple = (False, False, False),
          comm: Any = _LOCAL) -> _Pass:
    """The chunked loop: per-row losses, the outputs ``p.outputs``, and the gradients
    of ``sum_i coef.loss[i] * loss_i + coef.z_loss[i] * zloss_i + coef.logprob[i] *
    logprob_i + coef.entropy[i] * entropy_i`` that ``need`` asks for (hidden, weight,
    bias; with ``p.logits`` the first is the gradient of the logits). ``coef=None``:
    no gradient."""
    n = p.target.shape[0]
    if p.logits is None:
        hdim, v = p.hidden.shape[1], p.weight.shape[0]
        dtype = p.hidden.dtype
    else:
        hdim, v = 0, p.logits.shape[1]
        dtype = p.logits.dtype
    if coef is None:
        need = (False, False, False)
    want_grad = any(need)
    coef = coef or _Coef()
    simple = _is_simple(p, coef, comm)
    nthreads = _config.get_num_threads()
    outs = p.outputs

    loss_rows = np.zeros(n)
    z_rows = np.zeros(n) if p.z_loss > 0 else None
    stats = {o: (np.zeros(n, np.int64) if o == "argmax" else np.zeros(n)) for o in outs}
    if p.logits is None:
        grad_h = np.empty((n, hdim), dtype=dtype) if need[0] else None
        # no zero fill: the first chunk's product overwrites it (beta=0)
        grad_w = np.empty((v, hdim), dtype=dtype) if need[1] else None
    else:
        grad_h = np.empty((n, v), dtype=dtype) if need[0] else None
        grad_w = None
    grad_b = np.zeros(v, dtype=dtype) if (need[2] and p.bias is not None) else None
    if n == 0:
        if grad_w is not None:
            grad_w[...] = 0
        return _Pass(loss_rows, z_rows, *(stats.get(o) for o in OUTPUTS), (grad_h, grad_w, grad_b))

    gemm = _gemm(dtype)
    c = p.chunk
    buf = np.empty((c, v), dtype=dtype)
    spare = None if simple else [np.empty((c, v), dtype=dtype) for _ in range(2 if p.softcap else 1)]
    # grad_hidden's rows are formed as a Fortran-ordered (r, H) block (design note b)
    gh_scratch = np.empty(c * hdim, dtype=dtype) if (need[0] and p.logits is None) else None
    inv_t = 1.0 / p.temperature
    # The kernel's path folds 1/temperature into the product (alpha) and the bias.
    alpha = inv_t if simple else 1.0
    bias = None if p.bias is None else (p.bias * dtype.type(alpha) if alpha != 1.0 else p.bias)
    wt = None if p.logits is not None else p.weight.T  # (H, V) Fortran-ordered view, no copy

    for start in range(0, n, c):
        stop = min(n, start + c)
        r = stop - start
        z = buf[:r]
        if p.logits is None:
            hc = p.hidden[start:stop]
            # z^T (V, r) = W (V, H) @ hc^T (H, r), written straight into z's memory
            _into(gemm(alpha, wt, hc.T, c=z.T, trans_a=1, overwrite_c=1), z.T)
        else:
            z[...] = p.logits[start:stop]
        if bias is not None:
            z += bias
        if simple:
            scale = _rows(coef.loss, start, stop) * inv_t if want_grad else None
            rows_loss, _, _ = _kernels.ce_hard_rows(
                z, p.target[start:stop], weight=p.class_weight, ignore_index=p.ignore_index,
                label_smoothing=p.label_smoothing, dloss=scale,
                grad_out=z if want_grad else None,  # dL/dz overwrites z, row by row
                nthreads=CE_THREADS if nthreads > 1 else 1,  # design note e
            )
            loss_rows[start:stop] = rows_loss
            dz = z
        else:
            dz = _stats_chunk(p, z, [s[:r] for s in spare], start, stop, coef, want_grad,
                              comm, loss_rows, z_rows, stats)
        if not want_grad:
            continue
        if p.logits is not None:
            if need[0]:
                grad_h[start:stop] = dz
        else:
            if need[0]:
                # grad_h rows (r, H) = dz (r, V) @ W (V, H): below GH_BLOCK_ROWS rows as a
                # Fortran-ordered block copied into the rows, else straight into them as
                # the transpose W^T dz^T (design note b).
                if r < GH_BLOCK_ROWS:
                    ghf = gh_scratch[: r * hdim].reshape(hdim, r).T
                    _into(gemm(1.0, dz.T, wt, c=ghf, trans_a=1, trans_b=1, overwrite_c=1), ghf)
                    grad_h[start:stop] = ghf
                else:
                    ght = grad_h[start:stop].T
                    _into(gemm(1.0, wt, dz.T, c=ght, overwrite_c=1), ght)
            if need[1]:
                # grad_w^T (H, V) (+)= hc^T (H, r) @ dz (r, V), in place (beta=1 after
                # the first chunk).
                _into(gemm(1.0, hc.T, dz.T, beta=0.0 if start == 0 else 1.0, c=grad_w.T,
                           trans_b=1, overwrite_c=1), grad_w.T)
        if grad_b is not None:
            grad_b += dz.sum(axis=0)
    if z_rows is not None:
        loss_rows += z_rows
    return _Pass(loss_rows, z_rows, *(stats.get(o) for o in OUTPUTS), (grad_h, grad_w, grad_b))


def _stats_chunk(p: _Problem, z: np.ndarray, spare: list, start: int, stop: int,
                 coef: _Coef, want_grad: bool, comm, loss_rows, z_rows, stats) -> np.ndarray:
    """Every option on one chunk of raw logits ``z`` (r, V_local), vectorised.

    Fills rows start:stop of the per-row arrays; returns dL/d(raw logits) for the
    chunk (written over ``spare[0]``) when ``want_grad``.

    With ``s = z' - m`` (z' the capped, tempered logits, m the row max over the
    whole vocabulary) and ``e = exp(s)``, ``S = sum e``: ``lse = m + log S``,
    ``logprob = s[y] - log S``, ``entropy = log S - sum(e s) / S``; the per-shard
    sums are all-reduced together, the maxes first (Megatron's scheme). The
    gradient with respect to z' of the weighted sum of the rows is
    ``P * (a + c_ent * (mu - s)) - b * w + d * onehot(y)``, P = e / S, mu = sum P s,
    where a = c_loss (w_y (1-eps) + eps/V sum w) + (c_loss + c_zl) 2 z_loss w_y lse
    - c_lp + c_lse, b = c_loss eps / V, d = c_lp - c_loss w_y (1 - eps); the chain rule then
    multiplies by 1/T and by the softcap's derivative ``1 - tanh(a / cap)**2``.
    """
    r, vl = z.shape
    e = spare[0]
    cnt = p.counted[start:stop]
    rw = p.row_weight[start:stop]
    t = p.target[start:stop]
    eps, V = p.label_smoothing, p.n_classes
    if p.softcap is not None:
        np.divide(z, p.softcap, out=z)
        np.tanh(z, out=z)
        if want_grad:
            f = spare[1]
            np.square(z, out=f)
            np.subtract(1.0, f, out=f)  # d(cap tanh(a / cap)) / da
        np.multiply(z, p.softcap / p.temperature, out=z)
    elif p.temperature != 1.0:
        np.divide(z, p.temperature, out=z)
    # the max over the whole vocabulary (a NaN row stays NaN; an empty shard is -inf)
    m_loc = z.max(axis=1).astype(np.float64) if vl else np.full(r, -np.inf)
    m = comm.max(m_loc)
    m = np.where(np.isfinite(m), m, 0.0)
    np.subtract(z, m[:, None].astype(z.dtype), out=z)  # s; exact 0 at the max
    np.exp(z, out=e)
    tl = t - p.vocab_start
    here = cnt & (tl >= 0) & (tl < vl)  # rows whose target class is in this shard
    hi = np.flatnonzero(here)
    sy = np.zeros(r)
    sy[hi] = z[hi, tl[hi]]
    need_ent = "entropy" in p.outputs or (want_grad and not _zero(coef.entropy))
    parts = [e.sum(axis=1, dtype=np.float64), sy]
    if eps > 0:
        ws = z.sum(axis=1, dtype=np.float64) if p.class_weight is None else z @ p.class_weight
        parts.append(np.asarray(ws, dtype=np.float64))
    if need_ent:
        es = np.multiply(e, z)  # a transient (r, V_local) block, counted in the budget
        parts.append(es.sum(axis=1, dtype=np.float64))
        del es
    red = comm.sum(np.stack(parts))
    S, sy = red[0], red[1]
    k = 2
    if eps > 0:
        ws = red[k]
        k += 1
    if need_ent:
        mu = red[k] / S
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(S)
    lse = m + log_s
    nll = np.where(cnt, log_s - sy, 0.0)
    ce = np.where(rw != 0, rw * (1.0 - eps) * nll, 0.0)
    if eps > 0:
        ce += np.where(cnt, (eps / V) * (p.weight_sum * log_s - ws), 0.0)
    loss_rows[start:stop] = ce
    if z_rows is not None:
        z_rows[start:stop] = p.z_loss * rw * lse**2
    if "lse" in stats:
        stats["lse"][start:stop] = lse
    if "logprob" in stats:
        stats["logprob"][start:stop] = np.where(cnt, sy - log_s, 0.0)
    if "entropy" in stats:
        stats["entropy"][start:stop] = log_s - mu
    if "argmax" in stats:
        # the first index holding the row's max over the whole vocabulary
        idx = z.argmax(axis=1) if vl else np.zeros(r, np.int64)
        at_max = z[np.arange(r), idx] == 0 if vl else np.zeros(r, bool)
        glob = np.where(at_max, idx + p.vocab_start, p.n_classes).astype(np.float64)
        stats["argmax"][start:stop] = comm.min(glob).astype(np.int64)
    if not want_grad:
        return e
    c_loss = _rows(coef.loss, start, stop)
    c_zl = _rows(coef.z_loss, start, stop)
    c_lp = np.where(cnt, _rows(coef.logprob, start, stop), 0.0)
    c_ent = _rows(coef.entropy, start, stop)
    a = c_loss * np.where(cnt, rw * (1.0 - eps) + (eps / V) * p.weight_sum, 0.0)
    if p.z_loss > 0:
        a += (c_loss + c_zl) * 2.0 * p.z_loss * rw * lse
    a -= c_lp
    a += _rows(coef.lse, start, stop)  # d lse / dz' = P
    np.multiply(e, (1.0 / S)[:, None].astype(e.dtype), out=e)  # P
    if need_ent and np.any(c_ent != 0):
        # z (= s) becomes a + c_ent (mu - s), then e = P * z
        np.multiply(z, (-c_ent)[:, None].astype(z.dtype), out=z)
        z += (a + c_ent * mu)[:, None].astype(z.dtype)
        e *= z
    else:
        e *= a[:, None].astype(e.dtype)
    if eps > 0:
        b = np.where(cnt, c_loss * (eps / V), 0.0)
        if p.class_weight is None:
            e -= b[:, None].astype(e.dtype)
        else:
            e -= np.multiply.outer(b.astype(e.dtype), p.class_weight)
    d = c_lp - c_loss * rw * (1.0 - eps)
    e[hi, tl[hi]] += d[hi].astype(e.dtype)
    if p.softcap is not None:
        e *= spare[1]
    if p.temperature != 1.0:
        np.divide(e, p.temperature, out=e)
    return e


# ------------------------------------------------------------ reductions (shared)


def _reduce(p: _Problem, loss_rows: np.ndarray, reduction: str):
    # An empty or all-ignored batch is 0/0 = NaN, as in PyTorch.
    return _reduction.reduce(loss_rows, reduction, p.total_weight, p.result_dtype)


def _grad_scale(p: _Problem, reduction: str) -> float:
    # mean: d(sum / total_weight) = d(sum) / total_weight; nothing counted: zeros;
    # sum, and for "none" the gradient of the sum of the per-row losses: 1.
    return _reduction.mean_scale(reduction, p.total_weight)


def _run(p: _Problem, grad_scale: Any = None, need: tuple = (False, False, False)):
    """(per-row loss float64 (N,), (grad_h, grad_w, grad_b)): the loss and gradient
    part of :func:`_pass`, ``grad_scale`` (None, a float or an (N,) array) being the
    upstream gradient of each row's loss."""
    coef = None if grad_scale is None else _Coef(loss=grad_scale)
    res = _pass(p, coef, need)
    return res.loss_rows, res.grads


def _dloss_from_caller(p: _Problem, reduction: str, grad_output: Any) -> Any:
    """The per-row multipliers of the gradient for ``reduction`` and the caller's
    ``grad_output`` (a scalar, or (N,) for "none"; None means 1)."""
    n = p.target.shape[0]
    scale = _grad_scale(p, reduction)
    if grad_output is None:
        return scale
    g = np.asarray(grad_output)
    if g.dtype.kind not in "fiu":
        raise TypeError(f"grad_output must be real numbers, got dtype {g.dtype}")
    want = (n,) if reduction == "none" else ()
    if g.shape != want:
        raise ValueError(
            f"grad_output must have shape {want} for reduction={reduction!r}, got shape {g.shape}"
        )
    g = g.astype(np.float64)
    if not np.isfinite(g).all():
        raise ValueError("grad_output must be finite")
    return g * scale if g.ndim else float(g) * scale


def _cast_grads(p: _Problem, grads: tuple) -> tuple:
    work = (p.hidden if p.logits is None else p.logits).dtype
    if work == p.result_dtype:  # float16 inputs are computed in float32
        return grads
    return tuple(None if g is None else g.astype(p.result_dtype, copy=False) for g in grads)


# ------------------------------------------------------------------ public API


def linear_cross_entropy(
    hidden: npt.ArrayLike, weight: npt.ArrayLike, target: npt.ArrayLike, *,
    bias: npt.ArrayLike | None = None, class_weight: npt.ArrayLike | None = None,
    ignore_index: int | None = None, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Any:
    r"""Cross-entropy of the logits ``hidden @ weight.T + bias``, without forming them.

    Equal to ``cross_entropy(hidden @ weight.T + bias, target, ...)`` (PyTorch's
    semantics for ``class_weight`` (its ``weight``), ``ignore_index``,
    ``label_smoothing`` and ``reduction``) but the (N, V) logits are computed and
    consumed ``chunk_size`` rows at a time:

    .. math:: \ell_i = w_{y_i}\bigl(\operatorname{lse}(z_i) - z_{i, y_i}\bigr)
              + \zeta\, w_{y_i} \operatorname{lse}(z_i)^2,\qquad
              z_i = \frac{c \tanh\bigl((W h_i + b) / c\bigr)}{T}

    (with label smoothing, PyTorch's mix of that and the mean of ``-log p`` over
    the classes; without ``softcap`` the logits are ``(W h_i + b) / T``).

    Parameters
    ----------
    hidden : array_like, shape (N, H)
        Inputs of the last linear layer (float32 or float64; mixed dtypes are
        computed in the wider one, ints in float64).
    weight : array_like, shape (V, H)
        The layer's weight, one row per class (as in ``torch.nn.Linear``).
    target : array_like of int, shape (N,)
        Class indices in ``[0, V)``, or ``ignore_index``.
    bias : array_like, shape (V,), optional
    class_weight : array_like, shape (V,), optional
        Per-class weights (finite, >= 0): PyTorch's ``weight`` argument.
    ignore_index : int, optional
        Rows with this label count for nothing (not in the loss, not in the mean's
        divisor, zero gradient).
    label_smoothing : float in [0, 1], default 0.0
        PyTorch's convention: the target puts ``1 - eps`` on the label and ``eps / V``
        on every class.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" divides by the summed class weights of the counted rows (their number
        without ``class_weight``); an empty or all-ignored batch gives NaN.
    z_loss : float >= 0, default 0.0
        PaLM's auxiliary loss ``z_loss * lse**2`` per counted row (times the row's
        class weight), added to the loss (1e-4 in PaLM).
    softcap : float > 0, optional
        Gemma 2's logit soft-capping ``softcap * tanh(logits / softcap)`` (30.0 in
        Gemma 2), applied before the temperature.
    temperature : float > 0, default 1.0
        The logits are divided by it (after soft-capping).
    chunk_size : int, optional
        Rows per chunk. Default: the most rows whose buffers fit in
        ``max(32 MiB, 3% of the (N, V) logits)``.

    Returns
    -------
    loss : scalar, or ndarray of shape (N,) for ``reduction="none"``
        In the compute dtype (float32 or float64).

    See Also
    --------
    linear_cross_entropy_full : per-row outputs (lse, log-probabilities, entropy,
        argmax) and the z-loss term on its own, from the same pass.

    Notes
    -----
    Extra memory is the chunk buffers plus O(N): at most ``max(32 MiB, 3% of the
    logits)`` by default. See docs/linear_cross_entropy.md for the accuracy in
    float32.

    References
    ----------
    Hsu et al., "Liger Kernel" (2024); Chowdhery et al., "PaLM" (2022);
    Gemma Team, "Gemma 2" (2024).

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])  # 3 classes
    >>> round(float(smk.linear_cross_entropy(hidden, weight, [0, 2])), 6)
    1.323575
    >>> logits = hidden @ weight.T
    >>> round(float(smk.cross_entropy(logits, np.array([0, 2]))), 6)
    1.323575
    """
    p = _prepare(hidden, weight, target, bias, class_weight, ignore_index, label_smoothing,
                 reduction, chunk_size, z_loss=z_loss, softcap=softcap, temperature=temperature)
    return _reduce(p, _pass(p).loss_rows, reduction)


def linear_cross_entropy_and_grad(
    hidden: npt.ArrayLike, weight: npt.ArrayLike, target: npt.ArrayLike, *,
    bias: npt.ArrayLike | None = None, class_weight: npt.ArrayLike | None = None,
    ignore_index: int | None = None, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    grad_output: npt.ArrayLike | None = None, chunk_size: int | None = None,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    r"""Loss of :func:`linear_cross_entropy` and its gradients, in one chunked pass.

    With ``dz = dL/dz`` for the raw logits ``z = hidden @ weight.T + bias`` (for plain
    cross-entropy ``scale * (softmax(z) - q)``, ``q`` the smoothed target):

    .. math:: \frac{\partial L}{\partial \text{hidden}} = dz\, W,\quad
              \frac{\partial L}{\partial W} = dz^\top \text{hidden},\quad
              \frac{\partial L}{\partial b} = \textstyle\sum_i dz_i

    Parameters are those of :func:`linear_cross_entropy`, and:

    grad_output : float, or array_like (N,) for ``reduction="none"``, optional
        The upstream gradient: the gradients returned are those of
        ``grad_output * loss`` (for "none": of ``sum_i grad_output[i] * loss[i]``,
        exactly, whatever the per-row values). Default 1.

    Returns
    -------
    loss : scalar, or ndarray (N,) for ``reduction="none"``
    (grad_hidden, grad_weight, grad_bias) : ndarrays of shapes (N, H), (V, H), (V,)
        ``grad_bias`` is None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    >>> loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(hidden, weight, [0, 2])
    >>> gh.shape, gw.shape, gb is None
    ((2, 2), (3, 2), True)
    >>> _, g = smk.cross_entropy_and_grad(hidden @ weight.T, np.array([0, 2]))
    >>> bool(np.allclose(gw, g.T @ hidden))
    True
    """
    p = _prepare(hidden, weight, target, bias, class_weight, ignore_index, label_smoothing,
                 reduction, chunk_size, z_loss=z_loss, softcap=softcap, temperature=temperature)
    coef = _Coef(loss=_dloss_from_caller(p, reduction, grad_output))
    res = _pass(p, coef, (True, True, True))
    return _reduce(p, res.loss_rows, reduction), _cast_grads(p, res.grads)


def linear_cross_entropy_full(
    hidden: npt.ArrayLike, weight: npt.ArrayLike, target: npt.ArrayLike, *,
    bias: npt.ArrayLike | None = None, class_weight: npt.ArrayLike | None = None,
    ignore_index: int | None = None, label_smoothing: float = 0.0, reduction: str = "mean",
    z_loss: float = 0.0, softcap: float | None = None, temperature: float = 1.0,
    outputs: tuple[str, ...] = (), grad: bool = False,
    grad_output: npt.ArrayLike | None = None, chunk_size: int | None = None,
) -> LinearCrossEntropyResult:
    r"""One pass of :func:`linear_cross_entropy` returning everything asked for.

    Parameters are those of :func:`linear_cross_entropy_and_grad`, and:

    outputs : tuple of {"lse", "logprob", "entropy", "argmax"}, default ()
        Per-row outputs to compute in the same pass, each of shape (N,), of the
        logits ``z`` the loss sees (after ``softcap`` and ``temperature``):
        ``lse = logsumexp(z)``, ``logprob = z[y] - lse`` (0 at ignored rows),
        ``entropy = -sum softmax(z) log softmax(z)``, ``argmax`` (the first index of
        the largest logit; ``accuracy`` is then the fraction of counted rows where it
        equals the target).
    grad : bool, default False
        Also form the three gradients (of the loss, z-loss included, times
        ``grad_output``).

    Returns
    -------
    LinearCrossEntropyResult
        Always this named tuple (loss, z_loss, lse, logprob, entropy, argmax,
        accuracy, grad_hidden, grad_weight, grad_bias); what was not asked for is
        None. ``z_loss`` is the z-loss term alone, reduced like the loss (it is
        also included in ``loss``).

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    >>> res = smk.linear_cross_entropy_full(hidden, weight, [0, 2], z_loss=1e-4,
    ...                                     outputs=("logprob", "entropy", "argmax"))
    >>> np.round(res.logprob, 6), res.argmax, res.accuracy
    (array([-0.407606, -2.239545]), array([0, 0]), 0.5)
    >>> bool(np.isclose(res.loss, -res.logprob.mean() + res.z_loss))
    True
    """
    p = _prepare(hidden, weight, target, bias, class_weight, ignore_index, label_smoothing,
                 reduction, chunk_size, z_loss=z_loss, softcap=softcap, temperature=temperature,
                 outputs=outputs)
    grad = check_bool(grad, "grad")
    coef = _Coef(loss=_dloss_from_caller(p, reduction, grad_output)) if grad else None
    res = _pass(p, coef, (True, True, True) if grad else (False,) * 3)
    z_rows = res.z_rows if res.z_rows is not None else np.zeros_like(res.loss_rows)
    accuracy = None
    if res.argmax is not None:
        hit = res.argmax[p.counted] == p.target[p.counted]
        accuracy = float(hit.mean()) if hit.size else math.nan
    grads = _cast_grads(p, res.grads)
    return LinearCrossEntropyResult(
        _reduce(p, res.loss_rows, reduction), _reduce(p, z_rows, reduction),
        res.lse, res.logprob, res.entropy, res.argmax, accuracy, *grads,
    )
