"""Calibration: ECE, classwise ECE, reliability curves, temperature scaling, the
train report's calibration_report and the `calibrate` command.

Peers: torchmetrics' CalibrationError (multiclass and binary), scikit-learn's
CalibratedClassifierCV(method="temperature") and scipy's minimize_scalar on the same
NLL. A plain-loop NumPy twin of the binning is kept below (``ece_reference``).
"""
import argparse
import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import softmaxkit as smk
from softmaxkit._calibration import _nll_and_derivatives

PNG = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- reference


def ece_reference(probs, y, n_bins=15, norm="l1", strategy="uniform", classwise_k=None):
    """The documented binning written as plain loops (the twin of _calibration)."""
    probs = np.asarray(probs, dtype=float)
    y = np.asarray(y)
    if classwise_k is None:
        conf = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == y).astype(float)
    else:
        conf = probs[:, classwise_k]
        correct = (y == classwise_k).astype(float)
    if strategy == "uniform":
        edges = [i / n_bins for i in range(n_bins + 1)]
        edges = list(np.linspace(0, 1, n_bins + 1))
    else:
        q = list(np.quantile(conf, np.linspace(0, 1, n_bins + 1)))
        q[0], q[-1] = 0.0, 1.0
        edges = sorted(set(q))
    nb = len(edges) - 1
    gaps, weights = [], []
    for i in range(nb):
        lo, hi = edges[i], edges[i + 1]
        members = [j for j in range(len(conf))
                   if lo <= conf[j] < hi or (i == nb - 1 and lo <= conf[j] <= hi)]
        if not members:
            continue
        acc = sum(correct[j] for j in members) / len(members)
        mc = sum(conf[j] for j in members) / len(members)
        gaps.append(abs(acc - mc))
        weights.append(len(members) / len(conf))
    gaps, weights = np.array(gaps), np.array(weights)
    if norm == "l1":
        return float(np.sum(weights * gaps))
    if norm == "l2":
        return float(np.sqrt(np.sum(weights * gaps**2)))
    return float(gaps.max())


def random_probs(rng, n, k, scale=2.0):
    return smk.softmax(rng.normal(size=(n, k)) * scale)


# ---------------------------------------------------------------------------- worked examples


def test_worked_example_one_bin():
    # all four at confidence 0.9, three right: |0.75 - 0.9| = 0.15 in every norm
    p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]]
    for norm in ("l1", "l2", "max"):
        assert smk.expected_calibration_error(p, [0, 0, 1, 1], norm=norm) == pytest.approx(0.15, abs=1e-15)


def test_worked_example_two_bins():
    # confidences 0.9 (x3, all right) and 0.7 (wrong), 5 bins: bins [0.6, 0.8) and [0.8, 1]
    # l1 = 1/4 * 0.7 + 3/4 * 0.1 = 0.25; l2 = sqrt(1/4 * 0.49 + 3/4 * 0.01) = sqrt(0.13);
    # max = 0.7
    p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.7, 0.3]]
    y = [0, 0, 1, 1]
    assert smk.expected_calibration_error(p, y, n_bins=5) == pytest.approx(0.25, abs=1e-15)
    assert smk.expected_calibration_error(p, y, n_bins=5, norm="l2") == pytest.approx(np.sqrt(0.13), abs=1e-15)
    assert smk.expected_calibration_error(p, y, n_bins=5, norm="max") == pytest.approx(0.7, abs=1e-15)
    curve = smk.reliability_curve(p, y, n_bins=5)
    assert curve.count.tolist() == [0, 0, 0, 1, 3]
    assert_allclose(curve.bin_edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert np.isnan(curve.accuracy[:3]).all() and np.isnan(curve.confidence[:3]).all()
    assert_allclose(curve.accuracy[3:], [0.0, 1.0])
    assert_allclose(curve.confidence[3:], [0.7, 0.9])


def test_perfectly_calibrated_is_zero():
    # in each bin the accuracy equals the confidence exactly: 0.5 with half right
    p = [[0.5, 0.5]] * 4
    assert smk.expected_calibration_error(p, [0, 0, 1, 1]) == 0.0
    # and certainty that is always right
    assert smk.expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0


def test_bin_edges_are_left_closed_and_one_is_in_the_last_bin():
    # confidence exactly 0.5 = e_1 of 2 bins goes to the upper bin; 1.0 to the last
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    curve = smk.reliability_curve(p, [0, 0, 0], n_bins=2)
    assert curve.count.tolist() == [0, 3]
    curve = smk.reliability_curve(p, [0, 0, 0], n_bins=4)
    assert curve.count.tolist() == [0, 0, 1, 2]  # 0.5 in [0.5, 0.75); 0.75 and 1 in [0.75, 1]


def test_logits_give_the_same_as_their_softmax(rng):
    z = rng.normal(size=(300, 5)) * 3
    y = rng.integers(0, 5, 300)
    for norm in ("l1", "l2", "max"):
        a = smk.expected_calibration_error(z, y, norm=norm, from_logits=True)
        b = smk.expected_calibration_error(smk.softmax(z), y, norm=norm)
        assert a == pytest.approx(b, abs=1e-14)
    assert smk.classwise_calibration_error(z, y, from_logits=True) == pytest.approx(
        smk.classwise_calibration_error(smk.softmax(z), y), abs=1e-14)


# ---------------------------------------------------------------------------- twin and properties


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_matches_plain_loop_reference(rng, norm, strategy, n_bins):
    p = random_probs(rng, 200, 4)
    y = rng.integers(0, 4, 200)
    got = smk.expected_calibration_error(p, y, n_bins=n_bins, norm=norm, strategy=strategy)
    assert got == pytest.approx(ece_reference(p, y, n_bins, norm, strategy), abs=1e-14)
    cw = smk.classwise_calibration_error(p, y, n_bins=n_bins, norm=norm, strategy=strategy)
    ref = np.mean([ece_reference(p, y, n_bins, norm, strategy, classwise_k=k) for k in range(4)])
    assert cw == pytest.approx(ref, abs=1e-14)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), k=st.integers(2, 6),
       n_bins=st.integers(1, 20), strategy=st.sampled_from(["uniform", "quantile"]))
