"""smk.sample, smk.sampling_probs, smk.gumbel_softmax: distribution tests against
float64 probabilities, equality with the sort-based NumPy twin (sampling_twin.py),
reproducibility of the counter-based generator, and the argument checks."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import sampling_twin as twin
import softmaxkit as smk
from softmaxkit._kernels import _sampling as ext
from softmaxkit._sampling import _row_keys, _uniforms

# ---------------------------------------------------------------- exactness

LOGITS = np.random.default_rng(7).normal(scale=1.5, size=12)
MASK = np.ones(12, bool)
MASK[[0, 5]] = False  # two of the larger logits excluded
N_DRAWS = 100_000
COMBOS = list(itertools.product([0.7, 1.0, 1.6], [None, 4], [None, 0.8], [None, 0.15], [False, True]))


def chi_square_pvalue(counts, p, n):
    """Pearson's chi-square of counts against probabilities p (bins with expected
    counts under 5 pooled), and whether anything fell outside p's support."""
    assert counts[p == 0].sum() == 0, "drew outside the kept support"
    expected = p * n
    small = (expected < 5) & (p > 0)
    big = expected >= 5
    obs = list(counts[big]) + ([counts[small].sum()] if small.any() else [])
    exp = list(expected[big]) + ([expected[small].sum()] if small.any() else [])
    return stats.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("t, k, p, mp, masked", COMBOS)
def test_draw_frequencies_match_float64_probabilities(t, k, p, mp, masked):
    x = np.where(MASK, LOGITS, -np.inf) if masked else LOGITS
    ref = twin.probs(x, t, k, p, mp)  # float64, sort-based
    draws = smk.sample(LOGITS, temperature=t, top_k=k, top_p=p, min_p=mp,
                       where=MASK if masked else None, size=N_DRAWS, seed=2024)
    counts = np.bincount(draws, minlength=12)
    assert chi_square_pvalue(counts, ref, N_DRAWS) > 1e-4
    np.testing.assert_allclose(
        smk.sampling_probs(LOGITS, temperature=t, top_k=k, top_p=p, min_p=mp,
                           where=MASK if masked else None), ref, rtol=1e-13, atol=0)


def test_chi_square_test_has_power():
    """The same test rejects draws from the untruncated distribution."""
    ref = twin.probs(LOGITS, 1.0, None, 0.8, None)
    wrong = smk.sample(LOGITS, size=N_DRAWS, seed=1)  # no top_p
    counts = np.bincount(wrong, minlength=12)
    with pytest.raises(AssertionError, match="outside the kept support"):
        chi_square_pvalue(counts, ref, N_DRAWS)
    hot = smk.sample(LOGITS, top_p=0.8, temperature=1.1, size=N_DRAWS, seed=1)  # wrong T
    assert chi_square_pvalue(np.bincount(hot, minlength=12), ref, N_DRAWS) < 1e-6


OPTION_SETS = [
    dict(),
    dict(top_k=1),
    dict(top_k=40),
    dict(top_p=0.9),
    dict(top_p=0.3, temperature=0.6),
    dict(min_p=0.05),
    dict(top_k=100, top_p=0.95, min_p=0.01),
    dict(top_k=7, top_p=0.5, temperature=2.0),
    dict(top_k=5000, top_p=0.999),
]


