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
from test_kernel_seam import _run, misaligned

DTYPES = [np.float64, np.float32]


def _rows(dtype, rows=5, cols=301):
    rng = np.random.default_rng(5)
    x = (rng.standard_t(3, size=(rows, cols)) * 3).astype(dtype)
    x[1, ::4] = -np.inf
    x[3, 7] = np.inf
    return x


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


# ---------------------------------------------------------------- the sparse and dense paths
# Rows of 1024 entries or more read the row once for column maxima; top-k and min-p
# then take exps of the candidates only, top-p and plain sampling sum the weights in
# one more pass without storing them (sampling_body.h). A row falls back to the full
# path when the candidates cannot be shown to hold every kept entry. Every path must
# give the twin's draws.

import sampling_twin as twin  # noqa: E402
from softmaxkit._sampling import _row_keys  # noqa: E402


def _long_rows(v=20000):
    rng = np.random.default_rng(17)
    peaked = rng.standard_t(2, size=v) * 3
    flat = rng.normal(size=v) * 0.3
    ties = rng.normal(size=v) * 2
    ties[::37] = ties.max() + 1.0  # hundreds of entries tied at the top
    near = rng.normal(size=v) * 4
    near[5::97] = np.nextafter(near.max(), np.inf)  # ties one ulp above the rest
    holes = rng.normal(size=v) * 3
    holes[::2] = -np.inf
    return np.stack([peaked, flat, ties, near, holes])


SPARSE_OPTIONS = [
    dict(), dict(temperature=0.5), dict(top_p=0.9), dict(top_p=0.3, min_p=0.2), dict(top_p=0.999, temperature=3.0),
    dict(top_p=0.95, temperature=1e6),
    dict(top_k=1), dict(top_k=50), dict(top_k=50, top_p=0.9), dict(top_k=700, top_p=0.5, min_p=0.01),
    dict(top_k=5000), dict(min_p=0.05), dict(min_p=1.0), dict(min_p=0.5, temperature=0.3),
    dict(top_k=20, temperature=1e6), dict(min_p=0.2, temperature=1e-30),
]


@pytest.mark.parametrize("opts", SPARSE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_path_draws_equal_the_twin(opts, dtype):
    x = _long_rows().astype(dtype)
    n = x.shape[0]
    seeds = np.arange(n, dtype=np.uint64) * 1009 + 3
    t = opts.get("temperature", 1.0)
    kw = {k: v for k, v in opts.items() if k != "temperature"}
    keys = _row_keys(seeds, None, (n,), n)
    for size in (40, 3):  # plain sampling: 3 draws recompute a chunk's exps, 40 store the weights
        got = smk.sample(x, temperature=t, seed=seeds, size=size, **kw, return_logprobs=True)
        for i in range(n):
            want = twin.draws(x[i], keys[i], size, t, **kw)
            np.testing.assert_array_equal(got.tokens[:, i], want, err_msg=f"row {i}")
            ref_p = twin.probs(x[i], t, **kw)
            np.testing.assert_allclose(np.exp(got.logprobs[:, i]), ref_p[want], rtol=1e-9)
    for i in range(n):  # one row alone (the 1-D fast path, one draw)
        one = smk.sample(x[i], temperature=t, seed=7, **kw)
        assert one == smk.sample(x[i:i + 1], temperature=t, seed=7, **kw)[0]
        assert one == twin.draws(x[i], _row_keys(7, None, (1,), 1)[0], 1, t, **kw)[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_path_rows_with_nan_and_infinities(dtype):
    x = _long_rows(3000)[:3].astype(dtype)
    x[0, 1234] = np.nan
    x[1, 17] = np.inf
    x[1, 2900] = np.inf
    x[2] = -np.inf
    with pytest.raises(ValueError, match="NaN in distribution 0"):
        smk.sample(x, top_k=5, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        smk.sample(x[0], min_p=0.1, seed=0)
    draws = smk.sample(x[1], top_k=5, seed=np.uint64(3), size=400)
    assert set(draws.tolist()) == {17, 2900}
    with pytest.raises(ValueError, match="only -inf entries in distribution 1"):
        smk.sample(x[1:], min_p=0.1, seed=np.arange(2))


# ---------------------------------------------------------------- one row, many threads

@pytest.mark.parametrize("v", [32000, 128256, 262144])
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_split_over_threads_gives_the_same_draws(v, dtype):
    """A batch of one long row is split over the threads (the column maxima of the
    sparse path, the chunked max and sums of the full path); the counter-based
    generator and the fixed chunks make the draws the same at any thread count."""
    x = (np.random.default_rng(v).standard_normal(v) * 4).astype(dtype)
    options = [dict(), dict(top_k=50), dict(top_p=0.9), dict(top_k=50, top_p=0.9), dict(min_p=0.05),
               dict(top_k=5000, top_p=0.99)]
    got = []
    old = smk.get_num_threads()
    try:
        for nt in (1, 2, 4):
            smk.set_num_threads(nt)
            res = [smk.sample(x, temperature=0.8, seed=11, size=25, return_logprobs=True, **o) for o in options]
            res += [smk.sample(x, temperature=0.8, seed=s, **o) for o in options for s in range(3)]
            res.append(smk.sampling_probs(x, top_p=0.9))
            got.append(res)
    finally:
        smk.set_num_threads(old)
    assert len(set(got[0][0].tokens.tolist())) > 5  # not vacuous: real draws
    for other in got[1:]:
        for a, b in zip(got[0], other):
            if isinstance(a, tuple):
                for u, w in zip(a, b):
                    np.testing.assert_array_equal(u, w)
            else:
                np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the 1-D fast path

def test_one_row_fast_path_is_the_general_path():
    x = np.random.default_rng(4).normal(size=3000) * 3
    for kw in [dict(), dict(top_k=10), dict(top_p=0.8, temperature=0.7), dict(min_p=0.1)]:
        for seed in (0, 5, 2**64 - 1, np.uint64(9), np.int64(12)):
            one = smk.sample(x, seed=seed, **kw)
            assert type(one) is int
            assert one == smk.sample(x, seed=seed, size=1, **kw)[0]  # the general path
            assert one == smk.sample(x[::-1][::-1].copy(), seed=seed, **kw)
            assert one == smk.sample(np.asfortranarray(x.astype(np.float32)).astype(np.float64), seed=seed, **kw)
    strided = np.repeat(x, 2)[::2]  # not contiguous: the general path
    assert smk.sample(strided, seed=3, top_k=5) == smk.sample(x, seed=3, top_k=5)
    assert smk.sample(x, temperature=0, seed=1) == int(np.argmax(x))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(top_k=2.5), TypeError, "top_k"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(min_p=1.5), ValueError, "min_p"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(axis=1), Exception, "axis"),
    (dict(axis=(0,)), TypeError, "axis"),
])
def test_one_row_fast_path_errors_name_the_argument(kwargs, exc, match):
    kw = dict(seed=0) | kwargs
    with pytest.raises(exc, match=match):
        smk.sample(np.zeros(5), **kw)