def test_properties(seed, n, k, n_bins, strategy):
    rng = np.random.default_rng(seed)
    p = random_probs(rng, n, k, scale=rng.uniform(0.1, 5))
    y = rng.integers(0, k, n)
    l1 = smk.expected_calibration_error(p, y, n_bins=n_bins, strategy=strategy)
    l2 = smk.expected_calibration_error(p, y, n_bins=n_bins, strategy=strategy, norm="l2")
    mx = smk.expected_calibration_error(p, y, n_bins=n_bins, strategy=strategy, norm="max")
    # weighted mean <= weighted root mean square <= max, all in [0, 1]
    assert 0 <= l1 <= l2 + 1e-15 <= mx + 2e-15 <= 1 + 2e-15
    assert l1 == pytest.approx(ece_reference(p, y, n_bins, "l1", strategy), abs=1e-13)
    curve = smk.reliability_curve(p, y, n_bins=n_bins, strategy=strategy)
    assert curve.count.sum() == n
    assert curve.ece == pytest.approx(l1, abs=1e-15)
    filled = curve.count > 0
    assert np.all((curve.confidence[filled] >= curve.bin_edges[:-1][filled] - 1e-15)
                  & (curve.confidence[filled] <= curve.bin_edges[1:][filled] + 1e-15))
    # permuting the samples changes nothing
    perm = rng.permutation(n)
    assert smk.expected_calibration_error(p[perm], y[perm], n_bins=n_bins, strategy=strategy) \
        == pytest.approx(l1, abs=1e-14)


def test_quantile_bins_hold_equal_counts(rng):
    p = random_probs(rng, 1000, 3)
    y = rng.integers(0, 3, 1000)
    curve = smk.reliability_curve(p, y, n_bins=10, strategy="quantile")
    assert curve.count.size == 10
    assert curve.count.min() >= 99 and curve.count.max() <= 101


def test_inputs_not_modified_and_float32_and_lists(rng):
    p = random_probs(rng, 100, 3).astype(np.float32)
    y = rng.integers(0, 3, 100)
    p.flags.writeable = False
    before = p.copy()
    a = smk.expected_calibration_error(p, y)
    assert_allclose(p, before)
    assert a == pytest.approx(ece_reference(p.astype(float), y), abs=1e-12)
    p64 = random_probs(rng, 50, 3)
    assert smk.expected_calibration_error(p64.tolist(), y[:50].tolist()) == \
        smk.expected_calibration_error(p64, y[:50])
    # a non-contiguous view
    wide = np.repeat(p, 2, axis=1)[:, ::2]
    assert smk.expected_calibration_error(wide, y) == pytest.approx(a, abs=1e-12)