@pytest.mark.parametrize("opts", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_equals_sorting_twin(opts, dtype, num_threads):
    rng = np.random.default_rng(3)
    # peaked rows (as language models give) and flat rows, with ties and -inf
    x = np.concatenate([rng.standard_t(2, size=(6, 3000)) * 3, rng.normal(size=(6, 3000)) * 0.3])
    x[:, 100:110] = x[:, [99]]  # ten ties
    x[1, ::3] = -np.inf
    x = x.astype(dtype)
    seeds = np.arange(12, dtype=np.uint64) * 977
    t = opts.get("temperature", 1.0)
    kw = {k: v for k, v in opts.items() if k != "temperature"}
    got = smk.sample(x, temperature=t, seed=seeds, size=50, **kw)
    probs = smk.sampling_probs(x, temperature=t, **kw)
    keys = _row_keys(seeds, None, (12,), 12)
    for i in range(12):
        ref_p = twin.probs(x[i], t, **kw).astype(dtype)  # float32: the tiniest round to 0
        # the same support, and the same probabilities on it
        np.testing.assert_array_equal(probs[i] > 0, ref_p > 0)
        np.testing.assert_allclose(probs[i], ref_p, rtol=1e-6 if dtype == np.float32 else 1e-12)
        np.testing.assert_array_equal(got[:, i], twin.draws(x[i], keys[i], 50, t, **kw))


def test_truncation_keeps_ties_at_each_threshold():
    x = np.log([4.0, 2.0, 2.0, 2.0, 1.0])
    np.testing.assert_array_equal(smk.sampling_probs(x, top_k=2) > 0, [1, 1, 1, 1, 0])
    # top-p 0.5: 4/11 < 0.5, then the three tied 2s come in together
    np.testing.assert_array_equal(smk.sampling_probs(x, top_p=0.5) > 0, [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(smk.sampling_probs(x, min_p=0.5) > 0, [1, 1, 1, 1, 0])
    np.testing.assert_allclose(smk.sampling_probs(x, top_p=0.3), [1, 0, 0, 0, 0])


def test_top_p_is_taken_after_top_k():
    # softmax of log[5, 3, 2]: top-k 2 leaves [5/8, 3/8]; top_p 0.6 then keeps one.
    x = np.log([5.0, 3.0, 2.0])
    np.testing.assert_allclose(smk.sampling_probs(x, top_k=2, top_p=0.6), [1, 0, 0])
    # without top-k, 0.5 < 0.6 and the second class is needed too
    np.testing.assert_allclose(smk.sampling_probs(x, top_p=0.6), [5 / 8, 3 / 8, 0])


@given(hnp.arrays(np.float64, st.integers(1, 60),
                  elements=st.floats(-30, 30, allow_nan=False, allow_infinity=False)),
       st.sampled_from([None, 1, 3, 20]), st.sampled_from([None, 0.1, 0.5, 0.95, 1.0]),
       st.sampled_from([None, 0.0, 0.2, 1.0]), st.sampled_from([0.25, 1.0, 3.0]))
def test_processed_distribution_matches_twin(x, k, p, mp, t):
    got = smk.sampling_probs(x, temperature=t, top_k=k, top_p=p, min_p=mp)
    ref = twin.probs(x, t, k, p, mp)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert got[np.argmax(x)] > 0  # the most likely class always survives


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 40)),
                  elements=st.floats(-1e6, 1e6, allow_nan=False) | st.just(-np.inf)),
       st.sampled_from([None, 1, 2, 7]), st.sampled_from([None, 0.3, 0.9]),
       st.sampled_from([None, 0.5]), st.sampled_from([0.0, 1e-3, 1.0, 50.0]))
