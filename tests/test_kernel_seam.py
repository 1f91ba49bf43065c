"""The C seam (src/softmaxkit/_kernels/sk_pybuf.h): every kernel gives the same bits on
misaligned buffers as on aligned ones.

A float64 array at an odd address (``np.frombuffer(..., offset=1)``) is a legal
C-contiguous buffer, but dereferencing a misaligned ``double *`` is undefined behaviour
in C (reported by UBSan's -fsanitize=alignment, ``make test-asan``), and vector code may
assume the element alignment. The seam copies such buffers into aligned memory (and
writes outputs back), so the kernels only see aligned pointers.
"""
from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as smk
from softmaxkit._kernels import _losses as L
from softmaxkit._kernels import _softmax as S

DTYPES = [np.float64, np.float32]


def misaligned(a: np.ndarray) -> np.ndarray:
    """A writable copy of ``a`` whose data starts one byte past an aligned address."""
    a = np.ascontiguousarray(a)
    raw = np.zeros(a.nbytes + 1 + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + 1  # aligned + 1: misaligned for any itemsize > 1
    m = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=start).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned and m.flags.c_contiguous and m.flags.writeable
    return m


def _inputs(dtype, rows=5, cols=37):
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(rows, cols)) * 4).astype(dtype)
    x[1, 3] = -np.inf
    x[2] = -np.inf
    x[3, :2] = np.inf
    g = rng.normal(size=(rows, cols)).astype(dtype)
    t = rng.integers(0, cols, size=rows).astype(np.int64)
    w = rng.uniform(0.5, 2.0, size=cols).astype(dtype)
    q = np.abs(rng.normal(size=(rows, cols))).astype(dtype)
    q /= q.sum(axis=1, keepdims=True)
    gs = rng.uniform(0.5, 2.0, size=rows)
    return x, g, t, w, q, gs


def _calls(dtype):
    """(name, kernel, args): each arg an input array, an output array to create
    (('out', shape, dtype)), or a scalar."""
    x, g, t, w, q, gs = _inputs(dtype)
    r, c = x.shape
    n = x.size
    p = np.empty_like(x)
    S.softmax(x, p, r, c, 1.0, 1)
    lp = np.empty_like(x)
    S.log_softmax(x, lp, r, c, 1.0, 1)
    s = np.empty(n, dtype)
    S.sigmoid(x.ravel(), s, n, 1)
    out = lambda shape, dt=dtype: ("out", shape, dt)  # noqa: E731
    return [
        ("softmax", S.softmax, [x, out(x.shape), r, c, 0.5, 1]),
        ("log_softmax", S.log_softmax, [x, out(x.shape), r, c, 2.0, 1]),
        ("logsumexp", S.logsumexp, [x, out((r,)), r, c, 1]),
        ("softmax_backward", S.softmax_backward, [p, g, out(x.shape), r, c, 1]),
        ("log_softmax_backward", S.log_softmax_backward, [lp, g, out(x.shape), r, c, 1]),
        ("sigmoid", S.sigmoid, [x.ravel(), out((n,)), n, 1]),
        ("log_sigmoid", S.log_sigmoid, [x.ravel(), out((n,)), n, 1]),
        ("softplus", S.softplus, [x.ravel(), out((n,)), n, 1]),
        ("sigmoid_backward", S.sigmoid_backward, [s, g.ravel(), out((n,)), n, 1]),
        ("softplus_scaled", S.softplus_scaled, [x.ravel(), out((n,)), n, 2.0, 20.0, 1]),
        ("softplus_backward", S.softplus_backward, [x.ravel(), g.ravel(), out((n,)), n, 0.5, 3.0, 1]),
        ("log_sigmoid_backward", S.log_sigmoid_backward, [x.ravel(), g.ravel(), out((n,)), n, 1]),
        ("sigmoid_focal", S.sigmoid_focal, [x.ravel(), q.ravel(), out((n,)), n, 0.25, 2.0, 1]),
        ("sigmoid_focal gamma 1.5", S.sigmoid_focal, [x.ravel(), q.ravel(), out((n,)), n, -1.0, 1.5, 1]),
        ("sigmoid_focal_backward", S.sigmoid_focal_backward,
         [x.ravel(), q.ravel(), g.ravel(), out((n,)), n, 0.25, 2.0, 1]),
        ("multi_margin", S.multi_margin, [x, t, out((r,), np.float64), r, c, 1.0, 2, 1]),
        ("multi_margin_backward", S.multi_margin_backward, [x, t, gs, out(x.shape), r, c, 0.5, 1, 1]),
        ("ce_hard forward", L.ce_hard,
         [x, t, w, 2, True, 0.1, out((r,), np.float64), out((r,), np.float64), None, 1.0, None, r, c, 1]),
        ("ce_hard forward-backward", L.ce_hard,
         [x, t, None, -100, False, 0.0, out((r,), np.float64), out((r,), np.float64), gs, 1.0,
          out(x.shape), r, c, 1]),
        ("ce_soft forward", L.ce_soft, [x, q, w, 0.2, out((r,), np.float64), None, 1.0, None, r, c, 1]),
        ("ce_soft forward-backward", L.ce_soft,
         [x, q, None, 0.0, out((r,), np.float64), gs, 0.5, out(x.shape), r, c, 1]),
    ]