# ---------------------------------------------------------------------------- torchmetrics


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [5, 10, 15])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_agrees_with_torchmetrics_multiclass(seed, n_bins, norm):
    torch = pytest.importorskip("torch")
    tmf = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(seed)
    k = 3 + seed
    z = rng.normal(size=(500, k)) * (1 + seed)
    y = rng.integers(0, k, 500)
    p = smk.softmax(z)
    ref = tmf.multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=k,
                                           n_bins=n_bins, norm=norm).item()
    # torchmetrics bins in float32: agreement to float32 rounding
    assert smk.expected_calibration_error(p, y, n_bins=n_bins, norm=norm) == pytest.approx(ref, abs=2e-6)
    # torchmetrics applies softmax itself to inputs outside [0, 1]: pass it the logits
    ref_logits = tmf.multiclass_calibration_error(torch.tensor(z), torch.tensor(y), num_classes=k,
                                                  n_bins=n_bins, norm=norm).item()
    got = smk.expected_calibration_error(z, y, n_bins=n_bins, norm=norm, from_logits=True)
    assert got == pytest.approx(ref_logits, abs=2e-6)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_classwise_agrees_with_torchmetrics_binary_per_class(rng, norm):
    torch = pytest.importorskip("torch")
    tmf = pytest.importorskip("torchmetrics.functional.classification")
    p = random_probs(rng, 400, 4)
    y = rng.integers(0, 4, 400)
    ref = np.mean([tmf.binary_calibration_error(torch.tensor(p[:, k]), torch.tensor((y == k).astype(np.int64)),
                                                n_bins=15, norm=norm).item() for k in range(4)])
    assert smk.classwise_calibration_error(p, y, norm=norm) == pytest.approx(ref, abs=2e-6)


def test_torchmetrics_module_interface():
    torch = pytest.importorskip("torch")
    torchmetrics = pytest.importorskip("torchmetrics")
    rng = np.random.default_rng(7)
    p, y = random_probs(rng, 300, 5), rng.integers(0, 5, 300)
    metric = torchmetrics.CalibrationError(task="multiclass", num_classes=5, n_bins=15, norm="l1")
    metric.update(torch.tensor(p[:150]), torch.tensor(y[:150]))
    metric.update(torch.tensor(p[150:]), torch.tensor(y[150:]))
    assert smk.expected_calibration_error(p, y) == pytest.approx(metric.compute().item(), abs=2e-6)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_bins": 0}, ValueError, "n_bins must be a positive integer, got 0"),
    ({"n_bins": 2.5}, TypeError, "n_bins"),
    ({"n_bins": True}, TypeError, "n_bins"),
    ({"norm": "l3"}, ValueError, "norm must be one of 'l1', 'l2', 'max', got 'l3'"),
    ({"strategy": "even"}, ValueError, "strategy must be one of"),
    ({"from_logits": "yes"}, TypeError, "from_logits must be True or False"),
])
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        smk.expected_calibration_error([[0.5, 0.5]], [0], **kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_classes\).*got shape \(3,\)"):
        smk.expected_calibration_error([0.1, 0.5, 0.9], [0, 1, 1])
    with pytest.raises(ValueError, match="row 0 sums to 1.5.*from_logits=True"):
        smk.expected_calibration_error([[1.0, 0.5]], [0])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        smk.expected_calibration_error([[2.0, -1.0]], [0])
    with pytest.raises(ValueError, match=r"target\[1\] = 2 is not a class index in \[0, 2\)"):
        smk.expected_calibration_error([[0.5, 0.5], [0.5, 0.5]], [0, 2])
    with pytest.raises(ValueError, match=r"target has shape \(3,\), expected \(2,\)"):
        smk.expected_calibration_error([[0.5, 0.5], [0.5, 0.5]], [0, 1, 1])
    with pytest.raises(TypeError, match="class indices"):
        smk.expected_calibration_error([[0.5, 0.5]], [0.0])
    with pytest.raises(ValueError, match="must not be NaN"):
        smk.expected_calibration_error([[np.nan, 1.0]], [0], from_logits=True)
    with pytest.raises(ValueError, match="row 1 is all -inf"):
        smk.expected_calibration_error([[0.0, 1.0], [-np.inf, -np.inf]], [0, 0], from_logits=True)
    with pytest.raises(ValueError, match="empty"):
        smk.expected_calibration_error(np.empty((0, 3)), np.empty(0, int))
    with pytest.raises(TypeError, match="real numbers"):
        smk.expected_calibration_error([["a", "b"]], [0])


