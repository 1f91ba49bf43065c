from typing import Any

# Arrays are C-contiguous buffers: x, q, weight and grad float32 or float64 (all the
# same), target int64, loss, roww and gscale float64. Sizes are checked against
# rows * cols (x, q, grad), rows (target, loss, roww, gscale) and cols (weight)
# before the kernel runs. weight, gscale and grad may be None; grad may be x itself.
def ce_hard(
    x: Any, target: Any, weight: Any, ignore_index: int, has_ignore: bool, eps: float,
    loss: Any, roww: Any, gscale: Any, gscale_c: float, grad: Any,
    rows: int, cols: int, nthreads: int,
) -> None: ...
def ce_soft(
    x: Any, q: Any, weight: Any, eps: float, loss: Any, gscale: Any, gscale_c: float,
    grad: Any, rows: int, cols: int, nthreads: int,
) -> None: ...