def test_draws_stay_in_the_processed_support(x, k, p, mp, t):
    x[:, 0] = np.where(np.isinf(x).all(axis=1), 0.0, x[:, 0])  # something to draw in every row
    probs = smk.sampling_probs(x, temperature=t, top_k=k, top_p=p, min_p=mp)
    draws = smk.sample(x, temperature=t, top_k=k, top_p=p, min_p=mp, size=64, seed=np.arange(x.shape[0]))
    assert (probs[np.arange(x.shape[0]), draws] > 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(
        draws, smk.sample(x, temperature=t, top_k=k, top_p=p, min_p=mp, size=64, seed=np.arange(x.shape[0])))


def test_long_rows_match_twin():
    """Rows long enough for the quickselect's partitions and the block bound."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 200_003)) * np.array([[0.5], [2.0], [6.0]])
    for kw in [dict(top_k=50), dict(top_p=0.9), dict(top_k=1000, top_p=0.8), dict(min_p=0.01)]:
        got = smk.sampling_probs(x, **kw)
        for i in range(3):
            ref = twin.probs(x[i], 1.0, **kw)
            np.testing.assert_array_equal(got[i] > 0, ref > 0)
            np.testing.assert_allclose(got[i], ref, rtol=1e-11)


# ---------------------------------------------------------------- greedy and limits

def test_temperature_zero_is_greedy_first_index_on_ties():
    x = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, -np.inf, 5.0, 5.0]])
    np.testing.assert_array_equal(smk.sample(x, temperature=0), [1, 2])
    res = smk.sample(x, temperature=0, size=3, return_logprobs=True, top_p=0.1)
    np.testing.assert_array_equal(res.tokens, [[1, 2]] * 3)
    np.testing.assert_array_equal(res.logprobs, 0.0)
    np.testing.assert_allclose(res.raw_logprobs[0], smk.log_softmax(x, axis=-1)[[0, 1], [1, 2]])
    np.testing.assert_array_equal(smk.sampling_probs(x, temperature=0), [[0, 1, 0, 0], [0, 0, 1, 0]])
    assert smk.sample(x[0], temperature=0, where=[True, False, True, True]) == 2


def test_tiny_temperature_shifts_before_scaling():
    """Issue 9: logits / T overflowed at T = 1e-300."""
    assert set(smk.sample([1e10, 2e10], temperature=1e-300, size=1000, seed=0)) == {1}
    assert set(smk.sample([-1e10, -2e10], temperature=1e-300, size=1000, seed=0)) == {0}
    assert set(smk.sample(np.float32([1, 2, 3]), temperature=1e-39, size=100, seed=0)) == {2}
    np.testing.assert_array_equal(smk.sampling_probs(np.float32([0, -np.inf]), temperature=1e300), [1, 0])


def test_where_and_infinities():
    x = np.array([5.0, 0.0, 4.0, 0.0])
    draws = smk.sample(x, where=[False, True, True, True], size=20000, seed=3)
    assert 0 not in draws
    inf_draws = smk.sample([np.inf, 0.0, np.inf], size=4000, seed=0)
    counts = np.bincount(inf_draws, minlength=3)
    assert counts[1] == 0 and abs(counts[0] - 2000) < 200
    res = smk.sample([np.inf, 0.0, np.inf], seed=0, return_logprobs=True)
    assert res.logprobs == pytest.approx(-np.log(2)) and res.raw_logprobs == pytest.approx(-np.log(2))


def test_logprobs_processed_and_raw():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 50)) * 2
    res = smk.sample(x, temperature=0.8, top_k=10, top_p=0.9, seed=9, size=7, return_logprobs=True)
    assert res.tokens.shape == res.logprobs.shape == res.raw_logprobs.shape == (7, 4)
    p = smk.sampling_probs(x, temperature=0.8, top_k=10, top_p=0.9)
    lsm = smk.log_softmax(x)
    rows = np.arange(4)
    for d in range(7):
        np.testing.assert_allclose(res.logprobs[d], np.log(p[rows, res.tokens[d]]), rtol=1e-12)
        np.testing.assert_allclose(res.raw_logprobs[d], lsm[rows, res.tokens[d]], rtol=1e-12)


# ---------------------------------------------------------------- reproducibility

def test_generator_matches_kernel_uniforms():
    keys = np.array([0, 1, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    u = _uniforms(keys, np.arange(5))
    for i, k in enumerate(keys):
        for c in range(5):
            assert u[i, c] == ext.uniform(int(k), c)
    assert ((u >= 0) & (u < 1)).all()
    # SplitMix64 reference value: seed 0's first output is 0xe220a8397b1dcdaf
    assert ext.uniform(0, 0) == (0xE220A8397B1DCDAF >> 11) * 2.0**-53


def test_per_row_seeds_do_not_depend_on_the_batch(num_threads):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2000)) * 3
    seeds = rng.integers(0, 2**63, size=64)
    both = smk.sample(x, seed=seeds, top_p=0.9, size=4)
    perm = rng.permutation(64)
    np.testing.assert_array_equal(smk.sample(x[perm], seed=seeds[perm], top_p=0.9, size=4), both[:, perm])
    alone = smk.sample(x[17:18], seed=seeds[17:18], top_p=0.9, size=4)
    np.testing.assert_array_equal(alone[:, 0], both[:, 17])
    # the same seed on the same logits gives the same tokens in any row
    same = smk.sample(np.tile(x[3], (5, 1)), seed=np.full(5, 42), top_k=100)
    assert len(set(same.tolist())) == 1


@pytest.mark.parametrize("shape", [(32, 5000), (1, 150_001)], ids=["rows", "one-long-row"])
def test_threads_do_not_change_draws(shape):
    """Threads over rows, or (one long row) over the row's entries: the same draws."""
    x = np.random.default_rng(1).normal(size=shape) * 0.5
    got = []
    old = smk.get_num_threads()
    try:
        for nt in (1, 2, 3):
            smk.set_num_threads(nt)
            got.append((smk.sample(x, seed=5, top_k=30, size=50), smk.sample(x, seed=5, size=50),
                        smk.sampling_probs(x, top_p=0.5)))
    finally:
        smk.set_num_threads(old)
    for other in got[1:]:
        for a, b in zip(got[0], other):
            np.testing.assert_array_equal(a, b)


def test_seed_generator_and_rng():
    a = smk.sample([1.0, 2.0, 3.0], size=5, rng=42)
    b = smk.sample([1.0, 2.0, 3.0], size=5, generator=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(smk.sample([1.0, 2.0, 3.0], size=50, seed=7),
                                  smk.sample([1.0, 2.0, 3.0], size=50, seed=7))
    assert not np.array_equal(smk.sample(np.zeros(100), size=50, seed=7), smk.sample(np.zeros(100), size=50, seed=8))


# ---------------------------------------------------------------- plumbing and errors

def test_shapes_dtypes_and_layouts():
    assert isinstance(smk.sample([1.0, 2.0], seed=0), int)
    assert smk.sample(np.zeros((4, 3, 2)), axis=1, seed=0).shape == (4, 2)
    assert smk.sample(np.zeros((4, 3)), size=(2, 5), seed=0).shape == (2, 5, 4)
    assert smk.sample(np.zeros((4, 3)), size=0, seed=0).shape == (0, 4)
    assert smk.sample(np.zeros((0, 3)), seed=0).shape == (0,)
    x = np.random.default_rng(2).normal(size=(6, 40))
    ref = smk.sample(x, seed=1, top_k=5, size=3)
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(smk.sample(ro, seed=1, top_k=5, size=3), ref)
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(smk.sample(xt, seed=1, top_k=5, size=3), ref)
    np.testing.assert_array_equal(smk.sample(x.T, axis=0, seed=1, top_k=5, size=3), ref)
    np.testing.assert_array_equal(smk.sample(x.tolist(), seed=1, top_k=5, size=3), ref)
    np.testing.assert_array_equal(
        smk.sample(x.astype(np.float16), seed=1, size=3), smk.sample(x.astype(np.float16).astype(np.float32), seed=1, size=3))
    before = x.copy()
    smk.sample(x, seed=1, where=x > 0)
    np.testing.assert_array_equal(x, before)
    assert smk.sampling_probs(x.astype(np.float32)).dtype == np.float32
    assert smk.sampling_probs(np.arange(3)).dtype == np.float64


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(axis=(0, 1)), TypeError, "axis must be a single int"),
    (dict(axis=None), TypeError, "axis must be a single int"),
    (dict(top_k=0), ValueError, "top_k must be a positive integer"),
    (dict(top_k=2.5), TypeError, "top_k must be a positive integer"),
    (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
    (dict(min_p=-0.1), ValueError, r"min_p must be in \[0, 1\]"),
    (dict(min_p=np.nan), ValueError, r"min_p must be in \[0, 1\]"),
    (dict(temperature=-1.0), ValueError, "temperature must be"),
    (dict(temperature=np.inf), ValueError, "temperature must be"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\)"),
    (dict(seed=2**64), ValueError, r"seed must be in \[0, 2\*\*64\)"),
    (dict(seed=[1, 2]), ValueError, "seed has shape"),
    (dict(seed=1.5), TypeError, "seed must be"),
    (dict(seed=1, generator=np.random.default_rng()), ValueError, "not both"),
    (dict(rng="seed"), TypeError, "rng must be"),
    (dict(generator="x"), TypeError, "generator must be"),
    (dict(size=-1), ValueError, "size must not be negative"),
    (dict(return_logprobs=1), TypeError, "return_logprobs must be a bool"),
    (dict(where=[True, False]), ValueError, "where with shape"),
])
def test_argument_errors_name_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        smk.sample(np.zeros((3, 4)), **kwargs)