# ---------------------------------------------------------------------------- temperature scaling


def nll(z, y, t):
    return float(smk.cross_entropy(np.asarray(z) / t, y))


def synthetic(rng, n=4000, k=5, true_t=2.5):
    """Logits whose labels follow softmax(z / true_t): over-confident by true_t."""
    z = rng.normal(size=(n, k)) * 3
    u = rng.random((n, 1))
    y = (np.cumsum(smk.softmax(z / true_t), axis=1) < u).sum(axis=1)
    return z, np.minimum(y, k - 1)


def test_first_and_second_derivatives_by_finite_differences(rng):
    z, y = synthetic(rng, 500)
    h = 1e-3
    for b in (0.2, 0.7, 1.5):
        f = lambda s: float(smk.cross_entropy(s * z, y))  # noqa: E731
        _, d1, d2 = _nll_and_derivatives(b, z, y, None)
        fd1 = (-f(b + 2 * h) + 8 * f(b + h) - 8 * f(b - h) + f(b - 2 * h)) / (12 * h)
        assert d1 == pytest.approx(fd1, rel=1e-8, abs=1e-10)
        g = lambda s: _nll_and_derivatives(s, z, y, None)[1]  # noqa: E731
        fd2 = (-g(b + 2 * h) + 8 * g(b + h) - 8 * g(b - h) + g(b - 2 * h)) / (12 * h)
        assert d2 == pytest.approx(fd2, rel=1e-7)
        # and the weighted path (softmax for p) gives the same with unit weights
        _, w1, w2 = _nll_and_derivatives(b, z, y, np.ones(len(y)))
        assert (w1, w2) == pytest.approx((d1, d2), rel=1e-12)


def test_recovers_the_temperature_and_sits_at_the_minimum(rng):
    z, y = synthetic(rng, 20000, true_t=2.5)
    ts = smk.TemperatureScaling().fit(z, y)
    assert ts.temperature_ == pytest.approx(2.5, rel=0.05)
    t = ts.temperature_
    # derivative of the NLL in 1/T at the optimum is zero to tight tolerance
    _, d1, d2 = _nll_and_derivatives(1 / t, z, y, None)
    assert abs(d1) <= 1e-12 * max(1.0, d2)
    for factor in (1 - 1e-6, 1 + 1e-6, 0.9, 1.1):
        assert nll(z, y, t) <= nll(z, y, t * factor)
    assert ts.nll_ == pytest.approx(nll(z, y, t), rel=1e-15)
    assert ts.n_iter_ <= 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_or_lower_nll_than_scipy_minimize_scalar(seed):
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(seed)
    z, y = synthetic(rng, 2000, k=3 + seed, true_t=[0.5, 1.0, 4.0][seed])
    ts = smk.TemperatureScaling().fit(z, y)
    ref = minimize_scalar(lambda lt: nll(z, y, np.exp(lt)), bounds=(-10, 10), method="bounded",
                          options={"xatol": 1e-12})
    assert ts.nll_ <= ref.fun + 1e-13
    assert ts.temperature_ == pytest.approx(np.exp(ref.x), rel=1e-5)


@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.05, 20.0),
       true_t=st.floats(0.3, 5.0))
def test_temperature_scales_with_the_logits_and_ignores_row_shifts(seed, scale, true_t):
    # T(c z) = c T(z) (the NLL depends on z / T only), and adding a constant to every
    # logit of a row changes no softmax, so no temperature
    rng = np.random.default_rng(seed)
    z, y = synthetic(rng, 300, k=4, true_t=true_t)
    base = smk.TemperatureScaling().fit(z, y).temperature_
    assert smk.TemperatureScaling().fit(scale * z, y).temperature_ == pytest.approx(scale * base, rel=1e-9)
    shifted = z + rng.normal(size=(300, 1)) * 10
    assert smk.TemperatureScaling().fit(shifted, y).temperature_ == pytest.approx(base, rel=1e-9)


