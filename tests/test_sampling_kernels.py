"""The sampling and entmax kernels at the C seam (sampling.h, entmax.h, sk_pybuf.h):
misaligned buffers, and one long row split over threads.

Both modules take their buffers through sk_pybuf.h's sk_take, which copies a
misaligned buffer into aligned memory (and writes an output back), as the softmax and
loss modules do (tests/test_kernel_seam.py): the kernels only ever see aligned
pointers, so the results are the same bits.
"""
from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as smk
from softmaxkit._kernels import _entmax as E
from softmaxkit._kernels import _sampling as D
from test_kernel_seam import misaligned

DTYPES = [np.float64, np.float32]


def _rows(dtype, rows=5, cols=301):
    rng = np.random.default_rng(5)
    x = (rng.standard_t(3, size=(rows, cols)) * 3).astype(dtype)
    x[1, ::4] = -np.inf
    x[3, 7] = np.inf
    return x


def _run(kernel, args, place):
    """Runs kernel with every array argument placed by `place`: ("out", shape, dtype)
    makes an output filled with NaN (-7 for integers), ("work", n) a scratch buffer.
    Returns the outputs and the (placed, original) inputs."""
    real, outs, ins = [], [], []
    for a in args:
        if isinstance(a, tuple) and a[0] == "out":
            o = place(np.full(a[1], np.nan if np.dtype(a[2]).kind == "f" else -7, dtype=a[2]))
            outs.append(o)
            real.append(o)
        elif isinstance(a, tuple) and a[0] == "work":
            real.append(place(np.zeros(a[1])))
        elif isinstance(a, np.ndarray):
            i = place(a.copy())
            ins.append((i, a))
            real.append(i)
        else:
            real.append(a)
    kernel(*real)
    return outs, ins


def _calls(dtype):
    x = _rows(dtype)
    r, c = x.shape
    keys = np.arange(1, r + 1, dtype=np.int64) * 7919
    y = np.empty_like(x)
    E.entmax(x, y, r, c, 1.5, 1)
    g = np.random.default_rng(2).normal(size=x.shape).astype(dtype)
    out = lambda shape, dt=dtype: ("out", shape, dt)  # noqa: E731
    nd = 9
    return [
        ("sample", D.sample, [x, keys, 0, out((r, nd), np.int64), out((r, nd), np.float64),
                              out((r,), np.int64), r, c, nd, 1.25, 20, 0.9, 0.01, ("work", 2 * c), 1]),
        ("sample, one seed", D.sample, [x, keys[:1], 1, out((r, nd), np.int64), out((r, nd), np.float64),
                                        out((r,), np.int64), r, c, nd, 0.5, 0, 0.8, 0.0, ("work", 2 * c), 1]),
        ("sample_probs", D.sample_probs, [x, out(x.shape, np.float64), out((r,), np.int64), r, c, 1.0, 30, 0.95,
                                          0.0, ("work", 2 * c), 1]),
        ("entmax 1.5", E.entmax, [x, out(x.shape), r, c, 1.5, 1]),
        ("sparsemax", E.entmax, [x, out(x.shape), r, c, 2.0, 1]),
        ("entmax 1.3", E.entmax, [x, out(x.shape), r, c, 1.3, 1]),
        ("entmax_backward", E.entmax_backward, [y, g, out(x.shape), r, c, 1.5, 1]),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_gives_the_same_bits_on_misaligned_buffers(dtype):
    for name, kernel, args in _calls(dtype):
        want, _ = _run(kernel, args, lambda a: a)
        got, ins = _run(kernel, args, misaligned)
        assert all(not o.flags.aligned for o in got), name
        for o, w in zip(got, want):
            assert (np.isfinite(w).any() if o.dtype.kind == "f" else (w >= 0).any()), name  # real values written
            np.testing.assert_array_equal(o, w, err_msg=name)
        for passed, original in ins:
            np.testing.assert_array_equal(passed, original, err_msg=f"{name}: input modified")


@pytest.mark.parametrize("dtype", DTYPES)
def test_public_functions_on_misaligned_input(dtype):
    x = _rows(dtype)
    x[3, 7] = 0.0
    xm = misaligned(x)
    seeds = np.arange(x.shape[0])
    np.testing.assert_array_equal(smk.sample(xm, top_p=0.9, seed=seeds, size=20),
                                  smk.sample(x, top_p=0.9, seed=seeds, size=20))
    np.testing.assert_array_equal(smk.sampling_probs(xm, top_k=10), smk.sampling_probs(x, top_k=10))
    np.testing.assert_array_equal(smk.entmax15(xm), smk.entmax15(x))
    np.testing.assert_array_equal(smk.sparsemax(xm), smk.sparsemax(x))
