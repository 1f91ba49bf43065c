"""Issue 9, the core: defects found by trying softmaxkit as users and peers would.

Each test failed before its fix (the issue names the input); the expected values come
from float64, SciPy or PyTorch as said beside them.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sc

import softmaxkit as smk


# ------------------------------------------------------------ silent wrong answers


def test_logsumexp_b_with_more_dimensions_than_x():
    # SciPy broadcasts x against b first, then reduces the last axis.
    x = np.array([1.0, 2.0, 3.0])
    b = np.ones((2, 3))
    np.testing.assert_allclose(smk.logsumexp(x, b=b), sc.logsumexp(x, b=b, axis=-1), rtol=1e-15)
    np.testing.assert_allclose(smk.logsumexp(x, b=b, axis=None), sc.logsumexp(x, b=b), rtol=1e-15)
    np.testing.assert_allclose(smk.logsumexp(x, b=b, axis=0),
                               sc.logsumexp(x, b=b, axis=0), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("fn", [smk.softmax, smk.log_softmax])
def test_temperature_whose_reciprocal_leaves_float32(dtype, fn):
    # 1 / 1e-39 overflows float32 and 1 / 1e300 underflows it: the float64 result,
    # rounded to the input's dtype, is the answer.
    for x, t in [([1, 2, 3], 1e-39), ([0, -np.inf], 1e300), ([1, 2, 3], 1e300),
                 ([-1e4, 0, 3], 1e-45), ([5, 5, -np.inf], 1e-300)]:
        xd = np.array(x, dtype=dtype)
        got = fn(xd, temperature=t)
        with np.errstate(all="ignore"):
            want = fn(xd.astype(np.float64), temperature=t).astype(dtype)
        assert got.dtype == dtype
        assert not np.isnan(got).any(), (x, t, got)
        np.testing.assert_array_equal(got, want)


def test_float32_smoothing_and_soft_labels_over_the_whole_range():
    # x - max overflows float32 for this row; the exact losses are finite (~3e37, 3e38).
    x = np.array([-3e38, 3e38], np.float32)
    for kw, target in [(dict(label_smoothing=0.1), 1), ({}, np.float32([0.5, 0.5]))]:
        got = smk.cross_entropy(x, target, **kw)
        want = smk.cross_entropy(x.astype(np.float64), np.asarray(target).astype(
            np.float64) if np.ndim(target) else target, **kw)
        assert np.isfinite(got), kw
        np.testing.assert_allclose(got, np.float32(want), rtol=1e-6)
        loss, grad = smk.cross_entropy_and_grad(x, target, **kw)
        assert np.isfinite(loss) and np.isfinite(grad).all()


def test_bce_with_logits_nan_logit_stays_nan_under_zero_weights():
    # torch: NaN. A NaN logit poisons its own element whatever the weights (as a NaN
    # poisons its own row in softmax); docs/losses.md says so.
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z, y = np.array([np.nan, 0.5]), np.array([1.0, 0.0])
    w, pw = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    ours = smk.binary_cross_entropy_with_logits(z, y, weight=w, pos_weight=pw, reduction="none")
    theirs = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), weight=torch.tensor(w),
                                                pos_weight=torch.tensor(pw), reduction="none").numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.isnan(ours[0])


# ------------------------------------------------------------ dtypes and shapes


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">f8", "<f4"])
def test_non_native_byte_order_keeps_its_float_kind(dtype):
    x = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    want = np.dtype(dtype).newbyteorder("=")
    for fn in (smk.softmax, smk.log_softmax, smk.sigmoid, smk.softplus, smk.hardmax):
        got = fn(x)
        assert got.dtype == want, (fn.__name__, got.dtype)
        np.testing.assert_allclose(got, fn(x.astype(want)), rtol=0)
    assert np.asarray(smk.cross_entropy(x, [0])).dtype == want


def test_longdouble_stays_longdouble_like_scipy():
    x = np.array([-1000.0, -2.0, 0.0, 3.0, 40.0], dtype=np.longdouble)
    for ours, theirs in [(smk.sigmoid, sc.expit), (smk.log_sigmoid, sc.log_expit)]:
        got = ours(x)
        assert got.dtype == np.longdouble
        np.testing.assert_allclose(got, theirs(x), rtol=1e-15)
    assert smk.logsumexp(x).dtype == sc.logsumexp(x).dtype


def test_logsumexp_follows_result_type_of_a_and_b():
    for da, db in [(np.float32, np.float64), (np.float64, np.float32), (np.float16, np.float32),
                   (np.float32, np.int64), (np.int32, np.float32)]:
        a, b = np.arange(3).astype(da), np.ones(3, db)
        assert smk.logsumexp(a, b=b).dtype == sc.logsumexp(a, b=b).dtype, (da, db)


def test_zero_dim_input_with_zero_dim_weights_keeps_shape():
    z, y = np.float64(0.3), np.float64(1.0)
    w, pw = np.float64(2.0), np.float64(3.0)
    assert np.shape(smk.binary_cross_entropy_with_logits(z, y, weight=w, pos_weight=pw,
                                                         reduction="none")) == ()
    assert np.shape(smk.binary_cross_entropy_with_logits_grad(z, y, weight=w, pos_weight=pw)) == ()
    assert np.shape(smk.binary_cross_entropy_grad(np.float64(0.3), y, weight=w)) == ()


@pytest.mark.parametrize("axis", [0, -1])
def test_zero_dim_input_with_axis_0_as_torch(axis):
    # torch.softmax(torch.tensor(1.0), dim=0) is 1; log_softmax 0.
    assert smk.softmax(np.float64(1.5), axis=axis) == 1.0
    assert smk.log_softmax(np.float64(1.5), axis=axis) == 0.0
    assert smk.logsumexp(np.float64(1.5), axis=axis) == 1.5


# ------------------------------------------------------------ weights


def test_class_weights_beyond_float32_range():
    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    # the weighted mean does not depend on the weights' scale: finite and exact
    got = smk.cross_entropy(x, [0, 1], weight=[1e39, 1e39])
    np.testing.assert_allclose(got, smk.cross_entropy(x, [0, 1]), rtol=1e-6)
    # a sum that cannot be represented is refused, naming the weight
    with pytest.raises(ValueError, match=r"weight\[0\] = 1e\+39 .*float32"):
        smk.cross_entropy(x, [0, 1], weight=[1e39, 1.0], reduction="sum")


def test_huge_finite_weights_do_not_overflow_the_mean():
    x = np.array([[1.0, 2.0], [2.0, 1.0]])
    want = smk.cross_entropy(x, [0, 1])
    for kw in [dict(weight=[1e308, 1e308]), dict(sample_weight=[1e308, 1e308])]:
        loss, grad = smk.cross_entropy_and_grad(x, [0, 1], **kw)
        np.testing.assert_allclose(loss, want, rtol=1e-15)
        np.testing.assert_allclose(grad, smk.cross_entropy_grad(x, [0, 1]), rtol=1e-15)


def test_zero_sample_weight_excludes_an_infinite_row():
    x = np.array([[0.0, -np.inf], [1.0, 2.0]])
    with np.errstate(all="ignore"):
        loss, grad = smk.cross_entropy_and_grad(x, [1, 0], sample_weight=[0.0, 1.0])
    want = smk.cross_entropy(x[1:], [0])
    assert loss == pytest.approx(want, rel=1e-15)
    assert np.isfinite(grad).all() and (grad[0] == 0).all()


def test_scalar_sample_weight_on_one_row():
    got = smk.cross_entropy(np.array([1.0, 2.0]), 0, sample_weight=2.0, reduction="sum")
    assert got == pytest.approx(2 * smk.cross_entropy(np.array([1.0, 2.0]), 0), rel=1e-15)
    with pytest.raises(ValueError, match="sample_weight"):
        smk.cross_entropy(np.array([1.0, 2.0]), 0, sample_weight=[1.0, 2.0])


# ------------------------------------------------------------ out=


@pytest.mark.parametrize("shift", [1, 3, 5, -1, -5])
def test_gradient_out_partially_overlapping_the_input(shift):
    rng = np.random.default_rng(0)
    buf = rng.normal(size=40)
    x = buf[10:30].reshape(4, 5)
    t = np.array([0, 4, 2, 1])
    want = smk.cross_entropy_grad(x.copy(), t)
    out = buf[10 + shift:30 + shift].reshape(4, 5)
    got = smk.cross_entropy_grad(x, t, out=out)
    assert got is out
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_gradient_out_is_the_input():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5))
    want = smk.cross_entropy_grad(x, [0, 1, 2, 3])
    got = smk.cross_entropy_grad(x, [0, 1, 2, 3], out=x)
    assert got is x
    np.testing.assert_allclose(x, want, rtol=1e-15)


# ------------------------------------------------------------ masks and NaN


def test_where_keeps_excluded_entries_exact_when_an_included_one_is_nan():
    # docs/semantics.md: excluded entries are 0 (softmax) and -inf (log_softmax)
    # whatever the included ones hold (JAX's choice); the included ones are NaN.
    x = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]])
    where = np.array([[True, True, False], [True, False, True]])
    p = smk.softmax(x, where=where)
    lp = smk.log_softmax(x, where=where)
    assert np.isnan(p[0, :2]).all() and p[0, 2] == 0.0
    assert np.isnan(lp[0, :2]).all() and lp[0, 2] == -np.inf
    np.testing.assert_allclose(p[1], smk.softmax([0.0, -np.inf, 2.0]), rtol=1e-15)


def test_kl_div_says_nan_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        smk.kl_div(np.zeros(2), np.array([np.nan, 0.5]))


# ------------------------------------------------------------ threads


def test_set_num_threads_bounds():
    old = smk.get_num_threads()
    for bad in (2**31, 10**12, 0, -1):
        with pytest.raises(ValueError, match="n must be"):
            smk.set_num_threads(bad)
    assert smk.get_num_threads() == old
    smk.set_num_threads(1024)
    smk.set_num_threads(old)


def _threads_in_subprocess(env_extra: dict[str, str], code: str = "") -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOFTMAXKIT_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_extra)
    prog = "import softmaxkit as smk\n" + (code or "print(smk.get_num_threads())")
    res = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip() + ("\n" + res.stderr.strip() if res.stderr.strip() else "")


def test_env_thread_counts():
    assert _threads_in_subprocess({"OMP_NUM_THREADS": "1"}) == "1"
    assert _threads_in_subprocess({"OMP_NUM_THREADS": "3,2"}) == "3"
    assert _threads_in_subprocess({"OMP_NUM_THREADS": "1", "SOFTMAXKIT_NUM_THREADS": "2"}) == "2"
    # a bad OMP_NUM_THREADS warns, naming the variable, and the default is used
    out = _threads_in_subprocess({"OMP_NUM_THREADS": "99999999999"})
    assert "OMP_NUM_THREADS" in out and "must be" in out
    assert out.splitlines()[0].strip().isdigit()
    # a bad SOFTMAXKIT_NUM_THREADS is refused at import, as any other bad value of ours
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["SOFTMAXKIT_NUM_THREADS"] = "99999999999"
    res = subprocess.run([sys.executable, "-c", "import softmaxkit"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode != 0
    assert "SOFTMAXKIT_NUM_THREADS must be a positive integer, got '99999999999'" in res.stderr


def test_threadpoolctl_limits_apply():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    old = smk.get_num_threads()
    smk.set_num_threads(2)
    try:
        info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "softmaxkit"]
        assert len(info) == 1 and info[0]["num_threads"] == 2, threadpoolctl.threadpool_info()
        with threadpoolctl.threadpool_limits(1):
            assert smk.get_num_threads() == 1
        assert smk.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert smk.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert smk.get_num_threads() == 2
    finally:
        smk.set_num_threads(old)


def test_joblib_workers_get_one_thread():
    joblib = pytest.importorskip("joblib")
    counts = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(smk.get_num_threads)() for _ in range(2))
    assert counts == [1, 1]


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` whose data starts one byte past an aligned address."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    m = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned
    return m


def test_sampling_and_entmax_on_misaligned_buffers():
    # issue 9: misaligned loads are undefined behaviour in C; every kernel gets
    # aligned memory (the sampling and entmax modules through the Python seam)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 10))
    xm = _misaligned(x)
    for fn in (smk.sparsemax, smk.entmax15):
        np.testing.assert_array_equal(fn(xm), fn(x))
    np.testing.assert_array_equal(smk.entmax_bisect(xm, alpha=1.7), smk.entmax_bisect(x, alpha=1.7))
    y = smk.entmax15(x)
    g = rng.normal(size=x.shape)
    np.testing.assert_array_equal(smk.entmax15_backward(_misaligned(y), _misaligned(g)),
                                  smk.entmax15_backward(y, g))
    np.testing.assert_array_equal(smk.sample(xm, seed=3, top_p=0.9), smk.sample(x, seed=3, top_p=0.9))
    np.testing.assert_array_equal(smk.sampling_probs(xm, top_k=3), smk.sampling_probs(x, top_k=3))