def test_temperature_keeps_predictions_and_transform_divides(rng):
    z, y = synthetic(rng, 500)
    z.flags.writeable = False
    before = z.copy()
    ts = smk.TemperatureScaling().fit(z[:, ::1], y)
    assert_allclose(ts.transform(z), z / ts.temperature_, rtol=1e-15)
    assert (z == before).all()  # the input is never modified
    # a non-contiguous view gives the same fit
    wide = np.repeat(z, 2, axis=1)[:, ::2]
    assert smk.TemperatureScaling().fit(wide, y).temperature_ == ts.temperature_
    assert_allclose(ts.predict_proba(z), smk.softmax(z, temperature=ts.temperature_), rtol=1e-13)
    assert_allclose(ts.predict_log_proba(z), smk.log_softmax(z / ts.temperature_), rtol=1e-13)
    assert (ts.predict(z) == np.argmax(z, axis=1)).all()
    assert_allclose(ts.coef_, 1 / ts.temperature_) and (ts.intercept_ == 0).all()
    assert_allclose(ts.classes_, np.arange(5))
    assert 0 <= ts.score(z, y) <= 1


def test_calibration_lowers_ece_on_held_out_data(rng):
    z, y = synthetic(rng, 8000, true_t=3.0)
    ts = smk.TemperatureScaling().fit(z[:4000], y[:4000])
    before = smk.expected_calibration_error(z[4000:], y[4000:], from_logits=True)
    after = smk.expected_calibration_error(ts.predict_proba(z[4000:]), y[4000:])
    assert after < before / 3


def test_vector_scaling_reaches_its_optimum(rng):
    z, y = synthetic(rng, 3000, k=4)
    z = z * np.array([1.0, 2.0, 0.5, 1.5]) + np.array([0.3, -0.2, 0.0, 0.5])
    vec = smk.TemperatureScaling("vector").fit(z, y)
    tmp = smk.TemperatureScaling().fit(z, y)
    assert vec.nll_ <= tmp.nll_
    assert not hasattr(vec, "temperature_")
    # gradient of the NLL in (w, c) is zero at the solution
    loss, g = smk.cross_entropy_and_grad(z * vec.coef_ + vec.intercept_, y)
    assert np.abs(np.sum(g * z, axis=0)).max() < 1e-9
    assert np.abs(np.sum(g, axis=0)).max() < 1e-9
    assert loss == pytest.approx(vec.nll_, rel=1e-14)
    # and no finite-difference direction does better
    for d in np.eye(8)[[0, 3, 5]]:
        for s in (1e-4, -1e-4):
            w, c = vec.coef_ + s * d[:4], vec.intercept_ + s * d[4:]
            assert float(smk.cross_entropy(z * w + c, y)) >= loss


def test_sample_weight_equals_repetition(rng):
    z, y = synthetic(rng, 300)
    w = rng.integers(0, 4, 300)
    a = smk.TemperatureScaling().fit(z, y, sample_weight=w)
    b = smk.TemperatureScaling().fit(np.repeat(z, w, axis=0), np.repeat(y, w))
    assert a.temperature_ == pytest.approx(b.temperature_, rel=1e-10)
    av = smk.TemperatureScaling("vector").fit(z, y, sample_weight=w)
    bv = smk.TemperatureScaling("vector").fit(np.repeat(z, w, axis=0), np.repeat(y, w))
    assert av.nll_ == pytest.approx(bv.nll_, rel=1e-10)


def test_huge_logits_are_scaled_not_overflowed(rng):
    z, y = synthetic(rng, 400)
    small = smk.TemperatureScaling().fit(z, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from b z or z^2
        huge = smk.TemperatureScaling().fit(z * 1e300, y)
        vec = smk.TemperatureScaling("vector").fit(z * 1e300, y)
    assert huge.temperature_ == pytest.approx(small.temperature_ * 1e300, rel=1e-9)
    assert huge.nll_ == pytest.approx(small.nll_, rel=1e-9)
    assert_allclose(huge.predict_proba(z * 1e300), small.predict_proba(z), rtol=1e-8)
    assert vec.nll_ <= huge.nll_ + 1e-12


def test_float32_logits(rng):
    z, y = synthetic(rng, 1000)
    a = smk.TemperatureScaling().fit(z.astype(np.float32), y)
    b = smk.TemperatureScaling().fit(z.astype(np.float32).astype(np.float64), y)
    assert a.temperature_ == b.temperature_


def test_separable_logits_warn_and_stop_at_the_bound():
    from sklearn.exceptions import ConvergenceWarning

    y = np.array([0, 1, 2, 0, 1, 2])
    z = np.eye(3)[y] * 5.0
    with pytest.warns(ConvergenceWarning, match="separate the labels"):
        ts = smk.TemperatureScaling().fit(z, y)
    assert ts.temperature_ < 0.2 and ts.nll_ < 1e-14


def test_uninformative_logits_are_an_error():
    y = np.array([0, 1, 0, 1])
    z = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])[[1, 0, 3, 2]]  # always wrong
    with pytest.raises(ValueError, match="no information about the labels"):
        smk.TemperatureScaling().fit(z, y)