def test_rows_with_nothing_to_draw():
    with pytest.raises(ValueError, match="only -inf entries in distribution 1"):
        smk.sample([[0.0, 1.0], [-np.inf, -np.inf]], seed=0)
    with pytest.raises(ValueError, match=r"excluded by where\) in distribution 0"):
        smk.sample([0.0, 1.0], where=[False, False], seed=0)
    with pytest.raises(ValueError, match="NaN in distribution 0"):
        smk.sample([np.nan, 1.0], seed=0)
    with pytest.raises(ValueError, match="NaN in distribution 0"):
        smk.sample([np.nan, -np.inf], temperature=0)
    with pytest.raises(ValueError, match="NaN in distribution 1"):
        smk.sampling_probs(np.float32([[1, 2], [np.inf, np.nan]]))
    with pytest.raises(ValueError, match="class axis has length 0"):
        smk.sample(np.zeros((2, 0)), seed=0)
    with pytest.raises(ValueError, match="at least one dimension"):
        smk.sample(1.0, seed=0)


def test_kernel_checks_its_buffers():
    x = np.zeros(6)
    keys = np.zeros(2, np.int64)
    idx, logp, status, work = np.zeros(2, np.int64), np.zeros(2), np.zeros(2, np.int64), np.zeros(12)
    ext.sample(x, keys, 0, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 1)
    with pytest.raises(ValueError, match="'work' holds 6 items, 12 needed"):
        ext.sample(x, keys, 0, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, np.zeros(6), 2)
    ext.sample(x, keys, 0, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 8)  # 2 rows: 2 slots
    with pytest.raises(ValueError, match="bad sampling options"):
        ext.sample(x, keys, 0, idx, logp, status, 2, 3, 1, 1.0, 0, 0.0, 0.0, work, 1)
    with pytest.raises(ValueError, match="bad key_mode"):
        ext.sample(x, keys, 3, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 1)
    with pytest.raises(ValueError, match="'keys' holds 1 items, 2 needed"):
        ext.sample(x, keys[:1], 2, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 1)
    ext.sample(x, keys[:1], 1, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 1)  # one seed
    with pytest.raises(TypeError, match="wrong element type"):
        ext.sample(x, keys.astype(float), 0, idx, logp, status, 2, 3, 1, 1.0, 0, 1.0, 0.0, work, 1)