def _run(kernel, args, place):
    """Runs kernel with every array argument placed by `place`: ("out", shape, dtype)
    makes an output filled with NaN (-7 for integers), ("work", n) a scratch buffer.
    Returns the outputs and the (placed, original) inputs (to check the inputs were
    not modified). Shared with test_sampling_kernels."""
    real, outs, ins = [], [], []
    for a in args:
        if isinstance(a, tuple) and a and a[0] == "out":
            o = place(np.full(a[1], np.nan if np.dtype(a[2]).kind == "f" else -7, dtype=a[2]))
            outs.append(o)
            real.append(o)
        elif isinstance(a, tuple) and a and a[0] == "work":
            real.append(place(np.zeros(a[1])))
        elif isinstance(a, np.ndarray):
            i = place(a.copy())
            ins.append((i, a))
            real.append(i)
        else:
            real.append(a)
    kernel(*real)
    return outs, ins


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_gives_the_same_bits_on_misaligned_buffers(dtype):
    calls = _calls(dtype)
    assert len(calls) == 21  # every entry point of both modules, both label kinds
    for name, kernel, args in calls:
        want, _ = _run(kernel, args, lambda a: a)
        got, ins = _run(kernel, args, misaligned)
        assert all(not o.flags.aligned for o in got), name
        for o, w in zip(got, want):
            assert np.isfinite(w).any(), name  # not vacuous: real values were written
            np.testing.assert_array_equal(o, w, err_msg=name)
        for passed, original in ins:
            np.testing.assert_array_equal(passed, original, err_msg=f"{name}: input modified")


@pytest.mark.parametrize("dtype", DTYPES)
def test_misaligned_in_place_gradient(dtype):
    # grad may be x itself: in place over a misaligned buffer gives the same gradient
    x, _, t, _, _, _ = _inputs(dtype)
    r, c = x.shape
    want = np.empty_like(x)
    L.ce_hard(x, t, None, 0, False, 0.0, np.empty(r), np.empty(r), None, 1.0, want, r, c, 1)
    xm = misaligned(x)
    L.ce_hard(xm, t, None, 0, False, 0.0, np.empty(r), np.empty(r), None, 1.0, xm, r, c, 1)
    np.testing.assert_array_equal(xm, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_public_functions_on_misaligned_input(dtype):
    x, _, t, _, _, _ = _inputs(dtype)
    xm = misaligned(x)
    np.testing.assert_array_equal(smk.softmax(xm), smk.softmax(x))
    np.testing.assert_array_equal(smk.log_softmax(xm, temperature=3.0), smk.log_softmax(x, temperature=3.0))
    np.testing.assert_array_equal(smk.logsumexp(xm, axis=-1), smk.logsumexp(x, axis=-1))
    np.testing.assert_array_equal(smk.sigmoid(xm), smk.sigmoid(x))
    l1, g1 = smk.cross_entropy_and_grad(xm, misaligned(t), reduction="none")
    l2, g2 = smk.cross_entropy_and_grad(x, t, reduction="none")
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1, g2)


def test_seam_rejects_wrong_types_naming_the_argument():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="'out' has the wrong element type \\(float32, float64 needed\\)"):
        S.softmax(x, np.zeros(6, np.float32), 2, 3, 1.0, 1)
    with pytest.raises(TypeError, match="'target' has the wrong element type"):
        L.ce_hard(x, np.zeros(2), None, 0, False, 0.0, np.empty(2), np.empty(2), None, 1.0, None, 2, 3, 1)
    with pytest.raises(TypeError, match="'x' has the wrong element type \\(int64, float32 or float64"):
        S.sigmoid(np.zeros(3, np.int64), np.zeros(3, np.int64), 3, 1)
    with pytest.raises(ValueError, match="'grad' holds 5 items, 6 needed"):
        L.ce_hard(x, np.zeros(2, np.int64), None, 0, False, 0.0, np.empty(2), np.empty(2), None, 1.0,
                  np.empty(5), 2, 3, 1)
    with pytest.raises((ValueError, TypeError, BufferError)):
        S.softmax(x, np.zeros((3, 2)).T, 2, 3, 1.0, 1)  # not C-contiguous