@pytest.mark.parametrize("params, match", [
    ({"method": "matrix"}, "method must be one of 'temperature', 'vector'"),
    ({"tol": 0}, r"tol must be in \(0, 1\)"),
    ({"max_iter": 0}, "max_iter must be a positive integer, got 0"),
])
def test_bad_parameters(params, match, rng):
    z, y = synthetic(rng, 50)
    with pytest.raises(ValueError, match=match):
        smk.TemperatureScaling(**params).fit(z, y)


def test_bad_fit_inputs(rng):
    from sklearn.exceptions import NotFittedError

    z, y = synthetic(rng, 50)
    with pytest.raises(NotFittedError):
        smk.TemperatureScaling().predict_proba(z)
    with pytest.raises(ValueError, match="logits must be finite"):
        smk.TemperatureScaling().fit(np.where(z > 2, np.inf, z), y)
    with pytest.raises(ValueError, match=r"y has shape \(49,\), expected \(50,\)"):
        smk.TemperatureScaling().fit(z, y[:-1])
    with pytest.raises(ValueError, match="not a class index"):
        smk.TemperatureScaling().fit(z, y + 5)
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_classes >= 2\)"):
        smk.TemperatureScaling().fit(z[:, 0], y)
    ts = smk.TemperatureScaling().fit(z, y)
    with pytest.raises(ValueError, match="X has 4 classes, the calibration was fitted on 5"):
        ts.transform(z[:, :4])


def test_sklearn_protocol(rng):
    from sklearn.base import clone, is_classifier

    ts = smk.TemperatureScaling("vector", tol=1e-10)
    c = clone(ts)
    assert c.get_params() == {"method": "vector", "estimator": None, "tol": 1e-10, "max_iter": 100}
    assert is_classifier(ts)
    assert repr(ts) == "TemperatureScaling(method='vector', tol=1e-10)"
    with pytest.raises(ValueError, match="invalid parameter 'temp'"):
        ts.set_params(temp=2)


# ---------------------------------------------------------------------------- on top of classifiers


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.model_selection import train_test_split

    X, y = smk.datasets.load_digits()
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.5, stratify=y, random_state=0)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                random_state=0)
    return X_tr, y_tr, X_cal, y_cal, X_te, y_te


def _sklearn_has_temperature():
    import sklearn
    from sklearn.calibration import CalibratedClassifierCV

    (options,) = CalibratedClassifierCV._parameter_constraints["method"]
    return "temperature" in options.options, sklearn.__version__


@pytest.mark.parametrize("model", ["regularised", "overfitted"])
def test_same_or_lower_nll_than_sklearn_calibrated_classifier(digits_split, model):
    has, version = _sklearn_has_temperature()
    if not has:
        pytest.skip(f"scikit-learn {version} has no CalibratedClassifierCV(method='temperature') (1.8+)")
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    X_tr, y_tr, X_cal, y_cal, X_te, y_te = digits_split
    if model == "regularised":
        clf = smk.SoftmaxRegression(alpha=1.0, standardize=True).fit(X_tr, y_tr)
    else:  # 60 training images, no penalty: separates them, over-confident on new ones
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = smk.SoftmaxRegression(alpha=1e-6, standardize=True, max_iter=500).fit(
                X_tr[:60], y_tr[:60])
    ours = smk.TemperatureScaling(estimator=clf).fit(X_cal, y_cal)
    theirs = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature").fit(X_cal, y_cal)
    from sklearn.metrics import log_loss

    ours_nll = log_loss(y_cal, ours.predict_proba(X_cal), labels=clf.classes_)
    theirs_nll = log_loss(y_cal, theirs.predict_proba(X_cal), labels=clf.classes_)
    assert ours_nll <= theirs_nll + 1e-12
    assert ours.nll_ == pytest.approx(ours_nll, rel=1e-12)
    assert_allclose(ours.predict_proba(X_te), theirs.predict_proba(X_te), atol=1e-6)
    before = log_loss(y_te, clf.predict_proba(X_te), labels=clf.classes_)
    after = log_loss(y_te, ours.predict_proba(X_te), labels=clf.classes_)
    if model == "overfitted":
        assert ours.temperature_ > 1.5  # it was over-confident
        assert after < before
        assert smk.expected_calibration_error(ours.predict_proba(X_te), y_te) < \
            smk.expected_calibration_error(clf.predict_proba(X_te), y_te)
    assert (ours.predict(X_te) == clf.predict(X_te)).all()


