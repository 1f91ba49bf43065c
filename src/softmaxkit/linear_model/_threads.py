"""BLAS thread policy while fitting.

Every solver step is a couple of (rows x features) @ (features x classes) products.
When they are small, OpenBLAS's threads cost more than they bring, and on a busy
machine far more: on the 2-core development machine under load, the digits fit
(1347 x 64 x 10) took 1.1 s with OpenBLAS's default threads and 27 ms with one
(LogisticRegression: 330 ms and 13 ms). scikit-learn's KMeans also limits BLAS to
one thread around its small per-chunk products. Large products keep BLAS's default,
except inside the objective's blocked pass, which runs its own threads over row
shards and limits BLAS to one thread meanwhile (:func:`one_blas_thread`).
threadpoolctl comes with scikit-learn.
"""
from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["blas_threads_for", "one_blas_thread"]

# Products smaller than this (multiply-adds) run BLAS on one thread while fitting.
_SMALL_PRODUCT = 1 << 23

_controller: Any = None


def _blas_controller():
    global _controller
    if _controller is None:  # inspecting the loaded libraries costs about a millisecond
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread inside the block (restored on exit)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def blas_threads_for(n_rows: int, n_features: int, n_classes: int) -> contextlib.AbstractContextManager:
    """One BLAS thread while fitting when the per-step products are small."""
    if n_rows * n_features * n_classes >= _SMALL_PRODUCT:
        return contextlib.nullcontext()
    return one_blas_thread()