# ---------------------------------------------------------------- Gumbel-softmax

def test_gumbel_max_draws_follow_softmax():
    """hard=True with one seed per row: the argmax is a draw from softmax(x)."""
    x = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    n = 100_000
    y = smk.gumbel_softmax(np.tile(x, (n, 1)), 0.3, hard=True, seed=np.arange(n))
    assert set(np.unique(y)) == {0.0, 1.0} and (y.sum(axis=1) == 1).all()
    counts = y.sum(axis=0).astype(int)
    assert chi_square_pvalue(counts, smk.softmax(x), n) > 1e-4


def test_gumbel_softmax_matches_torch_on_the_same_noise():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(3, 6))
    seeds = np.array([4, 5, 6])
    tau = 0.7
    keys = _row_keys(seeds, None, (3,), 3)
    g = -np.log(-np.log(_uniforms(keys, np.arange(6)) + 2.0**-54))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax((xt + torch.tensor(g)) / tau, dim=-1)
    np.testing.assert_allclose(smk.gumbel_softmax(x, tau, seed=seeds), yt.detach().numpy(), rtol=1e-13)
    up = np.random.default_rng(1).normal(size=(3, 6))
    yt.backward(torch.tensor(up))
    got = smk.gumbel_softmax_backward(up, x, tau, seed=seeds)
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_gumbel_softmax_gradient_finite_differences():
    x = np.random.default_rng(2).normal(size=(2, 5))
    up = np.random.default_rng(3).normal(size=(2, 5))
    tau, h = 0.9, 1e-4

    def f(z):
        return float((up * smk.gumbel_softmax(z, tau, seed=11)).sum())

    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        num[idx] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h)
    np.testing.assert_allclose(smk.gumbel_softmax_backward(up, x, tau, seed=11), num, rtol=1e-7, atol=1e-10)


def test_gumbel_hard_is_straight_through():
    x = np.array([[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]])
    hard = smk.gumbel_softmax(x, 0.5, hard=True, seed=3)
    soft = smk.gumbel_softmax(x, 0.5, seed=3)
    np.testing.assert_array_equal(hard, (soft == soft.max(axis=1, keepdims=True)).astype(float))
    assert smk.gumbel_softmax(x.astype(np.float32), 0.5, seed=3).dtype == np.float32
    with pytest.raises(ValueError, match="seed must be the forward pass's seed"):
        smk.gumbel_softmax_backward(np.ones(3), x[0], 0.5, seed=None)
    with pytest.raises(ValueError, match="grad_output has shape"):
        smk.gumbel_softmax_backward(np.ones(2), x[0], 0.5, seed=1)
    with pytest.raises(TypeError, match="hard must be a bool"):
        smk.gumbel_softmax(x, 0.5, hard="yes", seed=1)
    with pytest.raises(ValueError, match="temperature must be"):
        smk.gumbel_softmax(x, 0.0, seed=1)