def test_binary_decision_function_and_string_classes():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = np.where(X[:, 0] * 4 + rng.logistic(size=400) > 0, "yes", "no")
    clf = LogisticRegression(C=1e4).fit(X[:200], y[:200])
    ts = smk.TemperatureScaling(estimator=clf).fit(X[200:], y[200:])
    assert list(ts.classes_) == ["no", "yes"]
    # the binary decision_function d becomes logits (0, d): same softmax as sigmoid(d)
    d = clf.decision_function(X[200:])
    assert_allclose(ts.predict_proba(X[200:])[:, 1], smk.sigmoid(d / ts.temperature_), rtol=1e-12)
    idx = (y[200:] == "yes").astype(int)
    assert ts.nll_ <= float(smk.cross_entropy(np.column_stack([0 * d, d]), idx)) + 1e-15
    assert set(ts.predict(X[200:])) <= {"no", "yes"}
    with pytest.raises(ValueError, match="'maybe', which is not one of the estimator's classes"):
        ts.fit(X[200:202], np.array(["yes", "maybe"]))


def test_estimator_with_predict_log_proba_only(digits_split):
    from sklearn.naive_bayes import GaussianNB

    X_tr, y_tr, X_cal, y_cal, X_te, y_te = digits_split
    nb = GaussianNB().fit(X_tr, y_tr)
    assert not hasattr(nb, "decision_function")
    ts = smk.TemperatureScaling(estimator=nb).fit(X_cal, y_cal)
    assert ts.nll_ < float(smk.cross_entropy(np.maximum(nb.predict_log_proba(X_cal), -700), y_cal))


# ---------------------------------------------------------------------------- the train report


