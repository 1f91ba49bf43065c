# The cross-entropy C kernels (losses_module.c). Private: use softmaxkit's functions.
#
# x, q, weight and grad are C-contiguous buffers of one float dtype, float32 or
# float64, chosen by x; target is int64; loss, roww and gscale are float64. Sizes
# are checked against rows * cols (x, q, grad), rows (target, loss, roww, gscale)
# and cols (weight) before the kernel runs. weight, gscale and grad may be None;
# grad None runs the forward alone; grad may be x itself. Misaligned buffers are
# copied to aligned memory around the call. The GIL is released while a kernel runs.
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", npt.NDArray[np.float32], npt.NDArray[np.float64])
_F64 = npt.NDArray[np.float64]
# ce_hard also takes 16-bit logits: bfloat16 as a uint16 view of its bits, or float16,
# with grad of the same type and float32 weight (computed in float32).
_FH = TypeVar("_FH", npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.uint16],
              npt.NDArray[np.float16])

def ce_hard(
    x: _FH, target: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float32] | npt.NDArray[np.float64] | None, ignore_index: int,
    has_ignore: bool, eps: float, loss: _F64, roww: _F64, gscale: _F64 | None, gscale_c: float,
    grad: _FH | None,
    rows: int, cols: int, nthreads: int,
    work: npt.NDArray[np.float32] | None = None,  # as _softmax.softmax's, for 16-bit x with grad
    lse: _F64 | None = None,  # 16-bit x: OUT each row's logsumexp, for ce_hard_grad_lse
) -> None: ...
# The gradient of 16-bit x (and grad) from ce_hard's lse, one pass per row.
def ce_hard_grad_lse(
    x: npt.NDArray[np.uint16] | npt.NDArray[np.float16], target: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float32] | None, ignore_index: int, has_ignore: bool, eps: float,
    lse: _F64, gscale: _F64 | None, gscale_c: float,
    grad: npt.NDArray[np.uint16] | npt.NDArray[np.float16], rows: int, cols: int, nthreads: int,
) -> None: ...
def ce_soft(
    x: _F, q: _F, weight: _F | None, eps: float, loss: _F64, gscale: _F64 | None, gscale_c: float,
    grad: _F | None, rows: int, cols: int, nthreads: int,
) -> None: ...

# As in _softmax: the SIMD variant in use, and those this CPU runs.
def simd_variant() -> str: ...
def simd_variants() -> tuple[str, ...]: ...
