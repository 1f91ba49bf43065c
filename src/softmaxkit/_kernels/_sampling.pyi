from typing import Any

# x is a C-contiguous float32 or float64 (rows, cols) buffer; keys, idx and status
# are int64 (key_mode 0: one key per row, 1: keys[0] is the batch's seed,
# 2: one seed per row); logp, probs and work are float64 (work: 2 * nthreads * cols items).
def sample(
    x: Any, keys: Any, key_mode: int, idx: Any, logp: Any, status: Any, rows: int, cols: int, ndraws: int,
    inv_t: float, top_k: int, top_p: float, min_p: float, work: Any, nthreads: int,
) -> None: ...
def sample_probs(
    x: Any, probs: Any, status: Any, rows: int, cols: int, inv_t: float, top_k: int,
    top_p: float, min_p: float, work: Any, nthreads: int,
) -> None: ...
def uniform(key: int, counter: int) -> float: ...
# The SIMD variant this module runs (sk_isa.h; SOFTMAXKIT_SIMD), and those this CPU runs, best first.
def simd_variant() -> str: ...
def simd_variants() -> tuple[str, ...]: ...