def test_calibration_report_writes_png_and_metrics(tmp_path, rng):
    p = random_probs(rng, 300, 4)
    labels = np.array([3, 5, 7, 9])
    y_idx = rng.integers(0, 4, 300)
    rep = smk.calibration_report(p, labels[y_idx], tmp_path / "test", classes=labels)
    png = tmp_path / "test_reliability.png"
    assert rep["reliability_png"] == str(png)
    assert png.read_bytes()[:8] == PNG
    assert sorted(os.listdir(tmp_path)) == ["test_reliability.png"]  # no temporary file left
    assert rep["ece"] == pytest.approx(smk.expected_calibration_error(p, y_idx), abs=1e-15)
    assert rep["mce"] == pytest.approx(smk.expected_calibration_error(p, y_idx, norm="max"), abs=1e-15)
    assert rep["ece_l2"] == pytest.approx(smk.expected_calibration_error(p, y_idx, norm="l2"), abs=1e-15)
    assert rep["classwise_ece"] == pytest.approx(smk.classwise_calibration_error(p, y_idx), abs=1e-15)
    assert rep["nll"] == pytest.approx(float(smk.cross_entropy(np.log(p), y_idx)), rel=1e-12)
    assert rep["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y_idx))
    assert sum(rep["reliability"]["count"]) == 300
    json.dumps(rep, allow_nan=False)  # plain JSON: empty bins are None, not NaN
    from matplotlib.image import imread

    img = imread(png)
    assert img.shape[0] >= 400 and img.shape[1] >= 400
    # written again over the old one
    smk.calibration_report(p, y_idx, tmp_path / "test")
    assert sorted(os.listdir(tmp_path)) == ["test_reliability.png"]


def test_calibration_report_errors(tmp_path, rng):
    p = random_probs(rng, 10, 3)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        smk.calibration_report(p, np.zeros(10, int), tmp_path / "missing" / "x")
    with pytest.raises(ValueError, match="not one of classes"):
        smk.calibration_report(p, np.full(10, 7), tmp_path / "x", classes=[0, 1, 2])


# ---------------------------------------------------------------------------- the command


def _parse(*argv):
    from softmaxkit.app import calibrate_cmd

    parser = argparse.ArgumentParser(prog="softmaxkit")
    sub = parser.add_subparsers(dest="command")
    calibrate_cmd.add_parser(sub)
    return parser.parse_args(["calibrate", *map(str, argv)])


@pytest.fixture(scope="module")
def overfitted_model(tmp_path_factory, digits_split):
    X_tr, y_tr, X_cal, y_cal, X_te, y_te = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smk.SoftmaxRegression(alpha=1e-6, standardize=True, max_iter=500).fit(X_tr[:60], y_tr[:60])
    d = tmp_path_factory.mktemp("cal")
    model.save(d / "m.npz", metadata={"data": "digits[:60]"})
    np.savez(d / "val.npz", X=X_cal, y=y_cal)
    return d, X_cal, y_cal


def test_calibrate_command_stores_the_temperature(overfitted_model, capsys):
    from softmaxkit.app import calibrate_cmd

    d, X_cal, y_cal = overfitted_model
    before = (d / "m.npz").read_bytes()
    args = _parse("--model", d / "m.npz", "--data", d / "val.npz", "--out", d / "m-cal.npz")
    assert args.func is calibrate_cmd.run
    assert calibrate_cmd.run(args) == 0
    out = capsys.readouterr().out
    assert "temperature T = " in out and "NLL " in out and "ECE (15 bins)" in out
    assert (d / "m.npz").read_bytes() == before
    cal_model = smk.SoftmaxRegression.load(d / "m-cal.npz")
    cal = cal_model.metadata_["calibration"]
    assert cal_model.metadata_["data"] == "digits[:60]"  # the old metadata is kept
    ref = smk.TemperatureScaling().fit(cal_model.predict_log_proba(X_cal), y_cal)
    assert cal["temperature"] == pytest.approx(ref.temperature_, rel=1e-12)
    assert cal["method"] == "temperature" and cal["n_samples"] == len(y_cal)
    assert cal["nll_after"] < cal["nll_before"] and cal["ece_after"] < cal["ece_before"]
    assert_allclose(cal_model.coef_, smk.SoftmaxRegression.load(d / "m.npz").coef_)
    assert not [f for f in os.listdir(d) if f.startswith(".")]  # no temporary file left


def test_calibrate_command_vector(overfitted_model, capsys):
    from softmaxkit.app import calibrate_cmd

    d, X_cal, y_cal = overfitted_model
    args = _parse("--model", d / "m.npz", "--data", d / "val.npz", "--out", d / "m-vec.npz",
                  "--method", "vector", "--bins", 10)
    assert calibrate_cmd.run(args) == 0
    cal = smk.SoftmaxRegression.load(d / "m-vec.npz").metadata_["calibration"]
    assert cal["method"] == "vector" and len(cal["scale"]) == 10 and cal["n_bins"] == 10
    assert "temperature" not in cal


@pytest.mark.parametrize("case, needle", [
    ("same", "is the --model file: refusing to overwrite an input"),
    ("samedata", "is the --data file: refusing to overwrite an input"),
    ("missing", "no such file"),
    ("nolabels", "labels"),
    ("features", "features, the model expects 64"),
    ("folder", "does not exist"),
    ("bins", "--bins must be >= 1"),
    ("notmodel", "not a softmaxkit model"),
])
def test_calibrate_command_user_errors(overfitted_model, tmp_path, capsys, case, needle):
    from softmaxkit.app import calibrate_cmd

    d, X_cal, y_cal = overfitted_model
    model, data, out, extra = d / "m.npz", d / "val.npz", tmp_path / "o.npz", []
    if case == "same":
        out = model
    elif case == "samedata":
        out = data
    elif case == "missing":
        model = tmp_path / "nope.npz"
    elif case == "nolabels":
        data = tmp_path / "x.npz"
        np.savez(data, X=X_cal)
    elif case == "features":
        data = tmp_path / "x.npz"
        np.savez(data, X=X_cal[:, :10], y=y_cal)
    elif case == "folder":
        out = tmp_path / "no" / "o.npz"
    elif case == "bins":
        extra = ["--bins", 0]
    elif case == "notmodel":
        model = tmp_path / "x.npz"
        np.savez(model, a=np.zeros(3))
    before = (d / "m.npz").read_bytes()
    assert calibrate_cmd.run(_parse("--model", model, "--data", data, "--out", out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("softmaxkit: error: ") and needle in err[0], err
    assert (d / "m.npz").read_bytes() == before