# ---------------------------------------------------------------- the sample command

def _run_cli(argv, capsys):
    import argparse

    from softmaxkit.app.sample_cmd import add_sample_parser

    parser = argparse.ArgumentParser(prog="softmaxkit")
    add_sample_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_sample_command_prints_processed_and_empirical(capsys):
    out = _run_cli("sample 2.0 1.0 0.5 --temperature 0.7 --top-p 0.9 -n 1000".split(), capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["token", "logit", "processed", "p", "empirical", "count"]
    p = smk.sampling_probs([2.0, 1.0, 0.5], temperature=0.7, top_p=0.9)
    counts = np.bincount(smk.sample([2.0, 1.0, 0.5], temperature=0.7, top_p=0.9, size=1000, seed=0), minlength=3)
    for i in range(3):
        cols = lines[1 + i].split()
        assert float(cols[2]) == pytest.approx(p[i], abs=1e-6)
        assert int(cols[4]) == counts[i]
    assert counts[2] == 0 and "top-p 0.9; 1000 draws, seed 0; chi-square p-value" in out


def test_sample_command_greedy_and_negative_logits(capsys):
    out = _run_cli(["sample", "1", "3", "3", "--temperature", "0", "-n", "5"], capsys)
    assert out.splitlines()[2].split()[-1] == "5"  # token 1, the first maximum
    out = _run_cli(["sample", "--top-k", "1", "-n", "3", "--", "-1", "-2"], capsys)
    assert out.splitlines()[1].split()[-1] == "3"


@pytest.mark.parametrize("argv, match", [
    ("sample 1 2 --top-p 2", r"--top-p must be in \(0, 1\]"),
    ("sample 1 2 --top-k 0", "--top-k must be a positive integer"),
    ("sample 1 2 --min-p -1", r"--min-p must be in \[0, 1\]"),
    ("sample 1 2 --temperature -1", "--temperature must be"),
    ("sample 1 2 --temperature inf", "--temperature must be a finite number"),
    ("sample 1 2 --seed -3", r"--seed must be in \[0, 2\*\*64\)"),
    ("sample -- -inf -inf", "only -inf entries"),  # the CLI protects "-inf" itself
    ("sample nan 1", "NaN"),
])
def test_sample_command_errors_speak_option_names(argv, match, capsys):
    with pytest.raises(ValueError, match=match):
        _run_cli(argv.split(), capsys)


def test_sample_command_rejects_bad_numbers_at_parse_time(capsys):
    with pytest.raises(SystemExit):
        _run_cli("sample 1 x".split(), capsys)
    with pytest.raises(SystemExit):
        _run_cli("sample 1 2 -n 0".split(), capsys)


# ---------------------------------------------------------------- the benchmark's baseline

@pytest.mark.parametrize("t, k, p", [(0.8, 5, 0.9), (1.3, 8, 0.6), (0.5, 12, 0.95)])
def test_hugging_face_path_draws_the_same_distribution(t, k, p):
    """benchmarks/sampling.py's copy of Hugging Face's logits processors (+ multinomial)
    draws from sampling_probs' distribution: the order (temperature, top-k, top-p on
    the renormalised top-k set) is the same, so the benchmark compares like with like."""
    torch = pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sampling.py"
    spec = importlib.util.spec_from_file_location("sampling_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    n = 100_000
    x = torch.tensor(np.tile(LOGITS, (n, 1)))
    draws = bench.torch_hf_sample(torch, x, t, k, p).numpy()
    ref = smk.sampling_probs(LOGITS, temperature=t, top_k=k, top_p=p)
    assert chi_square_pvalue(np.bincount(draws, minlength=12), ref, n) > 1e-4


def test_sample_command_through_the_cli_main(capsys):
    from softmaxkit.app.cli import main

    assert main(["sample", "-inf", "-1e3", "2", "--top-k", "1", "-n", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[3].split()[-1] == "5"
    assert main(["sample", "1", "2", "--top-p", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--top-p must be in (0, 1], got 3.0" in err
